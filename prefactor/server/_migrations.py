"""Versioned store layouts: one ordered list of migrations, each written for both databases.

A store records its layout version in ``meta`` (key ``store_version``).
Opening a store runs, in one write transaction, every migration above the
version it finds; a database written by a newer prefactor is refused rather
than guessed at. Files written before versions were recorded (release 0.1.0)
hold version 1's tables and no version row, and are read as version 1.

To change the layout, append a :class:`Migration` with the statements for each
database; never edit one that has shipped. ``STORE_VERSION`` follows the list.
A migration keeps every table and column the previous release uses, so that
its servers keep working during a rolling upgrade (docs: "Running it for a
team").
"""

from __future__ import annotations

from prefactor._errors import PrefactorError
from prefactor.server._database import Connection, Dialect

__all__ = ["MIGRATIONS", "STORE_VERSION", "Migration", "StoreVersionError", "migrate"]


class Migration:
    """One step of the layout, from ``version - 1`` to ``version``: its statements per database."""

    __slots__ = ("postgresql", "sqlite", "version", "why")

    def __init__(
        self, version: int, why: str, *, sqlite: tuple[str, ...], postgresql: tuple[str, ...]
    ) -> None:
        self.version = version
        self.why = why
        self.sqlite = sqlite
        self.postgresql = postgresql

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        """This step's statements for ``dialect``."""
        found: tuple[str, ...] = getattr(self, dialect.name)
        return found


class StoreVersionError(PrefactorError, RuntimeError):
    """The database was written by a newer prefactor, whose layout this one does not know."""


# Release 0.1.0's layout, as it wrote it. PostgreSQL has no implicit rowid, so its tables
# that are listed in insertion order carry an identity column of that name instead.
_V1_TABLES = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS agents (id TEXT PRIMARY KEY, inserted_at TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS deployments ("
    " agent_id TEXT NOT NULL, environment_id TEXT NOT NULL, id TEXT NOT NULL,"
    " PRIMARY KEY (agent_id, environment_id))",
    "CREATE TABLE IF NOT EXISTS agent_versions ("
    " id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, external_identifier TEXT NOT NULL,"
    " body TEXT NOT NULL, inserted_at TEXT NOT NULL,"
    " UNIQUE (agent_id, external_identifier))",
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " id TEXT PRIMARY KEY, agent_id TEXT NOT NULL, external_identifier TEXT NOT NULL,"
    " body TEXT NOT NULL, inserted_at TEXT NOT NULL,"
    " UNIQUE (agent_id, external_identifier))",
)
_V1_INSTANCES = (
    "CREATE TABLE IF NOT EXISTS instances ({rowid}"
    " id TEXT PRIMARY KEY, account_id TEXT NOT NULL, agent_id TEXT NOT NULL,"
    " agent_version_id TEXT NOT NULL, environment_id TEXT NOT NULL,"
    " agent_deployment_id TEXT NOT NULL, schema_version_id TEXT,"
    " status TEXT NOT NULL, purpose TEXT NOT NULL, external_identifier TEXT,"
    " started_at TEXT, finished_at TEXT, termination_reason TEXT,"
    " quality_payloads TEXT NOT NULL DEFAULT '{{}}',"
    " quality_summaries TEXT NOT NULL DEFAULT '{{}}',"
    " inserted_at TEXT NOT NULL, updated_at TEXT NOT NULL)"
)
_V1_SPANS = (
    "CREATE TABLE IF NOT EXISTS spans ({rowid}"
    " id TEXT PRIMARY KEY, agent_instance_id TEXT NOT NULL, parent_span_id TEXT,"
    " schema_name TEXT NOT NULL, schema_title TEXT, summary TEXT, status TEXT NOT NULL,"
    " payload TEXT NOT NULL, result_payload TEXT, schema_violations TEXT,"
    " started_at TEXT NOT NULL, finished_at TEXT, inserted_at TEXT NOT NULL,"
    " updated_at TEXT NOT NULL)"
)
_V1_INDEXES = (
    "CREATE INDEX IF NOT EXISTS instances_by_agent ON instances (agent_id)",
    "CREATE UNIQUE INDEX IF NOT EXISTS instances_by_external"
    " ON instances (agent_id, external_identifier) WHERE external_identifier IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS spans_by_instance ON spans (agent_instance_id, started_at)",
    "CREATE TABLE IF NOT EXISTS idempotency ("
    " scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " response TEXT NOT NULL, PRIMARY KEY (scope, key))",
)
_PG_ROWID = "rowid BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,"


def _v1(rowid: str) -> tuple[str, ...]:
    return (
        *_V1_TABLES,
        _V1_INSTANCES.format(rowid=rowid),
        _V1_SPANS.format(rowid=rowid),
        *_V1_INDEXES,
    )


