"""What the viewer computes for its pages: bar geometry, axis ticks, JSON trees, filters."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from prefactor.server._store_views import RunRow, SpanLine
from prefactor.server._viewer.present import (
    decode_position,
    json_tree,
    parse_filter,
    schema_fields,
    schema_type,
    span_detail,
    waterfall,
)

T0 = "2026-02-09T10:00:00.000000Z"


def at(ms: float) -> str:
    """The store time ``ms`` milliseconds after T0."""
    seconds, frac = divmod(round(ms * 1000), 1_000_000)
    return f"2026-02-09T10:00:{seconds:02d}.{frac:06d}Z"


def run(status: str = "complete", start: float = 0, end: float | None = 1000) -> RunRow:
    return RunRow(
        1,
        "run-1",
        "agent",
        "1.0",
        status,
        at(start),
        None if end is None else at(end),
        T0,
        None,
        None,
    )


def line(
    span_id: str,
    start: float,
    end: float | None,
    *,
    parent: str | None = None,
    status: str = "complete",
    error: Any = None,
) -> SpanLine:
    return SpanLine(
        span_id,
        parent,
        f"tool:{span_id}",
        None,
        status,
        at(start),
        None if end is None else at(end),
        0,
        error,
    )


def test_bars_are_placed_by_start_and_duration_within_the_run() -> None:
    chart = waterfall(
        run(),
        [
            line("root", 0, 1000),
            line("a", 100, 350, parent="root"),
            line("b", 500, 1000, parent="root"),
        ],
        now=at(5000),
    )
    assert [(r.span.id, r.depth, r.left, r.width) for r in chart.rows] == [
        ("root", 0, 0.0, 100.0),
        ("a", 1, 10.0, 25.0),
        ("b", 1, 50.0, 50.0),
    ]
    assert [r.duration for r in chart.rows] == ["1000.0ms", "250.0ms", "500.0ms"]


def test_children_follow_their_parent_in_start_order_whatever_the_input_order() -> None:
    chart = waterfall(
        run(),
        [
            line("late", 600, 700, parent="root"),
            line("early", 10, 20, parent="root"),
            line("root", 0, 1000),
        ],
        now=at(1000),
    )
    assert [r.span.id for r in chart.rows] == ["root", "early", "late"]


def test_a_running_span_reaches_now_and_is_marked_running() -> None:
    chart = waterfall(
        run("active", end=None),
        [line("root", 0, None, status="active"), line("done", 0, 200, parent="root")],
        now=at(400),
    )
    root, done = chart.rows
    assert (root.left, root.width, root.running, root.duration) == (0.0, 100.0, True, "400.0ms …")
    assert (done.width, done.running) == (50.0, False)


def test_a_zero_length_span_still_shows_as_a_sliver_inside_the_axis() -> None:
    chart = waterfall(
        run(), [line("root", 0, 1000), line("blink", 1000, 1000, parent="root")], now=at(1000)
    )
    blink = chart.rows[1]
    assert blink.width == 0.25 and blink.left + blink.width <= 100.0


def test_a_failed_spans_error_is_read_for_its_row() -> None:
    error = {"error": {"type": "TimeoutError", "message": "slow"}}
    chart = waterfall(run(), [line("x", 0, 10, status="failed", error=error)], now=at(10))
    assert chart.rows[0].error == ("TimeoutError", "slow")


@pytest.mark.parametrize(
    ("total_ms", "labels"),
    [
        pytest.param(1000, ["0", "200ms", "400ms", "600ms", "800ms", "1s"], id="a-second"),
        pytest.param(45, ["0", "10ms", "20ms", "30ms", "40ms"], id="ms"),
        pytest.param(0.3, ["0", "50µs", "100µs", "150µs", "200µs", "250µs", "300µs"], id="sub-ms"),
    ],
)
def test_the_axis_has_round_ticks_across_the_run(total_ms: float, labels: list[str]) -> None:
    chart = waterfall(run(end=total_ms), [line("root", 0, total_ms)], now=at(total_ms))
    assert [label for _, label in chart.ticks] == labels
    assert chart.ticks[0][0] == 0.0 and chart.ticks[-1][0] <= 100.0


def test_json_tree_paths_are_written_as_violations_write_them() -> None:
    tree = json_tree({"messages": [{"role": "user"}], "odd key": 1})
    assert tree.children is not None
    messages, odd = tree.children
    assert (tree.path, messages.path, odd.path) == ("$", "$.messages", '$["odd key"]')
    assert messages.children is not None and messages.children[0].children is not None
    assert messages.children[0].children[0].path == "$.messages[0].role"


def test_json_tree_flags_the_node_at_a_violations_path_and_opens_its_ancestors() -> None:
    deep = {"a": {"b": {"c": {"d": [1, "two"]}}}}
    tree = json_tree(deep, {"$.a.b.c.d[1]": ["'two' is not of type 'integer'"]})
    node = tree
    opened = []
    while node.children:
        opened.append(node.open)
        node = node.children[-1]
    assert node.path == "$.a.b.c.d[1]" and node.marks == ["'two' is not of type 'integer'"]
    assert all(opened)


def test_json_tree_starts_deep_and_large_containers_closed() -> None:
    tree = json_tree({"a": {"b": {"c": 1}}, "big": list(range(100))})
    assert tree.children is not None
    a, big = tree.children
    assert (tree.open, a.open, big.open) == (True, True, False)
    assert a.children is not None and a.children[0].open is False


def test_json_tree_does_not_take_a_sibling_with_a_longer_name_for_a_child() -> None:
    tree = json_tree(
        {"a": {"x": {"y": 1}}, "ab": {"x": {"y": 1}}}, {"$.ab.x.y": ["bad"]}, open_depth=0
    )
    assert tree.children is not None
    a, ab = tree.children
    assert (a.open, ab.open) == (False, True)


def test_json_tree_shows_scalars_as_json_text() -> None:
    tree = json_tree({"s": 'say "hi"', "n": 1.5, "t": True, "z": None})
    assert tree.children is not None
    assert [(c.kind, c.text) for c in tree.children] == [
        ("string", '"say \\"hi\\""'),
        ("number", "1.5"),
        ("boolean", "true"),
        ("null", "null"),
    ]


def test_a_failed_spans_detail_shows_its_error_instead_of_a_result() -> None:
    span = {
        "id": "s1",
        "schema_name": "tool:x",
        "status": "failed",
        "started_at": at(0),
        "finished_at": at(5),
        "payload": {"q": 1},
        "result_payload": {"error": {"type": "ValueError", "message": "bad q"}},
        "schema_violations": [
            {"side": "params", "path": "$.q", "reason": "1 is not of type 'string'"}
        ],
    }
    detail = span_detail(span, now=at(10))
    assert detail.error == ("ValueError", "bad q")
    assert detail.result is None
    assert detail.params.children is not None
    assert detail.params.children[0].marks == ["1 is not of type 'string'"]
    assert detail.duration == "5.0ms"


def test_filters_from_the_query_string_ignore_unknown_values() -> None:
    now = datetime(2026, 2, 9, 12, 0, tzinfo=UTC)
    run_filter, form = parse_filter({"agent": " bot ", "status": "exploded", "window": "1h"}, now)
    assert (run_filter.agent_id, run_filter.status, run_filter.since) == (
        "bot",
        None,
        "2026-02-09T11:00:00.000000Z",
    )
    assert form.query(before="c") == {"agent": "bot", "window": "1h", "before": "c"}


@pytest.mark.parametrize(
    ("text", "position"),
    [("1234", 1234), ("", None), (None, None), ("-1", None), ("1e3", None), ("9" * 20, None)],
)
def test_a_page_position_is_a_plain_number_and_anything_else_is_none(
    text: str | None, position: int | None
) -> None:
    assert decode_position(text) == position


def test_schema_fields_list_top_level_properties_with_types_and_defaults() -> None:
    schema = {
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "limit": {"type": "integer", "default": 3},
            "tags": {"type": "array", "items": {"enum": ["a", "b"]}},
            "x": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        "required": ["query"],
    }
    assert [(f.name, f.type, f.required, f.default) for f in schema_fields(schema)] == [
        ("query", "string", True, None),
        ("limit", "integer", False, "3"),
        ("tags", 'array of "a" | "b"', False, None),
        ("x", "string | null", False, None),
    ]
    assert schema_type({}) == "any"
    assert schema_fields({"type": "string"}) == []
