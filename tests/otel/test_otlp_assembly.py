"""Trace assembly over the real store: waiting for parents, timeouts, late spans, stopping."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor.server.otlp import OtlpIngest
from prefactor.server.otlp_decode import IngestSpan
from prefactor.server.store import Store

TRACE = bytes.fromhex("4bf92f3577b34da6a3ce929d0e0e4736")
SECOND = 1_000_000_000
T0 = 1_760_000_000 * SECOND


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def span(
    span_id: int, parent: int | None, name: str, start: int, end: int, **attrs: Any
) -> IngestSpan:
    return IngestSpan(
        trace_id=TRACE,
        span_id=span_id.to_bytes(8, "big"),
        parent_id=parent.to_bytes(8, "big") if parent is not None else None,
        remote_parent=False,
        name=name,
        start_ns=T0 + start * SECOND,
        end_ns=T0 + end * SECOND,
        attributes=attrs,
        error=False,
        status_message="",
        exception_type=None,
        exception_message=None,
        service_name="svc",
    )


ROOT = span(1, None, "invoke_agent planner", 0, 10, **{"gen_ai.operation.name": "invoke_agent"})
TOOL = span(2, 1, "execute_tool search", 1, 2, **{"gen_ai.operation.name": "execute_tool"})
LEAF = span(3, 2, "http get", 1, 2)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(tmp_path / "ingest.db")
    yield opened
    opened.close()


def stored(store: Store) -> list[tuple[str, str, str | None]]:
    """(instance status, span type, parent span type) of everything stored."""
    out = []
    for inst in store.list_instances()["summaries"]:
        spans = store.list_spans(agent_instance_id=inst["id"])["summaries"]
        types = {s["id"]: s["schema_name"] for s in spans}
        out += [(inst["status"], s["schema_name"], types.get(s["parent_span_id"])) for s in spans]
    return sorted(out, key=lambda row: row[1])


def test_children_wait_across_requests_until_their_root_arrives(store: Store) -> None:
    ingest = OtlpIngest(store)
    assert ingest.ingest([LEAF]).waiting == 1
    assert ingest.ingest([TOOL]).waiting == 2
    assert stored(store) == []
    result = ingest.ingest([ROOT])
    assert (result.stored, result.waiting, result.rejected) == (3, 0, 0)
    assert stored(store) == [
        ("complete", "agent:planner", None),
        ("complete", "otel:http get", "tool:search"),
        ("complete", "tool:search", "agent:planner"),
    ]


def test_a_span_arriving_after_its_trace_finished_joins_its_parent(store: Store) -> None:
    ingest = OtlpIngest(store)
    ingest.ingest([ROOT, TOOL])
    assert ingest.ingest([LEAF]).stored == 1
    assert ("complete", "otel:http get", "tool:search") in stored(store)


def test_a_trace_whose_root_never_comes_is_stored_after_the_timeout_and_left_active(
    store: Store,
) -> None:
    clock = Clock()
    ingest = OtlpIngest(store, orphan_timeout=60, clock=clock)
    ingest.ingest([TOOL, LEAF])
    clock.now = 59
    assert ingest.ingest([]).stored == 0
    clock.now = 61
    assert ingest.ingest([]).stored == 2
    assert stored(store) == [
        ("active", "otel:http get", "tool:search"),
        ("active", "tool:search", None),
    ]


def test_a_root_arriving_after_its_stand_in_finishes_the_instance(store: Store) -> None:
    clock = Clock()
    ingest = OtlpIngest(store, orphan_timeout=60, clock=clock)
    ingest.ingest([TOOL])
    clock.now = 61
    ingest.ingest([])
    clock.now = 62
    assert ingest.ingest([ROOT]).stored == 1
    (inst,) = store.list_instances()["summaries"]
    assert inst["status"] == "complete"
    assert inst["span_counts"]["total"] == 2


def test_a_span_whose_parent_never_comes_is_stored_under_the_root(store: Store) -> None:
    clock = Clock()
    ingest = OtlpIngest(store, orphan_timeout=60, clock=clock)
    lost = span(9, 8, "orphan", 3, 4)
    ingest.ingest([ROOT, lost])
    assert ingest.waiting == 1
    clock.now = 61
    ingest.ingest([])
    assert ("complete", "otel:orphan", "agent:planner") in stored(store)


def test_stopping_the_server_stores_every_waiting_span(store: Store) -> None:
    ingest = OtlpIngest(store)
    ingest.ingest([TOOL, LEAF])
    result = ingest.flush()
    assert (result.stored, result.waiting) == (2, 0)
    assert len(stored(store)) == 2


def test_too_many_waiting_spans_store_the_oldest_traces_early(store: Store) -> None:
    ingest = OtlpIngest(store, max_waiting=1)
    ingest.ingest([TOOL])
    ingest.ingest([LEAF])
    assert ingest.waiting == 0
    assert len(stored(store)) == 2


def test_a_remote_parent_makes_a_span_the_root_of_its_trace(store: Store) -> None:
    ingest = OtlpIngest(store)
    remote = span(5, 77, "invoke_agent callee", 0, 1, **{"gen_ai.operation.name": "invoke_agent"})
    assert ingest.ingest([dataclasses.replace(remote, remote_parent=True)]).stored == 1
    assert stored(store) == [("complete", "agent:callee", None)]


def test_spans_whose_parents_form_a_cycle_are_still_stored_when_forced(store: Store) -> None:
    ingest = OtlpIngest(store)
    first, second = span(6, 7, "ping", 0, 1), span(7, 6, "pong", 1, 2)
    assert ingest.ingest([first, second]).stored == 0
    assert ingest.flush().stored == 2
    assert stored(store) == [("active", "otel:ping", None), ("active", "otel:pong", "otel:ping")]


def test_a_refused_register_refuses_its_spans_and_says_why(store: Store) -> None:
    ingest = OtlpIngest(store)
    taken = store.register_instance({"agent_id": "other"})["details"]["id"]
    root = span(1, None, "invoke_agent clash", 0, 2, **{"prefactor.instance.id": taken})
    child = span(2, 1, "step", 0, 1, **{"prefactor.span.type": "step:x"})
    result = ingest.ingest([child, root])
    assert (result.stored, result.rejected) == (0, 1)
    assert "agent_instances/register: conflict" in result.reason
    assert store.list_spans(agent_instance_id=taken)["summaries"] == []


def test_a_very_long_span_name_is_cut_in_its_type_and_kept_whole_in_its_params(
    store: Store,
) -> None:
    name = "step " + "x" * 5000
    assert OtlpIngest(store).ingest([span(4, None, name, 0, 1)]).stored == 1
    (inst,) = store.list_instances()["summaries"]
    (stored_span,) = store.list_spans(agent_instance_id=inst["id"])["summaries"]
    assert stored_span["schema_name"] == "otel:" + name[:200]
    assert stored_span["payload"]["name"] == name
