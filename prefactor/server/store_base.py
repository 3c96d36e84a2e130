"""The store's plumbing: its database, transactions, idempotency, the schema cache."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from prefactor._api.models import AgentSchemaVersionForRegister
from prefactor._errors import PrefactorConfigError
from prefactor._ids import generate_pfid
from prefactor.server._database import POSTGRES_EXTRA_HINT, Database, database_scheme
from prefactor.server._migrations import migrate
from prefactor.server._sqlite import SqliteDatabase
from prefactor.server.store_common import (
    ApiProblem,
    dumps,
    fingerprint,
    idempotency_conflict,
    loads,
)
from prefactor.server.store_schemas import OPEN_SCHEMA_SET, SchemaSet
from prefactor.server.store_unit import UnitOfWork

__all__ = ["JSON", "StoreBase", "not_found", "open_database"]

JSON = dict[str, Any]
T = TypeVar("T")

# Distinct schema version contents whose compiled schemas a store keeps (a bound: a
# server sees many clients; an agent registers the same few versions on every run).
_COMPILED_CONTENTS = 256
# Immutable rows (agents, deployments, versions) a store remembers by what identifies them.
_KNOWN_ROWS = 4096

_INSTANCE_COLUMNS = (
    "id, account_id, agent_id, agent_version_id, environment_id, agent_deployment_id, status,"
    " purpose, external_identifier, started_at, finished_at, termination_reason,"
    " quality_payloads, quality_summaries, inserted_at, updated_at, schema_version_id,"
    " quality_violations"
)


def not_found(what: str, ident: str) -> ApiProblem:
    """The 404 answer for an unknown resource."""
    return ApiProblem(404, "not_found", f"{what} {ident!r} not found")


def open_database(target: str | os.PathLike[str]) -> Database:
    """Open a SQLite file (or ``":memory:"``) or a ``postgresql://`` URL.

    Raises:
        PrefactorConfigError: a URL of another scheme; a PostgreSQL URL without the
            ``postgres`` extra, or whose database cannot be reached.
    """
    text = os.fspath(target)
    if database_scheme(text) is None:
        return SqliteDatabase(text)
    try:
        # Imported here only: psycopg is an optional extra that the embedded store never needs.
        from prefactor.server._postgres import PostgresDatabase
    except ImportError as exc:
        if exc.name not in ("psycopg", "psycopg_pool"):
            raise
        raise PrefactorConfigError(f"{POSTGRES_EXTRA_HINT} ({exc})") from None
    return PostgresDatabase(text)


class StoreBase:
    """Opens (and upgrades) the database and offers the helpers every endpoint's rules share.

    Args:
        db: a SQLite file (created with its directory, WAL journal), ``":memory:"``, or a
            ``postgresql://`` URL.
    """

    INSTANCE_COLUMNS = _INSTANCE_COLUMNS
    # Where each column sits in an instance row.
    INSTANCE_COLUMN_INDEX = {name.strip(): i for i, name in enumerate(_INSTANCE_COLUMNS.split(","))}

    def __init__(self, db: str | os.PathLike[str] = ":memory:") -> None:
        self._db = open_database(db)
        # The rules run their SQL on this, whichever thread and transaction they are in.
        self._conn = self._db.connection
        self._sql = self._db.dialect
        self._schema_sets: dict[str, SchemaSet] = {}
        self._compiled_contents: dict[str, SchemaSet] = {}
        # Rows never changed nor deleted once committed, by the lookup that finds them.
        self._known: dict[tuple[str, ...], Any] = {}
        self._units = threading.local()
        try:
            self.account_id, self.default_environment_id = self._db.run(True, self._prepare)
        except BaseException:
            self._db.close()
            raise

    def _prepare(self) -> tuple[str, str]:
        migrate(self._conn, self._sql)
        return self._meta("account_id"), self._meta("environment_id")

    # --- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        """Close the database; later calls raise ``RuntimeError``. Idempotent."""
        self._db.close()

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Observe every SQL statement the store runs (tests count commits with it)."""
        self._db.set_trace_callback(callback)

    def _write(self, body: Callable[[], T]) -> T:
        """Run ``body`` in a write transaction, with a fresh unit of work for each attempt."""
        units: list[UnitOfWork] = []

        def attempt() -> T:
            unit = UnitOfWork(
                self._db, serial=self._sql.serial_writes, instance_columns=_INSTANCE_COLUMNS
            )
            units.append(unit)
            self._units.unit = unit
            try:
                result = body()
                unit.finish()
            finally:
                self._units.unit = None
            return result

        result = self._db.run(True, attempt)
        learned = units[-1].learned
        if learned:
            # Committed: what the transaction found or wrote is now everyone's to see.
            if len(self._known) + len(learned) > _KNOWN_ROWS:
                self._known.clear()
            self._known.update(learned)
        return result

    @property
    def _unit(self) -> UnitOfWork | None:
        """The unit of work of this thread's write transaction; ``None`` outside one."""
        unit: UnitOfWork | None = getattr(self._units, "unit", None)
        return unit

    @property
    def _work(self) -> UnitOfWork:
        """The unit of work of this thread's write transaction, for rules that only write.

        Raises:
            RuntimeError: no write transaction is running in this thread.
        """
        unit = self._unit
        if unit is None:
            raise RuntimeError("no store write transaction is running in this thread")
        return unit

    def _known_row(self, key: tuple[str, ...]) -> Any:
        """An immutable fact already found or written (``None`` when it must be read)."""
        found = self._known.get(key)
        if found is None:
            unit = self._unit
            if unit is not None:
                found = unit.learned.get(key)
        return found

    def _read(self, body: Callable[[], T]) -> T:
        return self._db.run(False, body)

    def _meta(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return str(row[0])
        # Another process may open the same new database at the same moment: first one wins.
        self._conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT DO NOTHING",
            (key, generate_pfid()),
        )
        return str(self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    def _idempotent(
        self, scope: str, key: str | None, target: str | None, body: JSON, op: Callable[[], JSON]
    ) -> JSON:
        """``op()`` once per ``key`` in ``scope``: what it returned then, on every replay.

        What ``op`` returns is stored under the key as it is: an answer, or a memo
        from which the caller builds the answer (an instance operation's).

        Raises:
            ApiProblem: what ``op`` raised, or ``idempotency_conflict`` when the key
                was used with another request.
        """
        if key is None:
            return op()
        digest = fingerprint(scope, target, body)
        unit = self._work
        stored = self._stored_answer(unit.stored(scope, key), key, digest)
        if stored is not None:
            return stored
        try:
            response = op()
        except ApiProblem:
            # On PostgreSQL the same request may have been committed by another server
            # since the key was read (each statement sees the commits made before it
            # began), and its effect is what op() refused: answer as the retry it is.
            stored = self._stored_answer(unit.fresh(scope, key), key, digest)
            if stored is not None:
                return stored
            raise
        # Written when the transaction commits, with the other keys of the request.
        unit.stage_idempotency(scope, key, digest, dumps(response))
        return response

    @staticmethod
    def _stored_answer(row: tuple[str, str] | None, key: str, digest: str) -> JSON | None:
        """The answer a stored ``(fingerprint, response)`` gives; ``None`` when none is stored.

        Raises:
            ApiProblem: the key was used with another body (``idempotency_conflict``).
        """
        if row is None:
            return None
        if row[0] != digest:
            raise idempotency_conflict(key)
        stored: JSON = loads(row[1])
        return stored

    def _schema_set(self, schema_version_id: str | None) -> SchemaSet:
        if schema_version_id is None:
            return OPEN_SCHEMA_SET
        found = self._schema_sets.get(schema_version_id)
        if found is None:
            row = self._conn.execute(
                "SELECT body FROM schema_versions WHERE id = ?", (schema_version_id,)
            ).fetchone()
            content = str(row[0])
            found = self._compiled(
                content, AgentSchemaVersionForRegister.model_validate(loads(content))
            )
            self._schema_sets[schema_version_id] = found
        return found

    def _compiled(self, content: str, definition: AgentSchemaVersionForRegister) -> SchemaSet:
        """The compiled schemas of a version, compiled once for each distinct ``content``.

        ``content`` is the version's canonical JSON (keys sorted), as stored: an
        agent registers the same version on every run, and compiling it each
        time cost more than the rest of the register.

        Raises:
            SchemaProblems: a schema of the version does not compile (never cached).
        """
        found = self._compiled_contents.get(content)
        if found is None:
            found = SchemaSet.from_definition(definition)
            if len(self._compiled_contents) >= _COMPILED_CONTENTS:
                self._compiled_contents.clear()
            self._compiled_contents[content] = found
        return found

    def _instance_row(self, instance_id: str, *, lock: bool = False) -> tuple[Any, ...]:
        """An instance's row; ``lock``: the transaction is about to change it."""
        unit = self._unit
        if unit is not None:
            known = unit.instance(instance_id, lock=lock)
            if known is not None:
                return known
        row = self._conn.execute(
            f"SELECT {_INSTANCE_COLUMNS} FROM instances WHERE id = ?"
            f"{self._sql.lock_instance if lock else ''}",
            (instance_id,),
        ).fetchone()
        if row is None:
            raise not_found("agent instance", instance_id)
        found = tuple(row)
        if unit is not None and (lock or unit.serial):
            unit.remember(found)
        return found
