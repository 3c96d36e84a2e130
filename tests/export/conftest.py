"""Fixtures shared by the exporter tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from http_helpers import Server, make_server

from prefactor._export._internal import set_raise_internal_errors


@pytest.fixture(autouse=True)
def surface_internal_errors() -> Iterator[None]:
    """Our own tests turn swallowed internal errors into failures."""
    set_raise_internal_errors(True)
    yield
    set_raise_internal_errors(None)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The API app over a store on a real file, reached in process."""
    srv = make_server(tmp_path / "server.db")
    yield srv
    srv.store.close()
