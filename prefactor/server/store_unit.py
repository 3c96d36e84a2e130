"""The unit of work of one write transaction: what it has read, and what it will write at the end.

The rules (:mod:`~prefactor.server.store_instances`, :mod:`~prefactor.server.store_spans`)
decide every answer; a unit only spares them reading a row twice and writing
one statement per idempotency key. A bulk request prefetches what its items
will look up (instance rows, span ids, idempotency keys) in a few ``IN``
queries, chunked; the rules then find them here instead of querying, and
their idempotency rows are inserted in one go when the transaction is about
to commit.

What a unit may reuse depends on who else can write meanwhile:

* On SQLite a write transaction holds the database's write lock from
  ``BEGIN IMMEDIATE`` on (``serial``): nothing it read can change under it,
  so every row it read stays true until it commits.
* On PostgreSQL (READ COMMITTED) another server may commit between two
  statements. A unit then reuses an instance row only once this transaction
  wrote it or locked it (``FOR UPDATE``), span counts only of instances it
  inserted itself (invisible to everyone else until it commits), and a key or
  id found absent may still be taken meanwhile: the insert then fails on its
  unique constraint and the backend runs the whole request again, or a rule
  that refused the request re-reads the key (:meth:`UnitOfWork.fresh`) and
  answers the replay, as before.

Rows that never change once stored (agents, deployments, agent versions,
schema versions; nothing deletes them) are remembered past the transaction,
by the store, once it has committed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from prefactor.server._database import Connection, Database

__all__ = ["SPAN_INSERT_COLUMNS", "SpanCounts", "UnitOfWork", "select_in"]

SPAN_INSERT_COLUMNS = (
    "id, agent_instance_id, parent_span_id, schema_name, schema_title, summary,"
    " status, payload, result_payload, schema_violations, started_at, finished_at,"
    " inserted_at, updated_at, create_digest, create_memo"
)

SpanCounts = dict[str, int]

# Values per ``IN (...)``: within every backend's placeholder limit.
_IN_CHUNK = 500


def select_in(
    conn: Connection, sql: str, values: Iterable[str], first: tuple[str, ...] = ()
) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` (whose ``{}`` becomes the placeholders) for ``values``, chunked.

    ``first`` are the values of the placeholders before the ``IN``.
    """
    unique = list(dict.fromkeys(values))
    rows: list[tuple[Any, ...]] = []
    for start in range(0, len(unique), _IN_CHUNK):
        chunk = unique[start : start + _IN_CHUNK]
        query = sql.format(", ".join("?" * len(chunk)))
        rows.extend(conn.execute(query, (*first, *chunk)).fetchall())
    return rows


