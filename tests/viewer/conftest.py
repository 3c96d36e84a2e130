"""Fixtures of the viewer tests: a real store file, the app over it, signed-in clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from viewer_helpers import BASE_URL, TOKEN

from prefactor.server.app import create_app
from prefactor.server.store import Store


@pytest.fixture(autouse=True)
def surface_internal_errors(internal_errors_raise: None) -> None:
    """Every viewer test fails on an error the SDK would swallow (tests/conftest.py)."""


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "traces.db"


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    s = Store(db)
    yield s
    s.close()


@pytest.fixture
def app(store: Store) -> FastAPI:
    return create_app(store, token=TOKEN)


@pytest.fixture
async def anonymous(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client that has not signed in."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield client


@pytest.fixture
async def viewer(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in through a one-time link's code; it keeps the session cookie."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        response = await client.post("/signin", data={"code": app.state.sign_in.issue_code()})
        assert (response.status_code, response.headers["location"]) == (303, "/")
        yield client
