"""Read queries of the web viewer: pages of runs, a run's span outline, the schema catalog.

Every statement here only reads, in standard SQL (row-value comparisons,
``CASE``, ``IN`` lists) with the store's ``?`` parameters, so a port of the
store to another engine can take this module as it is.

Pages of runs are keyset-paginated on ``(inserted_at, id)``, the
``instances_by_inserted`` index: a page costs the same at the first run and at
the hundred-thousandth, where ``OFFSET`` would read and discard every run
before it. Span counts and failure marks come from one grouped query over the
page's ids, not one query per run.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from prefactor.server.store_base import JSON, StoreBase
from prefactor.server.store_common import loads
from prefactor.server.store_schemas import QualityType, SpanType
from prefactor.server.store_spans import _SPAN_COLUMNS, _span_details

__all__ = [
    "COUNT_CAP",
    "INSTANCE_STATUSES",
    "Cursor",
    "RunFilter",
    "RunPage",
    "RunRow",
    "SchemaVersionEntry",
    "SpanLine",
    "ViewerReads",
]

# Runs matching a filter are counted up to this many: enough to say "10,000+", and a
# bound on the work of a filter that matches most of the table.
COUNT_CAP = 10_000
INSTANCE_STATUSES = ("pending", "active", "complete", "failed", "cancelled", "terminated")

_RUN_COLUMNS = (
    "i.id, i.agent_id, v.external_identifier, i.status, i.started_at, i.finished_at,"
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

    def where(self) -> tuple[list[str], list[Any]]:
        """The filter's SQL conditions on ``instances i`` and their parameters."""
        conditions: list[str] = []
        params: list[Any] = []
        for condition, value in (
            ("i.agent_id = ?", self.agent_id),
            ("i.status = ?", self.status),
            ("i.inserted_at >= ?", self.since),
        ):
            if value is not None:
                conditions.append(condition)
                params.append(value)
        return conditions, params


@dataclass(frozen=True, slots=True)
class Cursor:
    """A position in the newest-first order of runs: a run's ``(inserted_at, id)``."""

    inserted_at: str
    id: str


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run as the viewer lists it, with its span totals."""

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

    @property
    def cursor(self) -> Cursor:
        """This run's position in the newest-first order."""
        return Cursor(self.inserted_at, self.id)