class UnitOfWork:
    """The rows one write transaction has read or written, and the rows it will insert.

    New instances, spans and idempotency rows are inserted together, a few
    statements for the whole transaction, when it is about to commit, or
    earlier, by :meth:`flush`, before a rule reads the tables with SQL. Until
    then a new instance lives here, and its changes (start, finish) change the
    row to insert instead of running an ``UPDATE`` each.

    Args:
        database: the database of the transaction.
        serial: no other writer can change the database until this transaction ends.
        instance_columns: the columns of an instance row, as the rules read them.
    """

    __slots__ = (
        "_checked_keys",
        "_checked_spans",
        "_columns",
        "_conn",
        "_database",
        "_keys",
        "_unlocked",
        "counts",
        "idempotency_rows",
        "instances",
        "learned",
        "new_instances",
        "new_spans",
        "own",
        "serial",
        "spans",
    )

    def __init__(self, database: Database, *, serial: bool, instance_columns: str) -> None:
        self._database = database
        self._conn = database.connection
        self._columns = instance_columns
        self.serial = serial
        # Instance rows this transaction may rely on (see the module's notes), by id.
        self.instances: dict[str, tuple[Any, ...]] = {}
        # Instance rows read without a lock (PostgreSQL only), None when absent.
        self._unlocked: dict[str, tuple[Any, ...] | None] = {}
        # Instances this transaction inserted.
        self.own: set[str] = set()
        # Span counts by status of instances whose counts cannot change behind our back.
        self.counts: dict[str, SpanCounts] = {}
        # Span id -> its instance id, for ids known to exist; and every id looked up.
        self.spans: dict[str, str] = {}
        self._checked_spans: set[str] = set()
        # By scope: key -> (fingerprint, response) of stored keys; and every key looked up.
        self._keys: dict[str, dict[str, tuple[str, str]]] = {}
        self._checked_keys: dict[str, set[str]] = {}
        self.idempotency_rows: list[tuple[str, str, str, str]] = []
        # Rows to insert: instances by id (their latest state), spans in order.
        self.new_instances: dict[str, tuple[Any, ...]] = {}
        self.new_spans: list[tuple[Any, ...]] = []
        # Immutable facts found or written, for the store to keep once this commits.
        self.learned: dict[tuple[str, ...], Any] = {}

    # --- prefetching ------------------------------------------------------------------------

    def prefetch_instances(self, ids: Iterable[str]) -> None:
        """Read the instance rows of ``ids`` that are not known yet, in a few queries."""
        known, unlocked = self.instances, self._unlocked
        wanted = [i for i in dict.fromkeys(ids) if i not in known and i not in unlocked]
        if not wanted:
            return
        found = {
            row[0]: tuple(row)
            for row in select_in(
                self._conn, f"SELECT {self._columns} FROM instances WHERE id IN ({{}})", wanted
            )
        }
        for ident in wanted:
            row = found.get(ident)
            if row is not None and self.serial:
                self.instances[ident] = row
            else:
                self._unlocked[ident] = row

    def prefetch_spans(self, ids: Iterable[str]) -> None:
        """Learn which of ``ids`` are spans (and of which instance), in a few queries.

        On PostgreSQL, read span ids *before* the idempotency keys of the same
        request: a concurrent commit of that request landing between the two
        reads then shows its keys too, so a retry replays instead of being
        answered ``conflict``.
        """
        checked, known = self._checked_spans, self.spans
        wanted = [i for i in dict.fromkeys(ids) if i not in checked and i not in known]
        if not wanted:
            return
        self._checked_spans.update(wanted)
        for span_id, instance_id in select_in(
            self._conn, "SELECT id, agent_instance_id FROM spans WHERE id IN ({})", wanted
        ):
            self.spans[span_id] = instance_id

    def prefetch_keys(self, scope: str, keys: Iterable[str]) -> None:
        """Read the stored idempotency rows of ``keys`` in ``scope`` not looked up yet."""
        self.prefetch_scoped_keys({scope: keys})

    def prefetch_scoped_keys(self, scoped: Mapping[str, Iterable[str]]) -> None:
        """:meth:`prefetch_keys` of several scopes at once: one query per 500 keys, not per scope.

        A request of a root call names four scopes, a key each.
        """
        selects: list[str] = []
        params: list[str] = []
        for scope, keys in scoped.items():
            checked = self._checked_keys.setdefault(scope, set())
            self._keys.setdefault(scope, {})
            wanted = [k for k in dict.fromkeys(keys) if k not in checked]
            checked.update(wanted)
            for start in range(0, len(wanted), _IN_CHUNK):
                chunk = wanted[start : start + _IN_CHUNK]
                if len(params) - len(selects) + len(chunk) > _IN_CHUNK:
                    self._read_keys(selects, params)
                    selects, params = [], []
                selects.append(
                    "SELECT scope, key, fingerprint, response FROM idempotency"
                    f" WHERE scope = ? AND key IN ({', '.join('?' * len(chunk))})"
                )
                params += (scope, *chunk)
        if selects:
            self._read_keys(selects, params)

    def _read_keys(self, selects: list[str], params: list[str]) -> None:
        stored = self._keys
        for scope, key, digest, response in self._conn.execute(
            " UNION ALL ".join(selects), params
        ).fetchall():
            stored[scope][key] = (digest, response)

    # --- lookups ----------------------------------------------------------------------------

    def keys_in(self, scope: str) -> tuple[dict[str, tuple[str, str]], set[str]]:
        """The stored rows of a scope's keys looked up so far, and every key looked up."""
        return self._keys.setdefault(scope, {}), self._checked_keys.setdefault(scope, set())

    def stored(self, scope: str, key: str) -> tuple[str, str] | None:
        """The stored ``(fingerprint, response)`` of a key, reading it unless prefetched."""
        checked = self._checked_keys.get(scope)
        if checked is None or key not in checked:
            self.prefetch_keys(scope, (key,))
        return self._keys[scope].get(key)

    def fresh(self, scope: str, key: str) -> tuple[str, str] | None:
        """The stored ``(fingerprint, response)`` of a key, read again now.

        For a rule that refused a request: on PostgreSQL another server may have
        committed the same request since the key was first read.
        """
        checked = self._checked_keys.get(scope)
        if checked is not None:
            checked.discard(key)
        return self.stored(scope, key)

    def instance(self, instance_id: str, *, lock: bool) -> tuple[Any, ...] | None:
        """A known instance row; ``None`` when it must be read (with ``lock``, if asked)."""
        row = self.instances.get(instance_id)
        if row is None and not lock:
            row = self._unlocked.get(instance_id)
        return row

    def instance_absent(self, instance_id: str) -> bool | None:
        """Whether no instance has this id; ``None`` when not known without reading."""
        if instance_id in self.instances or self._unlocked.get(instance_id) is not None:
            return False
        if instance_id in self._unlocked:
            # Read absent; on PostgreSQL it may be inserted meanwhile, and then our own
            # insert fails on the key and the request runs again.
            return True
        return None

    def remember(self, row: tuple[Any, ...]) -> None:
        """An instance row this transaction wrote or locked: safe to reuse until it commits."""
        self.instances[row[0]] = row

    def insert_instance(self, row: tuple[Any, ...]) -> None:
        """A new instance, to insert: no spans yet, and nobody else sees it."""
        self.new_instances[row[0]] = row
        self.remember(row)
        self.own.add(row[0])
        self.counts[row[0]] = {}

    def change_new_instance(self, row: tuple[Any, ...]) -> bool:
        """Whether the instance is still to insert; then ``row`` is its new state."""
        if row[0] not in self.new_instances:
            return False
        self.new_instances[row[0]] = row
        self.remember(row)
        return True

    def insert_spans(self, rows: list[tuple[Any, ...]]) -> None:
        """New span rows (:data:`SPAN_INSERT_COLUMNS`), to insert; counted where counts are kept."""
        self.new_spans += rows
        counts = self.counts
        if not counts:
            return
        for row in rows:
            known = counts.get(row[1])
            if known is not None:
                known[row[6]] = known.get(row[6], 0) + 1

    def span_finished(self, instance_id: str, before: str, after: str) -> None:
        """A span of the instance went from status ``before`` to ``after``."""
        known = self.counts.get(instance_id)
        if known is not None:
            known[before] -= 1
            known[after] = known.get(after, 0) + 1

    def counts_stable(self, instance_id: str) -> bool:
        """Whether the span counts of an instance can only change through this transaction."""
        return self.serial or instance_id in self.own

    # --- writing ----------------------------------------------------------------------------

    def flush(self) -> None:
        """Insert the new instances and spans now: a rule is about to read them with SQL."""
        if self.new_instances:
            self._database.insert_rows(
                "instances", self._columns, list(self.new_instances.values())
            )
            self.new_instances.clear()
        if self.new_spans:
            self._database.insert_rows("spans", SPAN_INSERT_COLUMNS, self.new_spans)
            self.new_spans = []

    def finish(self) -> None:
        """Insert everything still to insert: the transaction is about to commit."""
        self.flush()
        if self.idempotency_rows:
            self._database.insert_rows(
                "idempotency", "scope, key, fingerprint, response", self.idempotency_rows
            )
            self.idempotency_rows = []

    def stage_idempotency(self, scope: str, key: str, digest: str, response: str) -> None:
        """An answer to store under its key when the transaction commits.

        Not looked up again: a transaction answers each key once (a bulk request's
        keys are unique, a single request has one).
        """
        self.idempotency_rows.append((scope, key, digest, response))
