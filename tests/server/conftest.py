"""Fixtures for the store and server tests: a real store on each backend, registered instances.

Tests that take ``store`` (or the root conftest's ``db_target``/``backend``) run
once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from server_helpers import SCHEMA_VERSION, Register

from prefactor.server.store import Store


@pytest.fixture
def store(backend: str, request: pytest.FixtureRequest) -> Iterator[Store]:
    s = Store(":memory:" if backend == "sqlite" else request.getfixturevalue("db_target"))
    yield s
    s.close()


@pytest.fixture
def register(store: Store) -> Register:
    """Register an instance (with the test schema unless told otherwise); its id."""

    def make(
        *, schema: dict[str, Any] | None = SCHEMA_VERSION, start: bool = True, **extra: Any
    ) -> str:
        body: dict[str, Any] = {
            "agent_id": "agent-1",
            "agent_version": {"external_identifier": "v1", "name": "A"},
            **extra,
        }
        if schema is not None:
            body["agent_schema_version"] = schema
        instance_id: str = store.register_instance(body)["details"]["id"]
        if start:
            store.start_instance(instance_id, {})
        return instance_id

    return make