# An idempotency row is small and only ever found by its key: in SQLite, a WITHOUT ROWID
# table keeps it in the key's own B-tree, one tree to write per span instead of two.
# PostgreSQL keeps every table as a heap beside its indexes: nothing to change there.
_V2_SQLITE_IDEMPOTENCY = (
    "CREATE TABLE idempotency_v2 ("
    " scope TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,"
    " response TEXT NOT NULL, PRIMARY KEY (scope, key)) WITHOUT ROWID",
    "INSERT INTO idempotency_v2 (scope, key, fingerprint, response)"
    " SELECT scope, key, fingerprint, response FROM idempotency",
    "DROP TABLE idempotency",
    "ALTER TABLE idempotency_v2 RENAME TO idempotency",
)

# The web viewer lists runs newest first (rowid order) by agent, status and time, a page
# at a time from where the last one ended. In SQLite every index ends with the rowid;
# PostgreSQL's agent index gains it, in place of the one that had the agent alone.
_V3_VIEWER_SQLITE = (
    "CREATE INDEX IF NOT EXISTS instances_by_status ON instances (status)",
    "CREATE INDEX IF NOT EXISTS instances_by_inserted ON instances (inserted_at)",
)
_V3_VIEWER_POSTGRESQL = (
    "CREATE INDEX IF NOT EXISTS instances_by_agent_rowid ON instances (agent_id, rowid)",
    "DROP INDEX IF EXISTS instances_by_agent",
    "CREATE INDEX IF NOT EXISTS instances_by_status ON instances (status, rowid)",
    "CREATE INDEX IF NOT EXISTS instances_by_inserted ON instances (inserted_at)",
)
# Quality payloads that break their schema are stored and flagged: the flags need a column.
# ADD COLUMN with a constant default rewrites nothing in either database, and the previous
# release's servers never name the column, so they keep working beside this one.
_V4_QUALITY_VIOLATIONS = (
    "ALTER TABLE instances ADD COLUMN quality_violations TEXT NOT NULL DEFAULT '{}'",
)

# A span created with the key derived from its id (what the SDK sends) keeps that key's
# fingerprint and memo in its own row: on SQLite, whose writers take turns, the span's id
# is then the key's only record, one B-tree fewer to write per span. PostgreSQL's servers
# write concurrently, and only the idempotency table's unique key keeps a key to one
# request there, so its rows leave the columns empty.
_V5_SPAN_CREATE_RECORD = (
    "ALTER TABLE spans ADD COLUMN create_digest TEXT",
    "ALTER TABLE spans ADD COLUMN create_memo TEXT",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "the layout of release 0.1.0", sqlite=_v1(""), postgresql=_v1(_PG_ROWID)),
    Migration(
        2,
        "idempotency keys in one B-tree (SQLite)",
        sqlite=_V2_SQLITE_IDEMPOTENCY,
        postgresql=(),
    ),
    Migration(
        3,
        "the web viewer's pages of runs, by agent, status and time",
        sqlite=_V3_VIEWER_SQLITE,
        postgresql=_V3_VIEWER_POSTGRESQL,
    ),
    Migration(
        4,
        "instances.quality_violations: the flags of quality payloads that break their schema",
        sqlite=_V4_QUALITY_VIOLATIONS,
        postgresql=_V4_QUALITY_VIOLATIONS,
    ),
    Migration(
        5,
        "spans.create_digest and create_memo: a span create's key recorded in its row",
        sqlite=_V5_SPAN_CREATE_RECORD,
        postgresql=_V5_SPAN_CREATE_RECORD,
    ),
)
STORE_VERSION = MIGRATIONS[-1].version


def _found_version(conn: Connection, dialect: Dialect) -> int:
    if conn.execute(dialect.table_exists, ("meta",)).fetchone() is None:
        return 0
    row = conn.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
    return 1 if row is None else int(row[0])


def migrate(conn: Connection, dialect: Dialect) -> int:
    """Bring the database up to layout :data:`STORE_VERSION`; the version it had.

    Runs inside the caller's write transaction, so that a failed step leaves
    the database as it was, and two servers starting at once upgrade it once.

    Raises:
        StoreVersionError: the database is newer than this prefactor.
    """
    if dialect.migration_lock is not None:
        conn.execute(dialect.migration_lock)
    found = _found_version(conn, dialect)
    if found > STORE_VERSION:
        raise StoreVersionError(
            f"the store has layout version {found}, newer than this prefactor knows"
            f" ({STORE_VERSION}): upgrade prefactor to open it"
        )
    if found == STORE_VERSION:
        return found
    for migration in MIGRATIONS[found:]:
        for statement in migration.statements(dialect):
            conn.execute(statement)
    conn.execute(
        "INSERT INTO meta (key, value) VALUES ('store_version', ?)"
        " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (str(STORE_VERSION),),
    )
    return found
