"""Fixtures for the API client tests: the real server in process behind the client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from api_helpers import TOKEN, make_config

from prefactor._api.client import PrefactorApiClient
from prefactor.server.app import create_app
from prefactor.server.store import Store


@pytest.fixture
def api_store() -> Iterator[Store]:
    s = Store()
    yield s
    s.close()


@pytest.fixture
def asgi(api_store: Store) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=create_app(api_store, token=TOKEN))


@pytest.fixture
async def client(asgi: httpx.ASGITransport) -> AsyncIterator[PrefactorApiClient]:
    async with PrefactorApiClient(make_config(), transport=asgi) as c:
        yield c