@dataclass(frozen=True, slots=True)
class RunPage:
    """One page of runs, newest first.

    Attributes:
        rows: the runs of the page.
        matching: how many runs match the filter in all; with a filter, counted up to
            the cap and one more (the cap plus one means "more than the cap"); ``None``
            when the filter names both an agent and a status (not counted).
        newer: where the page of newer runs ends (``None`` on the newest page).
        older: where the page of older runs starts (``None`` on the oldest page).
    """

    rows: list[RunRow]
    matching: int | None
    newer: Cursor | None
    older: Cursor | None


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
        with self._tx(write=False) as conn:
            return [str(r[0]) for r in conn.execute("SELECT id FROM agents ORDER BY id")]

    def run_page(
        self,
        run_filter: RunFilter,
        *,
        before: Cursor | None = None,
        after: Cursor | None = None,
        limit: int = 50,
        count_cap: int = COUNT_CAP,
    ) -> RunPage:
        """A page of runs, newest first: the newest, or the one before or after a cursor.

        A page asked for ``after`` a cursor that has fewer than ``limit`` newer
        runs is the newest page, so "newer" never lands on a short page. With a
        filter, matching runs are counted up to ``count_cap`` and one more.
        """
        conditions, params = run_filter.where()
        with self._tx(write=False) as conn:
            matching: int | None = None
            if not conditions:  # the whole table: SQLite counts it from the smallest index
                matching = int(conn.execute("SELECT count(*) FROM instances i").fetchone()[0])
            elif run_filter.agent_id is None or run_filter.status is None:
                # One index range holds the matches; counting stops at the cap, as a filter
                # may match most of the table. (Agent and status together would have to
                # read every run of the agent: not counted.)
                matching = int(
                    conn.execute(
                        f"SELECT count(*) FROM (SELECT 1 FROM instances i {_where(conditions)}"
                        f" LIMIT {int(count_cap) + 1}) capped",
                        params,
                    ).fetchone()[0]
                )
            if after is not None:
                rows = self._runs(conn, conditions, params, after, ascending=True, limit=limit)
                if len(rows) > limit:
                    page = rows[:limit][::-1]
                    return RunPage(
                        self._with_totals(conn, page), matching, page[0].cursor, page[-1].cursor
                    )
                before = None
            rows = self._runs(conn, conditions, params, before, ascending=False, limit=limit)
            page = rows[:limit]
            return RunPage(
                self._with_totals(conn, page),
                matching,
                page[0].cursor if before is not None and page else None,
                page[-1].cursor if len(rows) > limit else None,
            )

    def _runs(
        self,
        conn: sqlite3.Connection,
        conditions: list[str],
        params: list[Any],
        cursor: Cursor | None,
        *,
        ascending: bool,
        limit: int,
    ) -> list[RunRow]:
        """Up to ``limit + 1`` runs past ``cursor`` (one more says whether another page exists)."""
        where = list(conditions)
        args = list(params)
        if cursor is not None:
            where.append(f"(i.inserted_at, i.id) {'>' if ascending else '<'} (?, ?)")
            args.extend((cursor.inserted_at, cursor.id))
        order = "ASC" if ascending else "DESC"
        found = conn.execute(
            f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} {_where(where)}"
            f" ORDER BY i.inserted_at {order}, i.id {order} LIMIT ?",
            (*args, limit + 1),
        ).fetchall()
        return [RunRow(*row) for row in found]

    def _with_totals(self, conn: sqlite3.Connection, rows: Sequence[RunRow]) -> list[RunRow]:
        if not rows:
            return []
        totals = {
            r[0]: (int(r[1]), int(r[2]), int(r[3]))
            for r in conn.execute(
                _SPAN_TOTALS.format(", ".join("?" * len(rows))), [row.id for row in rows]
            )
        }
        out = []
        for row in rows:
            spans, failed, flagged = totals.get(row.id, (0, 0, 0))
            out.append(
                RunRow(
                    row.id,
                    row.agent_id,
                    row.version,
                    row.status,
                    row.started_at,
                    row.finished_at,
                    row.inserted_at,
                    row.termination_reason,
                    row.external_identifier,
                    spans,
                    failed,
                    flagged,
                )
            )
        return out

    def run(self, instance_id: str) -> RunRow | None:
        """One run with its span totals, or ``None`` when there is no such run."""
        with self._tx(write=False) as conn:
            row = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM {_RUN_FROM} WHERE i.id = ?", (instance_id,)
            ).fetchone()
            if row is None:
                return None
            return self._with_totals(conn, [RunRow(*row)])[0]

    def span_lines(self, instance_id: str, limit: int = 10_000) -> list[SpanLine]:
        """A run's spans by start time, as light rows for its waterfall."""
        with self._tx(write=False) as conn:
            rows = conn.execute(
                "SELECT id, parent_span_id, schema_name, schema_title, status, started_at,"
                " finished_at, schema_violations,"
                " CASE WHEN status IN ('failed', 'cancelled') THEN result_payload END"
                " FROM spans WHERE agent_instance_id = ? ORDER BY started_at, id LIMIT ?",
                (instance_id, limit),
            ).fetchall()
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
        with self._tx(write=False) as conn:
            row = conn.execute(
                f"SELECT {_SPAN_COLUMNS} FROM spans s"
                " JOIN instances i ON i.id = s.agent_instance_id"
                " WHERE s.id = ? AND s.agent_instance_id = ?",
                (span_id, instance_id),
            ).fetchone()
        return None if row is None else _span_details(row)

    def schema_catalog(self, agent_id: str | None = None) -> list[SchemaVersionEntry]:
        """Every registered schema version (of one agent), newest first within each agent."""
        mine, params = ("s.agent_id = ?", (agent_id,)) if agent_id is not None else ("1 = 1", ())
        with self._tx(write=False) as conn:
            versions = conn.execute(
                "SELECT s.id, s.agent_id, s.external_identifier, s.inserted_at"
                f" FROM schema_versions s WHERE {mine}"
                " ORDER BY s.agent_id, s.inserted_at DESC, s.id",
                params,
            ).fetchall()
            # Which agent versions ran with each schema version: per pair of the same agent's
            # versions, the agent's runs newest first until one matches.
            used: dict[str, list[str]] = {}
            for schema_version_id, version in conn.execute(
                "SELECT s.id, v.external_identifier FROM schema_versions s"
                " JOIN agent_versions v ON v.agent_id = s.agent_id"
                f" WHERE {mine} AND EXISTS (SELECT 1 FROM instances i WHERE i.agent_id = s.agent_id"
                " AND i.schema_version_id = s.id AND i.agent_version_id = v.id)"
                " ORDER BY v.external_identifier",
                params,
            ):
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


def _where(conditions: Iterable[str]) -> str:
    joined = " AND ".join(conditions)
    return f"WHERE {joined}" if joined else ""
