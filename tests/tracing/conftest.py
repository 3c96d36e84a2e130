"""Fixtures for the tracing tests: a process-wide tracer that records into memory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor import _runtime as runtime
from prefactor._export._internal import set_raise_internal_errors
from prefactor.testing.recorder import Recorder


@pytest.fixture(autouse=True)
def _surface_internal_errors() -> Iterator[None]:
    set_raise_internal_errors(True)
    yield
    set_raise_internal_errors(None)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    """Lenient mode: violations are flagged, not raised."""
    rec = Recorder.install(strict=False)
    yield rec
    runtime.shutdown()


@pytest.fixture
def strict_recorder() -> Iterator[Recorder]:
    """Strict mode: violations raise SchemaValidationError."""
    rec = Recorder.install(strict=True)
    yield rec
    runtime.shutdown()
