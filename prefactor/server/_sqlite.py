"""The SQLite backend: one guarded connection, the embedded default (stdlib only)."""

from __future__ import annotations

import functools
import math
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from prefactor.server._database import Dialect

__all__ = ["SQLITE", "SqliteDatabase"]

T = TypeVar("T")

SQLITE = Dialect(
    name="sqlite",
    # Writers hold the database's write lock from BEGIN IMMEDIATE on, so every row a
    # write transaction reads is already safe from other writers, in any process.
    lock_instance="",
    lock_span="",
    migration_lock=None,
    table_exists="SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
    serial_writes=True,
)


# Placeholders one statement may hold in any SQLite (the limit was 999 before 3.32).
_MAX_VARIABLES = 999
# Rows a rest as short as this goes in one statement of its own length.
_FEW_ROWS = 8
# Bound for None: SQLite stores a NaN as NULL, and binds a float without looking for an adapter.
_NULL = math.nan


def _values(rows: Iterable[Sequence[Any]]) -> list[Any]:
    """The values of ``rows`` in one list, each ``None`` as a NaN (both bind as NULL)."""
    return [_NULL if value is None else value for row in rows for value in row]


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: str, rows: int) -> str:
    marks = ", ".join("?" * (columns.count(",") + 1))
    return f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([f"({marks})"] * rows)


class SqliteDatabase:
    """A SQLite file (created with its directory, WAL journal) or ``":memory:"``.

    One connection serves every thread, one transaction at a time; several
    processes may share the file.
    """

    dialect = SQLITE

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self.connection = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, cached_statements=256
        )
        conn = self.connection
        if path != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            # A checkpoint fsyncs the database file; at the default 1,000 pages that
            # happened every bulk request and cost more than the inserts themselves.
            conn.execute("PRAGMA wal_autocheckpoint=10000")
            conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        # Page cache in KiB (negative): index pages of large bulk inserts stay in memory.
        conn.execute("PRAGMA cache_size=-65536")
        self._closed = False

    def run(self, write: bool, body: Callable[[], T]) -> T:
        """Call ``body`` in one transaction (see :class:`~prefactor.server._database.Database`)."""
        # Writers take the write lock up front (IMMEDIATE) so they never fail halfway
        # on a lock upgrade; readers stay deferred and never block a writer in another
        # process (e.g. the SDK's sink writing while `prefactor serve` reads the file).
        with self._lock:
            if self._closed:
                raise RuntimeError("the store is closed")
            conn = self.connection
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                result = body()
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            return result

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows``, as many per statement as its placeholders allow.

        A statement of many rows is stepped once: about a fifth less CPU per row
        than ``executemany`` of one row, which steps (and releases the GIL) per
        row. Full chunks share one cached statement; a rest of a few rows (a root
        call's idempotency rows, a single create) is one statement too, of that
        many rows, and a longer rest goes one row each, so that few distinct
        statements are cached.

        ``None`` is bound as a NaN, which SQLite stores as NULL too: the sqlite3
        module looks for an adapter for each ``None`` it binds (a span row has
        two or three), which cost more than binding the rest of the row.
        """
        conn = self.connection
        per = max(1, _MAX_VARIABLES // (columns.count(",") + 1))
        full = len(rows) - len(rows) % per
        if full:
            chunk = _insert_sql(table, columns, per)
            for start in range(0, full, per):
                conn.execute(chunk, _values(rows[start : start + per]))
        rest = len(rows) - full
        if 0 < rest <= _FEW_ROWS:
            conn.execute(_insert_sql(table, columns, rest), _values(rows[full:]))
        elif rest:
            conn.executemany(
                _insert_sql(table, columns, 1), (_values((row,)) for row in rows[full:])
            )

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Observe every statement run, transaction control included."""
        with self._lock:
            self.connection.set_trace_callback(callback)

    def close(self) -> None:
        """Close the connection; later calls raise ``RuntimeError``. Idempotent."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self.connection.close()
