"""The offline spool: wire items a destination could not take, kept in a SQLite file for later.

With ``QueueConfig(spool_path=...)``, records an API sink could not deliver
(its retries ran out, or the process ended with a backlog) are written here
instead of being dropped. They are sent again, oldest first, when an exporter
for the same destination next starts, or by ``prefactor push``.

Each record is sent once:

* a row leaves the spool only after the destination settled it (accepted, or
  refused for good), so a process that dies while pushing loses nothing;
* rows hold the items the sink would have sent (a span created and finished
  together is one item, as in the original request), under their idempotency
  keys, so replaying something the destination already applied changes
  nothing there; the spool holds each key of a destination once;
* once an instance has rows in the spool, the exporter spools the rest of
  that instance too, so the destination never sees its records out of order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from prefactor._export.base import Drop, Sink, TransientExportError
from prefactor._export.sinks.bulk import coalesce, wire_form
from prefactor._records import JSONDict, Record

__all__ = ["DEFAULT_SPOOL_PATH", "PushResult", "Spool", "SpooledItem", "push"]

logger = logging.getLogger("prefactor.export")

DEFAULT_SPOOL_PATH = Path(".prefactor") / "spool.db"

_inherited: list[sqlite3.Connection] = []

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spool (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    destination TEXT NOT NULL,
    instance_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    item BLOB NOT NULL,
    records INTEGER NOT NULL,
    spooled_at REAL NOT NULL,
    UNIQUE (destination, idempotency_key)
)
"""


@dataclass(slots=True)
class SpooledItem:
    """A wire item read back from the spool: a record whose wire form is already made.

    ``records`` is how many of the SDK's records the item carries (two for a
    span created and finished in one item); counts are always in records.
    """

    row: int
    kind: str
    instance_id: str
    idempotency_key: str
    item: JSONDict | list[JSONDict]
    records: int

    def to_bulk_item(self) -> JSONDict:
        return self.item if isinstance(self.item, dict) else self.item[0]

    def to_bulk_items(self) -> list[JSONDict]:
        """Its wire items: one, or the several a record carried (spooled as their list)."""
        return [self.item] if isinstance(self.item, dict) else self.item


class Spool:
    """One spool file, shared by the sinks of a process; safe to use from any thread.

    The file and its directories are created on first use. Several processes
    may use one file (SQLite serialises writers).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0

    @property
    def path(self) -> Path:
        return self._path

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._conn is None or self._pid != os.getpid():
                if self._conn is not None:
                    # Inherited through fork: the parent's. Never use or close it here.
                    _inherited.append(self._conn)
                self._path.parent.mkdir(parents=True, exist_ok=True)
                conn = sqlite3.connect(
                    self._path, timeout=10, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute(_SCHEMA)
                self._conn, self._pid = conn, os.getpid()
            yield self._conn

    def add(self, destination: str, records: Sequence[Record]) -> tuple[list[Record], list[Drop]]:
        """Keep ``records`` for ``destination``; return those kept and those set aside.

        Records are coalesced as a bulk sink would send them. A key already
        spooled for the destination is not added twice.

        Raises:
            sqlite3.Error: the file could not be written.
        """
        rows: list[tuple[object, ...]] = []
        kept: list[Record] = []
        dropped: list[Drop] = []
        now = time.time()
        batch = coalesce(records)
        for unit in batch.units:
            wire = wire_form(unit, batch, dropped)
            if wire is None:
                continue
            key, blob = wire
            origin = batch.origin(unit)
            count = len(origin)
            rows.append((destination, unit.instance_id, unit.kind, key, blob, count, now))
            kept.extend(origin)
        if rows:
            self._write(
                "INSERT OR IGNORE INTO spool"
                " (destination, instance_id, kind, idempotency_key, item, records, spooled_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return kept, dropped

    def _write(self, sql: str, rows: Sequence[tuple[object, ...]]) -> None:
        """Run ``sql`` for every row in one transaction."""
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(sql, rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def last_row(self) -> int:
        """The newest row's number (0 when empty): a push can stop at what was there before."""
        if not self._path.exists():
            return 0
        with self._connection() as conn:
            (last,) = conn.execute("SELECT coalesce(max(id), 0) FROM spool").fetchone()
        return int(last)

    def pending(self, destination: str | None = None) -> int:
        """How many records wait (for ``destination``, or for any)."""
        if not self._path.exists():
            return 0
        with self._connection() as conn:
            if destination is None:
                (count,) = conn.execute("SELECT coalesce(sum(records), 0) FROM spool").fetchone()
            else:
                (count,) = conn.execute(
                    "SELECT coalesce(sum(records), 0) FROM spool WHERE destination = ?",
                    (destination,),
                ).fetchone()
        return int(count)

    def take(self, destination: str, after: int, upto: int, limit: int) -> list[SpooledItem]:
        """Up to ``limit`` items for ``destination`` with ``after < row <= upto``, oldest first."""
        with self._connection() as conn:
            found = conn.execute(
                "SELECT id, kind, instance_id, idempotency_key, item, records FROM spool"
                " WHERE destination = ? AND id > ? AND id <= ? ORDER BY id LIMIT ?",
                (destination, after, upto, limit),
            ).fetchall()
        return [
            SpooledItem(row, kind, instance, key, orjson.loads(blob), count)
            for row, kind, instance, key, blob, count in found
        ]

    def remove(self, rows: Sequence[int]) -> None:
        """Forget items the destination has settled."""
        if rows:
            self._write("DELETE FROM spool WHERE id = ?", [(row,) for row in rows])

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None and self._pid == os.getpid():
                conn.close()

    def __repr__(self) -> str:
        return f"Spool({str(self._path)!r})"


@dataclass(frozen=True, slots=True)
class PushResult:
    """What a push did, in records: accepted, refused for good, and still waiting."""

    sent: int = 0
    rejected: int = 0
    left: int = 0
    error: str | None = None


async def push(
    spool: Spool, sink: Sink, destination: str, *, upto: int | None = None, chunk: int = 500
) -> PushResult:
    """Send ``destination``'s spooled items through ``sink``, oldest first, and forget them.

    Stops at the first transient failure (what was settled before it is
    forgotten, the rest waits for the next push).

    Args:
        upto: only rows up to this number (``Spool.last_row()`` at start).
        chunk: items per ``sink.export`` call.
    """
    last = spool.last_row() if upto is None else upto
    after, sent, rejected, error = 0, 0, 0, None
    while True:
        items = spool.take(destination, after, last, chunk)
        if not items:
            break
        try:
            result = await sink.export(items)
        except TransientExportError as exc:
            waiting = {id(r) for r in (items if exc.pending is None else exc.pending)}
            items = [item for item in items if id(item) not in waiting]
            result, error = exc.partial, str(exc)
        spool.remove([item.row for item in items])
        refused = sum(_records(rejection.record) for rejection in result.rejected)
        sent += sum(item.records for item in items) - refused
        rejected += refused
        for rejection in result.rejected:
            logger.warning(
                "prefactor: %r refused spooled %s %s: %s (%s)",
                sink,
                rejection.record.kind,
                rejection.record.idempotency_key,
                rejection.message,
                rejection.code,
            )
        if error is not None:
            break
        after = items[-1].row
    return PushResult(sent, rejected, spool.pending(destination), error)


def _records(record: Record) -> int:
    return record.records if isinstance(record, SpooledItem) else 1
