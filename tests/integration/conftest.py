"""Fixtures for the end-to-end tests: the real server in process, or ``prefactor serve``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from integration_helpers import TOKEN, Served, Server
from serve_helpers import ServeProcess

from prefactor import _runtime as runtime
from prefactor._export._internal import set_raise_internal_errors
from prefactor.server.app import create_app
from prefactor.server.store import Store


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    set_raise_internal_errors(True)
    store = Store(tmp_path / "server.db")
    yield Server(store, httpx.ASGITransport(app=create_app(store, token=TOKEN)))
    runtime.shutdown()
    store.close()
    set_raise_internal_errors(None)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """``prefactor serve`` in its own process on a free loopback port."""
    server = ServeProcess(str(tmp_path_factory.mktemp("served") / "traces.db"), TOKEN)
    try:
        yield Served(server.wait_listening())
    finally:
        server.stop()
