"""The PostgreSQL the store tests run against: where it is, and how to give a test a clean one.

``.ci/run`` starts PostgreSQL and creates the role and database named by
:data:`DEFAULT_URL`; ``PREFACTOR_TEST_POSTGRES_URL`` points the tests at
another. Without a reachable server the PostgreSQL tests are skipped, except
in CI (``CI=true``), where that is a failure.

Each pytest run works in schemas of its own (their names end with the run's
process id), so that two runs at once (two tox environments, a developer's run
beside an editor's) never see each other's rows; the run drops them when it ends.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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


_RUN = f"_{os.getpid()}"
_made: list[str] = []


def in_schema(url: str, schema: str) -> str:
    """``url`` with every connection's ``search_path`` set to this run's ``schema`` (created empty).

    The schema's name is ``schema`` with this run's suffix; an ``options``
    parameter already in ``url`` (another schema) is replaced.
    """
    name = schema + _RUN
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    base = urlunsplit(parts._replace(query=urlencode(query)))
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    if name not in _made:
        _made.append(name)
    query.append(("options", f"-csearch_path={name}"))
    return urlunsplit(parts._replace(query=urlencode(query)))


def drop_run_schemas(url: str) -> None:
    """Drop every schema this run made with :func:`in_schema`."""
    with psycopg.connect(url, autocommit=True) as conn:
        while _made:
            conn.execute(f'DROP SCHEMA IF EXISTS "{_made.pop()}" CASCADE')


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
