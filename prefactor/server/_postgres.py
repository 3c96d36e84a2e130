"""The PostgreSQL backend: a connection pool, and transactions that the database keeps honest.

Several ``prefactor serve`` processes may share one database, so nothing a
server remembers may decide an answer. The rules read rows that they are about
to change with ``FOR UPDATE`` (racing transitions of one instance or span
queue up behind each other), and every unique fact (ids, idempotency keys,
external identifiers) has a unique constraint behind the rules' own check.
When two servers race on one of those, the database makes the later commit
fail; :meth:`PostgresDatabase.run` then runs the request again from the start,
and the second attempt sees the winner's rows and answers as a retry would
(a replay, a ``409``), exactly as if the requests had arrived one after the
other.

Needs the ``postgres`` extra (psycopg 3).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg import errors
from psycopg.pq import TransactionStatus

from prefactor._errors import PrefactorConfigError, PrefactorError
from prefactor.server._database import Dialect, describe_target
from prefactor.server.store_common import ApiProblem

__all__ = ["POOL_SIZE", "POSTGRES", "PostgresDatabase"]

T = TypeVar("T")

POSTGRES = Dialect(
    name="postgresql",
    lock_instance=" FOR UPDATE",
    lock_span=" FOR UPDATE OF s",
    # Any fixed number will do: it names this lock among the database's advisory locks.
    migration_lock="SELECT pg_advisory_xact_lock(7342061155)",
    table_exists="SELECT 1 FROM information_schema.tables"
    " WHERE table_schema = current_schema() AND table_name = ?",
    serial_writes=False,
)

# Connections per server process. The HTTP layer runs store calls in a thread pool; a
# call waits for a free connection rather than opening more than the database allows.
POOL_SIZE = 8
_CONNECT_TIMEOUT_S = 10
# Runs of a request that lost a race before the store gives up with 503 (a retry of
# the request later will succeed). Each lost race means another transaction committed,
# so a second run nearly always settles it.
_ATTEMPTS = 8
_RACES = (errors.UniqueViolation, errors.DeadlockDetected, errors.SerializationFailure)
_log = logging.getLogger("prefactor.server")


class _StaleConnection(PrefactorError):
    """A pooled connection turned out dead before the transaction wrote anything."""


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """The rules' ``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Pool:
    """Up to ``size`` open connections, handed to one transaction at a time.

    Small on purpose: no background threads, so a CLI that reads one page opens
    one connection and leaves nothing running. A connection that comes back
    broken or mid-transaction is closed, not reused.
    """

    def __init__(self, url: str, size: int) -> None:
        self._url = url
        self._idle: list[psycopg.Connection[Any]] = []
        self._slots = threading.BoundedSemaphore(size)
        self._closed = False

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self._url, autocommit=True, connect_timeout=_CONNECT_TIMEOUT_S)

    def get(self) -> psycopg.Connection[Any]:
        """An idle connection, else a new one; waits while ``size`` are in use.

        Raises:
            TimeoutError: none was free within the timeout.
            psycopg.OperationalError: a new connection could not be opened.
        """
        if not self._slots.acquire(timeout=_CONNECT_TIMEOUT_S):
            raise TimeoutError("every connection stayed busy")
        try:
            return self._idle.pop()
        except IndexError:
            pass
        try:
            return self.connect()
        except BaseException:
            self._slots.release()
            raise

    def put(self, conn: psycopg.Connection[Any]) -> None:
        if self._closed or conn.closed or conn.info.transaction_status != TransactionStatus.IDLE:
            conn.close()
        else:
            self._idle.append(conn)
        self._slots.release()

    def add(self, conn: psycopg.Connection[Any]) -> None:
        """Keep a connection opened elsewhere as an idle one."""
        self._idle.append(conn)

    def close(self) -> None:
        """Close the idle connections now, and the busy ones when they come back."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


class _ThreadConnection:
    """The rules' ``self._conn``: whichever connection the calling thread's transaction holds."""

    def __init__(self) -> None:
        self._local = threading.local()
        self.trace: Callable[[str], object] | None = None

    def bind(self, conn: psycopg.Connection[Any] | None) -> None:
        self._local.conn = conn

    def _current(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None:
            raise RuntimeError("no store transaction is open in this thread")
        return conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        if self.trace is not None:
            self.trace(sql)
        return self._current().execute(_placeholders(sql), params)

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if self.trace is not None:
            self.trace(sql)
        with self._current().cursor() as cursor:
            cursor.executemany(_placeholders(sql), rows)

    def copy_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        statement = f"COPY {table} ({columns}) FROM STDIN"
        if self.trace is not None:
            self.trace(statement)
        with self._current().cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


class PostgresDatabase:
    """A PostgreSQL database named by a ``postgresql://`` URL (libpq's form).

    Args:
        url: the connection URL; its password is never shown in messages.

    Raises:
        PrefactorConfigError: the database cannot be reached, or refuses the login.
    """

    dialect = POSTGRES

    def __init__(self, url: str) -> None:
        self._shown = describe_target(url)
        self._pool = _Pool(url, POOL_SIZE)
        try:
            # The first connection is opened now, so that a wrong password or host is
            # reported when the store opens, with libpq's reason.
            self._pool.add(self._pool.connect())
        except psycopg.Error as exc:
            raise PrefactorConfigError(f"cannot open {self._shown}: {exc}") from None
        self.connection = _ThreadConnection()
        self._closed = False

    def run(self, write: bool, body: Callable[[], T]) -> T:
        """Call ``body`` in one transaction (see :class:`~prefactor.server._database.Database`).

        Raises:
            ApiProblem: 503 when the database is unreachable, or a request kept losing
                races (``body``'s own problems propagate unchanged).
            RuntimeError: the database is closed.
        """
        for attempt in range(_ATTEMPTS):
            if self._closed:
                raise RuntimeError("the store is closed")
            try:
                conn = self._pool.get()
            except TimeoutError:
                raise self._unavailable("no free connection within the timeout") from None
            except psycopg.OperationalError as exc:
                raise self._unavailable(f"cannot connect: {exc}") from None
            try:
                return self._attempt(conn, write, body)
            except _RACES as exc:
                _log.debug("store transaction lost a race (%s); running it again", type(exc))
                # Spread the runs of requests that collided, so they do not collide again.
                time.sleep(random.uniform(0, 0.002 * (attempt + 1)))
            except _StaleConnection:
                _log.info("a pooled database connection was dead; running the request again")
            finally:
                self._pool.put(conn)
        raise ApiProblem(
            503, "database_busy", "the request kept conflicting with concurrent ones; retry it"
        )

    def _attempt(self, conn: psycopg.Connection[Any], write: bool, body: Callable[[], T]) -> T:
        routed = self.connection
        trace = routed.trace
        committing = False
        routed.bind(conn)
        try:
            begin = "BEGIN" if write else "BEGIN READ ONLY"
            if trace is not None:
                trace(begin)
            conn.execute(begin)
            try:
                result = body()
            except BaseException:
                if not conn.broken:
                    conn.execute("ROLLBACK")
                raise
            if trace is not None:
                trace("COMMIT")
            committing = True
            conn.execute("COMMIT")
            return result
        except psycopg.OperationalError as exc:
            if isinstance(exc, _RACES):
                raise
            if conn.broken and not committing:
                # Nothing was committed: running the request again on a fresh connection is
                # safe (a database restart leaves every pooled connection dead like this).
                raise _StaleConnection from None
            # During COMMIT nobody can tell whether it happened, so the caller learns that
            # it failed and retries with its idempotency keys.
            raise self._unavailable(f"the database failed the transaction: {exc}") from None
        finally:
            routed.bind(None)

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` with ``COPY``: twice the rows per second of ``executemany``."""
        self.connection.copy_rows(table, columns, rows)

    def _unavailable(self, reason: str) -> ApiProblem:
        # The details (host, driver message) go to the server's log, not to API clients.
        _log.warning("database %s: %s", self._shown, reason)
        return ApiProblem(503, "database_unavailable", "the database is unavailable; retry later")

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Observe every statement run, transaction control included."""
        self.connection.trace = callback

    def close(self) -> None:
        """Close every pooled connection; later calls raise ``RuntimeError``. Idempotent."""
        if not self._closed:
            self._closed = True
            self._pool.close()
