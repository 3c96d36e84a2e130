"""Fixtures of the OpenTelemetry tests: a loopback OTLP receiver, surfaced internal errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver, serve

from prefactor import _runtime as runtime
from prefactor._export._internal import set_raise_internal_errors
from prefactor.testing.server import LocalServer


@pytest.fixture(autouse=True)
def surface_internal_errors() -> Iterator[None]:
    """Our own tests turn swallowed internal errors into failures; the tracer is reset after."""
    set_raise_internal_errors(True)
    yield
    runtime.shutdown()
    set_raise_internal_errors(None)


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP receiver on a loopback port."""
    state = OtlpReceiver()
    server = serve(state)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LocalServer]:
    """``prefactor serve`` on a loopback port over a fresh SQLite file."""
    with LocalServer(tmp_path / "serve.db") as running:
        yield running
