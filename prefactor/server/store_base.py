"""The store's plumbing: one guarded SQLite connection, transactions, idempotency, schema cache."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from prefactor._api.models import AgentSchemaVersionForRegister
from prefactor._ids import generate_pfid
from prefactor.server.store_common import (
    DDL,
    ApiProblem,
    dumps,
    fingerprint,
    idempotency_conflict,
    loads,
    upgrade,
)
from prefactor.server.store_schemas import OPEN_SCHEMA_SET, SchemaSet

__all__ = ["JSON", "StoreBase", "not_found"]

JSON = dict[str, Any]

_INSTANCE_COLUMNS = (
    "id, account_id, agent_id, agent_version_id, environment_id, agent_deployment_id, status,"
    " purpose, external_identifier, started_at, finished_at, termination_reason,"
    " quality_payloads, quality_summaries, inserted_at, updated_at, schema_version_id,"
    " quality_violations"
)


def not_found(what: str, ident: str) -> ApiProblem:
    """The 404 answer for an unknown resource."""
    return ApiProblem(404, "not_found", f"{what} {ident!r} not found")


class StoreBase:
    """Opens the database and offers the helpers every endpoint's rules share.

    Args:
        path: a database file (created with its directory, WAL journal) or ``":memory:"``.
    """

    INSTANCE_COLUMNS = _INSTANCE_COLUMNS

    def __init__(self, path: str | os.PathLike[str] = ":memory:") -> None:
        target = os.fspath(path)
        if target != ":memory:":
            Path(target).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            target, check_same_thread=False, isolation_level=None, cached_statements=256
        )
        if target != ":memory:":
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint fsyncs the database file; at the default 1,000 pages that
            # happened every bulk request and cost more than the inserts themselves.
            self._conn.execute("PRAGMA wal_autocheckpoint=10000")
            self._conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        # Page cache in KiB (negative): index pages of large bulk inserts stay in memory.
        self._conn.execute("PRAGMA cache_size=-65536")
        self._conn.executescript(DDL)
        upgrade(self._conn)
        self._schema_sets: dict[str, SchemaSet] = {}
        self._closed = False
        self.account_id = self._meta("account_id")
        self.default_environment_id = self._meta("environment_id")

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; later calls raise ``RuntimeError``. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._conn.close()

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Observe every SQL statement the store runs (tests count commits with it)."""
        with self._lock:
            self._conn.set_trace_callback(callback)

    def _meta(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        # Another process may open the same new file at the same moment: first one wins.
        self._conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES (?, ?)", (key, generate_pfid())
        )
        return str(self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @contextmanager
    def _tx(self, *, write: bool = True) -> Iterator[sqlite3.Connection]:
        # Writers take the write lock up front (IMMEDIATE) so they never fail halfway
        # on a lock upgrade; readers stay deferred and never block a writer in another
        # process (e.g. the SDK's sink writing while `prefactor serve` reads the file).
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _idempotent(
        self, scope: str, key: str | None, target: str | None, body: JSON, op: Callable[[], JSON]
    ) -> JSON:
        if key is None:
            return op()
        digest = fingerprint(scope, target, body)
        row = self._conn.execute(
            "SELECT fingerprint, response FROM idempotency WHERE scope = ? AND key = ?",
            (scope, key),
        ).fetchone()
        if row is not None:
            if row[0] == digest:
                stored: JSON = loads(row[1])
                return stored
            raise idempotency_conflict(key)
        response = op()
        self._conn.execute(
            "INSERT INTO idempotency (scope, key, fingerprint, response) VALUES (?, ?, ?, ?)",
            (scope, key, digest, dumps(response)),
        )
        return response

    def _schema_set(self, schema_version_id: str | None) -> SchemaSet:
        if schema_version_id is None:
            return OPEN_SCHEMA_SET
        found = self._schema_sets.get(schema_version_id)
        if found is None:
            row = self._conn.execute(
                "SELECT body FROM schema_versions WHERE id = ?", (schema_version_id,)
            ).fetchone()
            found = SchemaSet.from_definition(
                AgentSchemaVersionForRegister.model_validate(loads(row[0]))
            )
            self._schema_sets[schema_version_id] = found
        return found

    def _instance_row(self, instance_id: str) -> tuple[Any, ...]:
        row = self._conn.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?", (instance_id,)
        ).fetchone()
        if row is None:
            raise not_found("agent instance", instance_id)
        return tuple(row)
