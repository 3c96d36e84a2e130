"""Fixtures every test directory may use: the store's backends (SQLite, PostgreSQL).

Tests that take ``db_target`` or ``backend`` run once on SQLite and once on
PostgreSQL (``pg_helpers`` says where that PostgreSQL comes from).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from hypothesis import settings
from pg_helpers import drop_run_schemas, empty_tables, in_schema, postgres_url

from prefactor._export._internal import set_raise_internal_errors

# Property tests draw the same examples in every run of the suite, so that a red run means
# a change broke something, not that a new example turned up. HYPOTHESIS_PROFILE=explore
# draws new ones each run: do that when changing what the properties cover.
settings.register_profile("suite", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "suite"))


@pytest.fixture
def internal_errors_raise() -> Iterator[None]:
    """Errors the SDK swallows for users fail our own test (use it with ``usefixtures``)."""
    set_raise_internal_errors(True)
    yield
    set_raise_internal_errors(None)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """The test PostgreSQL's URL, in a schema of this run's own (skips, or fails in CI, without)."""
    base = postgres_url()
    yield in_schema(base, "tests")
    drop_run_schemas(base)


@pytest.fixture(scope="session")
def pg_admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A connection of the tests' own, to reset the database between tests."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    """The database the test runs on."""
    name: str = request.param
    return name


@pytest.fixture
def db_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty database of ``backend``: a new file's path, or the test PostgreSQL emptied."""
    if backend == "sqlite":
        return str(tmp_path / "traces.db")
    empty_tables(request.getfixturevalue("pg_admin"))
    url: str = request.getfixturevalue("pg_url")
    return url
