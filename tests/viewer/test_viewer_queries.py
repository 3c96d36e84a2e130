"""The viewer's read queries on SQLite and PostgreSQL: order, keyset pages, filters, totals.

Each test runs on both backends (the ``db_target`` fixture of ``tests/conftest.py``);
the query-plan tests read SQLite's plans.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor._ids import generate_pfid
from prefactor.server._store_views import RunFilter
from prefactor.server.store import Store

SCHEMAS = {
    "external_identifier": "schemas-7",
    "span_type_schemas": [
        {
            "name": "agent:llm",
            "title": "LLM call",
            "params_schema": {
                "type": "object",
                "properties": {"model": {"type": "string"}},
                "required": ["model"],
            },
            "result_schema": {"type": "object"},
        },
        {"name": "tool:search", "params_schema": {"type": "object"}},
    ],
}


@pytest.fixture
def store(db_target: str) -> Iterator[Store]:
    """A new store on each backend."""
    s = Store(db_target)
    yield s
    s.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[Store]:
    """A new SQLite store, for the tests that read SQLite's query plans."""
    s = Store(tmp_path / "plans.db")
    yield s
    s.close()


def make_run(
    store: Store,
    agent_id: str = "agent-a",
    *,
    version: str = "1.0",
    finish: str | None = "complete",
    spans: tuple[str, ...] = ("complete",),
    schema: dict[str, Any] | None = None,
) -> str:
    """Register and start a run with one span per status given; finish it unless None."""
    body: dict[str, Any] = {"agent_id": agent_id, "agent_version": {"external_identifier": version}}
    if schema is not None:
        body["agent_schema_version"] = schema
    run_id: str = store.register_instance(body)["details"]["id"]
    store.start_instance(run_id, {})
    for status in spans:
        details: dict[str, Any] = {
            "agent_instance_id": run_id,
            "schema_name": "tool:search",
            "status": status,
            "payload": {"q": "x"},
        }
        if status == "failed":
            details["result_payload"] = {"error": {"type": "KeyError", "message": "'x'"}}
        if status == "flagged":
            details.update(
                status="complete",
                schema_name="agent:llm",
                schema_violations=[{"side": "params", "path": "$", "reason": "declared"}],
            )
        store.create_span({"details": details})
    if finish is not None:
        store.finish_instance(run_id, {"status": finish})
    return run_id


def walk_older(store: Store, run_filter: RunFilter, limit: int) -> list[list[str]]:
    pages = []
    before: int | None = None
    while True:
        page = store.run_page(run_filter, before=before, limit=limit)
        pages.append([r.id for r in page.rows])
        if page.older is None:
            return pages
        before = page.older


def test_runs_are_listed_newest_first(store: Store) -> None:
    ids = [make_run(store) for _ in range(3)]
    page = store.run_page(RunFilter())
    assert [r.id for r in page.rows] == ids[::-1]
    assert (page.matching, page.newer, page.older) == (3, None, None)


