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


# The embedded store's writer process takes about 0.15 s of CPU to start, in every test that
# makes a tracer on the embedded store: hundreds of them, which would add a minute or more
# to the suite. Tests run the store inline (the same store and rules, in the exporter's
# thread) unless they are about the default: the core tests (which start from no
# configuration at all), the end-to-end suites, the examples, the README, and the tests of
# the writer and of LocalSink, which run both.
_WRITER_DEFAULT = {"core", "integration", "examples"}
_WRITER_DEFAULT_FILES = {"test_readme.py", "test_local_writer.py", "test_local_sink.py"}


@pytest.fixture(autouse=True)
def _embedded_store_inline(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    path = Path(str(request.node.path))
    if path.name in _WRITER_DEFAULT_FILES or path.parent.name in _WRITER_DEFAULT:
        return
    if "PREFACTOR_EMBEDDED_WRITER" not in os.environ:
        monkeypatch.setenv("PREFACTOR_EMBEDDED_WRITER", "inline")


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
