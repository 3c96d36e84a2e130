"""Which database a store runs on: ``--db`` values, the SQL that differs, the backend interface.

A store's target is a file path (SQLite, the default) or a ``postgresql://``
URL. Everything the API's rules decide lives in the store's rule modules and
is written once; a backend contributes only what differs between databases:
how a connection is opened and shared, how a transaction is run (and retried
when another server won a race), and the few SQL fragments in
:class:`Dialect`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

from prefactor._errors import PrefactorConfigError

__all__ = [
    "POSTGRES_EXTRA_HINT",
    "Connection",
    "Database",
    "Dialect",
    "database_scheme",
    "describe_target",
    "is_database_url",
]

T = TypeVar("T")

POSTGRES_EXTRA_HINT = (
    "a postgresql:// store needs the postgres extra: pip install 'prefactor[postgres]'"
)
_POSTGRES_SCHEMES = frozenset({"postgresql", "postgres"})
# Two characters at least, so that a Windows drive (``C:\traces.db``) stays a path.
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):")


class Dialect:
    """The SQL fragments that differ between databases (one constant per backend).

    Statements are otherwise written once, with ``?`` placeholders; a backend
    whose driver wants another style translates them.

    Attributes:
        name: ``"sqlite"`` or ``"postgresql"``; picks a migration's statements.
        lock_instance: appended to the ``SELECT`` of an instance row that the
            transaction is about to change, so that racing transitions queue
            up behind it instead of overwriting each other.
        lock_span: the same for a span row read through ``spans s JOIN instances i``.
        migration_lock: a statement that serialises store upgrades, or ``None``
            when opening a write transaction already does.
        table_exists: a query with one placeholder, a table name, that returns a
            row when the table exists.
        serial_writes: a write transaction excludes every other writer from its
            start, so nothing it read can change before it ends.
    """

    __slots__ = (
        "lock_instance",
        "lock_span",
        "migration_lock",
        "name",
        "serial_writes",
        "table_exists",
    )

    def __init__(
        self,
        *,
        name: str,
        lock_instance: str,
        lock_span: str,
        migration_lock: str | None,
        table_exists: str,
        serial_writes: bool,
    ) -> None:
        self.name = name
        self.lock_instance = lock_instance
        self.lock_span = lock_span
        self.migration_lock = migration_lock
        self.table_exists = table_exists
        self.serial_writes = serial_writes


class Connection(Protocol):
    """What the rules call on ``self._conn``: the subset of DB-API both backends share."""

    def execute(self, sql: str, params: Any = ..., /) -> Any:
        """Run one statement; a cursor with ``fetchone``/``fetchall`` and iteration."""

    def executemany(self, sql: str, rows: Any, /) -> Any:
        """Run one statement for each row."""


class Database(Protocol):
    """One open database: a connection for the rules, and transactions to run them in."""

    @property
    def dialect(self) -> Dialect:
        """The SQL this database speaks where databases differ."""

    @property
    def connection(self) -> Connection:
        """What the rules execute statements on, in whatever transaction their thread runs."""

    def run(self, write: bool, body: Callable[[], T]) -> T:
        """Call ``body`` inside one transaction and commit what it wrote.

        ``body`` reaches the database through :attr:`connection`. It may be
        called more than once: a backend shared by several servers runs it
        again when the database refused it for a race another transaction won
        (the next attempt sees the winner's rows and answers as a retry would).
        An :class:`~prefactor.server.store_common.ApiProblem` it raises rolls
        the transaction back and propagates.

        Raises:
            RuntimeError: the database is closed.
        """

    def insert_rows(self, table: str, columns: str, rows: Sequence[Sequence[Any]]) -> None:
        """Insert ``rows`` (values for ``columns``, comma-separated) in the running transaction.

        The bulk path's writes: each backend uses its fastest way in.
        """

    def set_trace_callback(self, callback: Callable[[str], object] | None) -> None:
        """Observe every statement run, transaction control included."""

    def close(self) -> None:
        """Close the database; later calls raise ``RuntimeError``. Idempotent."""


def database_scheme(target: str | os.PathLike[str]) -> str | None:
    """The lower-cased scheme of a URL target; ``None`` for a file path.

    Raises:
        PrefactorConfigError: a URL of a scheme no backend supports.
    """
    match = _SCHEME.match(os.fspath(target))
    if match is None:
        return None
    scheme = match.group(1).lower()
    if scheme not in _POSTGRES_SCHEMES:
        raise PrefactorConfigError(
            f"unsupported database {scheme + ':'!r} in {describe_target(target)!r}: give a SQLite"
            " file path or a postgresql:// URL (write ./name for a file whose name has a colon)"
        )
    return "postgresql"


def is_database_url(target: str | os.PathLike[str]) -> bool:
    """Whether ``target`` is written as a URL (``scheme:...``) rather than a file path."""
    return _SCHEME.match(os.fspath(target)) is not None


def describe_target(target: str | os.PathLike[str]) -> str:
    """``target`` as it may be shown: a URL's password is masked.

    That is the password of its user part, and a ``password=`` parameter (libpq
    takes both); a URL too malformed to split has its whole user part masked.
    """
    text = os.fspath(target)
    if not is_database_url(text):
        return text
    parts = urlsplit(text)
    if parts.password is not None:
        user = parts.username or ""
        host = parts.netloc.rsplit("@", 1)[1]
        parts = parts._replace(netloc=f"{user}:***@{host}")
    elif "@" in text and "@" not in parts.netloc:
        # No '//' before the user part, so urlsplit did not see one: mask all of it.
        scheme, _, rest = text.partition(":")
        return f"{scheme}:***@{rest.rpartition('@')[2]}"
    if "password=" in parts.query:
        query = "&".join(
            "password=***" if item.startswith("password=") else item
            for item in parts.query.split("&")
        )
        parts = parts._replace(query=query)
    return urlunsplit(parts)
