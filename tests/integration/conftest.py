"""Fixtures for the end-to-end tests: the real server in process, or ``prefactor serve``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from integration_helpers import TOKEN, Served, Server

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
    db = tmp_path_factory.mktemp("served") / "traces.db"
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "PREFACTOR_API_TOKEN": TOKEN}
    command = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0", "--db", str(db)]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "listening on " in line, f"prefactor serve said {line!r}"
        yield Served(line.split("listening on ", 1)[1].strip())
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
