"""Fixtures for the tracing tests: a process-wide tracer that records into memory or a store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tracing_helpers import Stored

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig
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


def _stored(path: Path, *, strict: bool) -> Iterator[Stored]:
    tracer = runtime.build_tracer(PrefactorCoreConfig(db_path=path, strict=strict))
    previous = runtime.swap(tracer)
    try:
        yield Stored(tracer, path)
    finally:
        runtime.swap(previous)
        tracer.close(10)


@pytest.fixture
def stored(tmp_path: Path) -> Iterator[Stored]:
    """Lenient mode, recording into the embedded store (a real SQLite file), read back."""
    yield from _stored(tmp_path / "traces.db", strict=False)


@pytest.fixture
def strict_stored(tmp_path: Path) -> Iterator[Stored]:
    """Strict mode, recording into the embedded store, read back."""
    yield from _stored(tmp_path / "traces.db", strict=True)
