"""The PostgreSQL the store tests run against: where it is, and how to give a test a clean one.

``.ci/run`` starts PostgreSQL and creates the role and database named by
:data:`DEFAULT_URL`; ``PREFACTOR_TEST_POSTGRES_URL`` points the tests at
another. Without a reachable server the PostgreSQL tests are skipped, except
in CI (``CI=true``), where that is a failure.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import psycopg
import pytest

from prefactor.server._database import describe_target

URL_ENV = "PREFACTOR_TEST_POSTGRES_URL"
DEFAULT_URL = "postgresql://prefactor:prefactor@127.0.0.1:5432/prefactor_test"
# Every table of the store but meta, whose ids and version a test may keep.
DATA_TABLES = (
    "agents",
    "deployments",
    "agent_versions",
    "schema_versions",
    "instances",
    "spans",
    "idempotency",
)
HOW_TO_RUN = (
    "start PostgreSQL and create its test role and database as .ci/run does"
    f" (or point {URL_ENV} at one); in CI (CI=true) this is a failure"
)


def postgres_url() -> str:
    """The test database's URL, after checking that it answers.

    Skips the calling test (fails it in CI) when PostgreSQL is not reachable.
    """
    url = os.environ.get(URL_ENV) or DEFAULT_URL
    try:
        psycopg.connect(url, connect_timeout=5).close()
    except psycopg.Error as exc:
        reason = f"PostgreSQL is not reachable at {describe_target(url)} ({exc}): {HOW_TO_RUN}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return url


def in_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to ``schema`` (created empty)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options={quote(f'-csearch_path={schema}')}"


def drop_tables(conn: psycopg.Connection[object]) -> None:
    """Remove the store's tables, so that a test session starts from a new database."""
    conn.execute(f"DROP TABLE IF EXISTS meta, {', '.join(DATA_TABLES)}")


def empty_tables(conn: psycopg.Connection[object]) -> None:
    """Remove every row a test may have left, keeping the layout.

    ``DELETE`` rather than ``TRUNCATE``: on a few rows it is ten times faster.
    """
    exists = conn.execute(
        "SELECT 1 FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_name = 'spans'"
    ).fetchone()
    if exists is not None:
        for table in DATA_TABLES:
            conn.execute(f"DELETE FROM {table}")