def test_older_pages_cover_every_run_once_in_order(store: Store) -> None:
    ids = [make_run(store, spans=()) for _ in range(23)]
    pages = walk_older(store, RunFilter(), 5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [run_id for page in pages for run_id in page] == ids[::-1]


def test_newer_pages_lead_back_to_the_same_pages(store: Store) -> None:
    for _ in range(12):
        make_run(store, spans=())
    pages = walk_older(store, RunFilter(), 4)
    last = store.run_page(RunFilter(), before=store.run_page(RunFilter(), limit=8).older, limit=4)
    assert [r.id for r in last.rows] == pages[2]
    middle = store.run_page(RunFilter(), after=last.newer, limit=4)
    assert [r.id for r in middle.rows] == pages[1]
    assert middle.newer is not None
    back = store.run_page(RunFilter(), before=middle.older, limit=4)
    assert [r.id for r in back.rows] == pages[2]


def test_a_newer_page_short_of_a_full_page_is_the_newest_page(store: Store) -> None:
    ids = [make_run(store, spans=()) for _ in range(6)]
    third = store.run(ids[3])
    assert third is not None
    page = store.run_page(RunFilter(), after=third.position, limit=4)
    assert [r.id for r in page.rows] == ids[::-1][:4]
    assert page.newer is None


@pytest.mark.parametrize(
    ("run_filter", "expected"),
    [
        pytest.param(RunFilter(agent_id="agent-b"), {"b-done", "b-failed"}, id="agent"),
        pytest.param(RunFilter(status="failed"), {"a-failed", "b-failed"}, id="status"),
        pytest.param(RunFilter(agent_id="agent-b", status="failed"), {"b-failed"}, id="both"),
        pytest.param(RunFilter(status="terminated"), set(), id="none"),
    ],
)
def test_filters_select_runs_by_agent_and_status(
    store: Store, run_filter: RunFilter, expected: set[str]
) -> None:
    names = {
        make_run(store, "agent-a"): "a-done",
        make_run(store, "agent-a", finish="failed"): "a-failed",
        make_run(store, "agent-b"): "b-done",
        make_run(store, "agent-b", finish="failed"): "b-failed",
    }
    page = store.run_page(run_filter)
    assert {names[r.id] for r in page.rows} == expected
    both = run_filter.agent_id is not None and run_filter.status is not None
    assert page.matching == (None if both else len(expected))  # both: not counted


def registered_long_ago(store: Store, run_id: str) -> None:
    """Only SQL can make a run registered years ago."""
    store._write(
        lambda: store._conn.execute(
            "UPDATE instances SET inserted_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?",
            (run_id,),
        )
    )


def test_the_time_filter_keeps_runs_registered_since_then(store: Store) -> None:
    old = make_run(store)
    registered_long_ago(store, old)
    new = [make_run(store), make_run(store)]
    page = store.run_page(RunFilter(since="2021-01-01T00:00:00.000000Z"))
    assert [r.id for r in page.rows] == new[::-1]
    assert page.matching == 2
    assert store.run_page(RunFilter(agent_id="agent-a", since="2021")).matching == 2


def test_a_time_window_with_no_run_in_it_lists_none(store: Store) -> None:
    make_run(store)
    page = store.run_page(RunFilter(since="2999-01-01T00:00:00.000000Z"))
    assert (page.rows, page.matching) == ([], 0)


def test_each_run_carries_its_version_and_span_totals(store: Store) -> None:
    run_id = make_run(
        store,
        version="2.1",
        spans=("complete", "failed", "failed", "flagged", "active"),
        schema=SCHEMAS,
    )
    quiet = make_run(store, spans=())
    rows = {r.id: r for r in store.run_page(RunFilter()).rows}
    run = rows[run_id]
    assert (run.version, run.status, run.spans, run.failed, run.flagged) == (
        "2.1",
        "complete",
        5,
        2,
        1,
    )
    assert (rows[quiet].spans, rows[quiet].failed, rows[quiet].flagged) == (0, 0, 0)


def test_one_run_is_read_with_its_totals_and_an_unknown_one_is_none(store: Store) -> None:
    run_id = make_run(store, finish=None, spans=("failed", "active"))
    run = store.run(run_id)
    assert run is not None
    assert (run.status, run.spans, run.failed, run.finished_at) == ("active", 2, 1, None)
    assert store.run(generate_pfid()) is None


def test_span_lines_carry_only_a_failed_spans_result(store: Store) -> None:
    run_id = make_run(store, spans=("complete", "failed", "flagged"), schema=SCHEMAS)
    lines = {
        line.status if line.violations == 0 else "flagged": line
        for line in store.span_lines(run_id)
    }
    assert lines["failed"].error_payload == {"error": {"type": "KeyError", "message": "'x'"}}
    assert lines["complete"].error_payload is None
    assert (lines["flagged"].violations, lines["flagged"].title) == (1, "LLM call")


def test_a_span_is_read_only_through_its_own_run(store: Store) -> None:
    run_id = make_run(store, spans=("complete",))
    other = make_run(store, spans=())
    (line,) = store.span_lines(run_id)
    span = store.span_of_run(run_id, line.id)
    assert span is not None and span["payload"] == {"q": "x"}
    assert store.span_of_run(other, line.id) is None


def test_the_schema_catalog_lists_span_types_and_the_versions_that_used_them(
    store: Store,
) -> None:
    make_run(store, "agent-a", version="1.0", schema=SCHEMAS)
    make_run(store, "agent-a", version="1.1", schema={"external_identifier": "schemas-7"})
    make_run(store, "agent-b", version="9")  # no schema version: nothing to list
    (entry,) = store.schema_catalog()
    assert (entry.agent_id, entry.external_identifier) == ("agent-a", "schemas-7")
    assert entry.agent_versions == ["1.0", "1.1"]
    assert [t.name for t in entry.span_types] == ["agent:llm", "tool:search"]
    assert entry.span_types[0].params is not None
    assert entry.span_types[0].params.schema["required"] == ["model"]
    assert store.schema_catalog("agent-b") == []


@pytest.mark.parametrize(
    "run_filter",
    [
        pytest.param(RunFilter(), id="all"),
        pytest.param(RunFilter(agent_id="agent-a"), id="agent"),
        pytest.param(RunFilter(status="failed"), id="status"),
        pytest.param(RunFilter(agent_id="agent-a", status="failed"), id="agent-and-status"),
        pytest.param(RunFilter(since="2020-01-01T00:00:00.000000Z"), id="since"),
    ],
)
@pytest.mark.parametrize("before", [None, 10**9])
def test_a_page_of_runs_is_read_from_an_index_in_order_without_sorting(
    sqlite_store: Store, run_filter: RunFilter, before: int | None
) -> None:
    """What keeps a page fast at 100,000 runs: no scan and sort of the whole table."""
    store = sqlite_store
    make_run(store)
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    store.run_page(run_filter, before=before)
    store.set_trace_callback(None)
    reads = [sql for sql in statements if sql.startswith("SELECT") and "FROM spans" not in sql]
    plans = [
        " | ".join(str(row[3]) for row in store._conn.execute("EXPLAIN QUERY PLAN " + sql))
        for sql in reads
    ]
    for plan in plans:
        assert "TEMP B-TREE" not in plan, plan  # rows come in the page's order: no sort
        if run_filter != RunFilter():  # every filter is answered by an index, not a scan
            assert not re.search(r"SCAN (i|instances)\b", plan), plan
    everything = " | ".join(plans)
    # Agent and status together: the index of one of them.
    named = [
        f"{c}=?" for c, v in (("agent_id", run_filter.agent_id), ("status", run_filter.status)) if v
    ]
    assert not named or any(term in everything for term in named), plans
    if run_filter.since is not None:  # a window: its first run found by the index, then rowids
        assert "USING COVERING INDEX instances_by_inserted (inserted_at>?)" in everything
        assert "rowid>?" in everything, plans


def test_a_filters_count_stops_one_past_the_cap_and_the_total_does_not(store: Store) -> None:
    for _ in range(8):
        make_run(store, spans=())
    assert store.run_page(RunFilter(status="complete"), limit=2, count_cap=5).matching == 6
    assert store.run_page(RunFilter(status="complete"), limit=2, count_cap=8).matching == 8
    assert store.run_page(RunFilter(), limit=2, count_cap=5).matching == 8


def test_the_schema_catalog_reads_only_the_agents_own_runs(sqlite_store: Store) -> None:
    store = sqlite_store
    make_run(store, "agent-a", schema=SCHEMAS)
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    store.schema_catalog()
    store.set_trace_callback(None)
    (used,) = [sql for sql in statements if "EXISTS" in sql]
    plan = " | ".join(str(row[3]) for row in store._conn.execute("EXPLAIN QUERY PLAN " + used))
    assert "SEARCH i USING INDEX instances_by_agent (agent_id=?)" in plan, plan
    assert "SCAN i" not in plan, plan
