"""Read queries of the web viewer: pages of runs, a run's span outline, the schema catalog.

Every statement here only reads, with the store's ``?`` placeholders and SQL
that SQLite and PostgreSQL both speak; each runs in the store's read
transaction, on whichever backend it has.

Runs are listed newest first in ``rowid`` order, the order the API's list
uses (SQLite's row id; an identity column on PostgreSQL). A page is keyset-
paginated: it starts below the last ``rowid`` the previous page showed, so the
thousandth page costs what the first does, where ``OFFSET`` would read and
discard every run before it. Each filter is answered in that order by an index
(migration 3): the agent's and the status' indexes hold ``rowid`` after their
column, and a time window becomes a lower bound on ``rowid``, found through
the ``inserted_at`` index. Span counts and failure marks come from one grouped
query over the page's runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from prefactor.server.store_base import JSON, StoreBase
from prefactor.server.store_common import loads
from prefactor.server.store_schemas import QualityType, SpanType
from prefactor.server.store_spans import _SPAN_COLUMNS, _span_details

__all__ = [
    "COUNT_CAP",
    "INSTANCE_STATUSES",
    "RunFilter",
    "RunPage",
    "RunRow",
    "SchemaVersionEntry",
    "SpanLine",
    "ViewerReads",
]

# Runs matching a filter are counted up to this many: enough to say "more than 10,000",
# and a bound on the work of a filter that matches most of the table.
COUNT_CAP = 10_000
INSTANCE_STATUSES = ("pending", "active", "complete", "failed", "cancelled", "terminated")

_RUN_COLUMNS = (
    "i.rowid, i.id, i.agent_id, v.external_identifier, i.status, i.started_at, i.finished_at,"
    " i.inserted_at, i.termination_reason, i.external_identifier"
)
_RUN_FROM = "instances i LEFT JOIN agent_versions v ON v.id = i.agent_version_id"
_SPAN_TOTALS = (
    "SELECT agent_instance_id, count(*),"
    " sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END),"
    " sum(CASE WHEN schema_violations IS NOT NULL AND schema_violations <> '[]'"
    " THEN 1 ELSE 0 END)"
    " FROM spans WHERE agent_instance_id IN ({}) GROUP BY agent_instance_id"
)


@dataclass(frozen=True, slots=True)
class RunFilter:
    """Which runs a page lists; ``None`` means any.

    Attributes:
        agent_id: only this agent's runs.
        status: only runs in this instance status.
        since: only runs registered at or after this store time (ISO, UTC).
    """

    agent_id: str | None = None
    status: str | None = None
    since: str | None = None


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the viewer lists it, with its span totals.

    Attributes:
        position: its place in the newest-first order (the row's ``rowid``).
    """

    position: int
    id: str
    agent_id: str
    version: str | None
    status: str
    started_at: str | None
    finished_at: str | None
    inserted_at: str
    termination_reason: str | None
    external_identifier: str | None
    spans: int = 0
    failed: int = 0
    flagged: int = 0


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, newest first.

    Attributes:
        rows: the runs of the page.
        matching: how many runs match the filter in all; with a filter, counted up to
            the cap and one more (the cap plus one means "more than the cap"); ``None``
            when the filter names both an agent and a status (not counted).
        newer: the position to list newer runs after (``None`` on the newest page).
        older: the position to list older runs before (``None`` on the oldest page).
    """

    rows: list[RunRow]
    matching: int | None
    newer: int | None
    older: int | None


@dataclass(frozen=True, slots=True)
class SpanLine:
    """What the waterfall needs of a span: no params, and the result only of a failure."""

    id: str
    parent_span_id: str | None
    schema_name: str
    title: str | None
    status: str
    started_at: str
    finished_at: str | None
    violations: int
    error_payload: Any


@dataclass(frozen=True, slots=True)
class SchemaVersionEntry:
    """One registered schema version of an agent, its span types and who used it."""

    id: str
    agent_id: str
    external_identifier: str
    inserted_at: str
    agent_versions: list[str]
    span_types: list[SpanType]
    quality: list[QualityType]


class ViewerReads(StoreBase):
    """The viewer's queries on top of :class:`StoreBase`."""

    def agent_ids(self) -> list[str]:
        """Every agent that has registered a run, by name."""
        return self._read(
            lambda: [str(r[0]) for r in self._conn.execute("SELECT id FROM agents ORDER BY id")]
        )

    def run_page(
        self,
        run_filter: RunFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
        count_cap: int = COUNT_CAP,
    ) -> RunPage:
        """A page of runs, newest first: the newest, or the one before or after a position.

        A page asked for ``after`` a position with fewer than ``limit`` newer runs
        is the newest page, so "newer" never lands on a short page.
        """
        return self._read(lambda: self._run_page(run_filter, before, after, limit, count_cap))

    def _run_page(
        self,
        run_filter: RunFilter,
        before: int | None,
        after: int | None,
        limit: int,
        count_cap: int,
    ) -> RunPage:
        conditions, params = self._conditions(run_filter)
        matching = self._count(run_filter, conditions, params, count_cap)
        if after is not None:
            rows = self._runs(conditions, params, "i.rowid > ?", after, limit)
            if len(rows) > limit:
                page = rows[:limit][::-1]
                return RunPage(
                    self._with_totals(page), matching, page[0].position, page[-1].position
                )
            before = None
        bound = None if before is None else "i.rowid < ?"
        rows = self._runs(conditions, params, bound, before, limit)
        page = rows[:limit]
        return RunPage(
            self._with_totals(page),
            matching,
            page[0].position if before is not None and page else None,
            page[-1].position if len(rows) > limit else None,
        )

    def _conditions(self, run_filter: RunFilter) -> tuple[list[str], list[Any]]:
        """The filter's SQL conditions on ``instances i`` and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        if run_filter.agent_id is not None:
            conditions.append("i.agent_id = ?")
            params.append(run_filter.agent_id)
        if run_filter.status is not None:
            conditions.append("i.status = ?")
            params.append(run_filter.status)
        if run_filter.since is not None:
            # The first run registered since then, through the inserted_at index: a bound
            # on rowid keeps the scan in rowid order (runs get their rowid as they are
            # registered). No run since then: no run matches.
            first = self._conn.execute(
                "SELECT rowid FROM instances WHERE inserted_at >= ? ORDER BY inserted_at LIMIT 1",
                (run_filter.since,),
            ).fetchone()
            conditions.append("i.rowid >= ?")
            params.append(first[0] if first is not None else _PAST_THE_END)
        return conditions, params

    def _count(
        self, run_filter: RunFilter, conditions: list[str], params: list[Any], count_cap: int
    ) -> int | None:
        if not conditions:  # the whole table: SQLite counts it from its smallest index
            return int(self._conn.execute("SELECT count(*) FROM instances").fetchone()[0])
        if run_filter.agent_id is not None and run_filter.status is not None:
            return None  # no one index holds the matches: it would read every run of the agent
        return int(
            self._conn.execute(
                f"SELECT count(*) FROM (SELECT 1 FROM instances i {_where(conditions)}"
                f" LIMIT {int(count_cap) + 1}) capped",
                params,
            ).fetchone()[0]
        )

    def _runs(
        self,
        conditions: list[str],
        params: list[Any],
        bound: str | None,
        position: int | None,
        limit: int,
    ) -> list[RunRow]:
        """Up to ``limit + 1`` runs past ``position`` (one more says whether another page exists).

        Newest first, or oldest first for a bound ``i.rowid > ?`` (a page of newer runs).
        """
        where = list(conditions)
        args = list(params)
        if bound is not None:
            where.append(bound)
            args.append(position)
        order = "ASC" if bound == "i.rowid > ?" else "DESC"
        found = self._conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} {_where(where)}"
            f" ORDER BY i.rowid {order} LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [RunRow(*row) for row in found]

    def _with_totals(self, rows: Sequence[RunRow]) -> list[RunRow]:
        if not rows:
            return []
        totals = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in self._conn.execute(
                _SPAN_TOTALS.format(", ".join("?" * len(rows))), [row.id for row in rows]
            ).fetchall()
        }
        out = []
        for row in rows:
            spans, failed, flagged = totals.get(row.id, (0, 0, 0))
            out.append(replace(row, spans=spans, failed=failed, flagged=flagged))
        return out

    def run(self, instance_id: str) -> RunRow | None:
        """One run with its span totals, or ``None`` when there is no such run."""

        def read() -> RunRow | None:
            row = self._conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE i.id = ?", (instance_id,)
            ).fetchone()
            return None if row is None else self._with_totals([RunRow(*row)])[0]

        return self._read(read)

    def span_lines(self, instance_id: str, limit: int = 10_000) -> list[SpanLine]:
        """A run's spans by start time, as light rows for its waterfall."""
        rows = self._read(
            lambda: self._conn.execute(
                "SELECT id, parent_span_id, schema_name, schema_title, status, started_at,"
                " finished_at, schema_violations,"
                " CASE WHEN status IN ('failed', 'cancelled') THEN result_payload END"
                " FROM spans WHERE agent_instance_id = ? ORDER BY started_at, id LIMIT ?",
                (instance_id, limit),
            ).fetchall()
        )
        return [
            SpanLine(
                id=row[0],
                parent_span_id=row[1],
                schema_name=row[2],
                title=row[3],
                status=row[4],
                started_at=row[5],
                finished_at=row[6],
                violations=len(loads(row[7])) if row[7] is not None else 0,
                error_payload=loads(row[8]) if row[8] is not None else None,
            )
            for row in rows
        ]

    def span_of_run(self, instance_id: str, span_id: str) -> JSON | None:
        """One span of a run in the API's shape, or ``None`` when the run has no such span."""
        row = self._read(
            lambda: self._conn.execute(
                f"SELECT {_SPAN_COLUMNS} FROM spans s"
                " JOIN instances i ON i.id = s.agent_instance_id"
                " WHERE s.id = ? AND s.agent_instance_id = ?",
                (span_id, instance_id),
            ).fetchone()
        )
        return None if row is None else _span_details(row)

    def schema_catalog(self, agent_id: str | None = None) -> list[SchemaVersionEntry]:
        """Every registered schema version (of one agent), newest first within each agent."""
        return self._read(lambda: self._schema_catalog(agent_id))

    def _schema_catalog(self, agent_id: str | None) -> list[SchemaVersionEntry]:
        mine, params = ("s.agent_id = ?", (agent_id,)) if agent_id is not None else ("1 = 1", ())
        versions = self._conn.execute(
            "SELECT s.id, s.agent_id, s.external_identifier, s.inserted_at"
            f" FROM schema_versions s WHERE {mine}"
            " ORDER BY s.agent_id, s.inserted_at DESC, s.id",
            params,
        ).fetchall()
        # Which agent versions ran with each schema version: per pair of the same agent's
        # versions, the agent's runs (its index) until one matches.
        used: dict[str, list[str]] = {}
        for schema_version_id, version in self._conn.execute(
            "SELECT s.id, v.external_identifier FROM schema_versions s"
            " JOIN agent_versions v ON v.agent_id = s.agent_id"
            f" WHERE {mine} AND EXISTS (SELECT 1 FROM instances i WHERE i.agent_id = s.agent_id"
            " AND i.schema_version_id = s.id AND i.agent_version_id = v.id)"
            " ORDER BY v.external_identifier",
            params,
        ).fetchall():
            used.setdefault(schema_version_id, []).append(version)
        entries = []
        for row in versions:
            schemas = self._schema_set(row[0])
            entries.append(
                SchemaVersionEntry(
                    id=row[0],
                    agent_id=row[1],
                    external_identifier=row[2],
                    inserted_at=row[3],
                    agent_versions=used.get(row[0], []),
                    span_types=sorted(schemas.span_types.values(), key=lambda t: t.name),
                    quality=sorted(schemas.quality.values(), key=lambda q: q.name),
                )
            )
        return entries


# A rowid no run has: the lower bound of a time window in which no run was registered.
_PAST_THE_END = 2**62


def _where(conditions: Sequence[str]) -> str:
    joined = " AND ".join(conditions)
    return f"WHERE {joined}" if joined else ""
