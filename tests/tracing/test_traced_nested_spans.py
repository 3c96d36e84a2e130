"""Nested ``@traced`` calls: the span of a call inside a call, named late and queued whole.

A nested lenient call makes one object that is its live state and, once
finished, its own create record; its id is made from a sequence number when
first read. These tests check what reaches the sink from that path: ids,
parents, order, params, results and failures, including a middle span whose
children start before it ends, in this thread and in others.
"""

from __future__ import annotations

import gc
import threading
import types

import pytest
from tracing_helpers import Stored, type_of

from prefactor._ids import is_pfid, pfid_timestamp_ms
from prefactor._tracing.context import CURRENT_SPAN, ContextThreadPoolExecutor, in_context
from prefactor._tracing.decorator import traced
from prefactor._tracing.span_context import SpanContext
from prefactor._tracing.wrapper import TracedFunction
from prefactor.testing.recorder import Recorder


@traced(name="nested.leaf")
def leaf(x: int) -> int:
    return x * 10


@traced(name="nested.middle")
def middle(x: int) -> int:
    return leaf(x) + leaf(x + 1)


@traced(name="nested.root")
def root() -> int:
    return middle(1) + middle(5)


def test_three_levels_keep_their_parents_params_and_results(recorder: Recorder) -> None:
    assert root() == 10 + 20 + 50 + 60
    trace = recorder.trace()
    top = trace.span(type_of(root))
    mids = trace.spans_of_type(type_of(middle))
    assert [m.parent_id for m in mids] == [top.id, top.id]
    assert [m.params for m in mids] == [{"x": 1}, {"x": 5}]
    assert [m.result for m in mids] == [{"value": 30}, {"value": 110}]
    assert [m.status for m in mids] == ["complete", "complete"]
    leaves = trace.spans_of_type(type_of(leaf))
    assert [(s.parent_id, s.params, s.result) for s in leaves] == [
        (mids[0].id, {"x": 1}, {"value": 10}),
        (mids[0].id, {"x": 2}, {"value": 20}),
        (mids[1].id, {"x": 5}, {"value": 50}),
        (mids[1].id, {"x": 6}, {"value": 60}),
    ]
    ids = [s.id for s in trace.spans]
    assert len(set(ids)) == len(ids) == 7
    assert all(is_pfid(i) for i in ids)


def test_a_late_named_span_carries_its_start_time_and_the_instance_partition(
    recorder: Recorder,
) -> None:
    root()
    trace = recorder.trace()
    top = trace.span(type_of(root))
    for span in trace.spans_of_type(type_of(leaf)):
        # The id's timestamp is the span's own start, to the millisecond.
        assert span.started_at is not None
        assert span.started_at[:23] >= top.started_at[:23]  # type: ignore[index]
        assert pfid_timestamp_ms(span.id) >= pfid_timestamp_ms(top.id)
        # Spans of one instance share the PFID partition.
        assert span.id[10:16] == top.id[10:16]


def test_a_middle_span_sends_its_create_before_its_children_then_a_finish(
    recorder: Recorder,
) -> None:
    root()
    recorder.trace()
    spans = [i for i in recorder.sink.items if i["_type"].startswith("agent_spans/")]
    seen: set[str] = set()
    for item in spans:
        if item["_type"] == "agent_spans/create":
            d = item["details"]
            assert d["parent_span_id"] is None or d["parent_span_id"] in seen
            seen.add(d["id"])
        else:
            assert item["agent_span_id"] in seen
    finishes = [i for i in spans if i["_type"] == "agent_spans/finish"]
    # root and both middles had children: created active, finished later.
    assert len(finishes) == 3


def test_a_middle_span_that_raises_after_its_children_is_failed(recorder: Recorder) -> None:
    @traced
    def breaks() -> None:
        leaf(1)
        raise KeyError("gone")

    @traced
    def top() -> None:
        with pytest.raises(KeyError):
            breaks()

    top()
    trace = recorder.trace()
    broken = trace.span(type_of(breaks))
    assert broken.status == "failed"
    assert broken.result == {"error": {"type": "KeyError", "message": "'gone'"}}
    assert trace.span(type_of(leaf)).parent_id == broken.id


def test_a_leaf_that_raises_is_one_failed_create(recorder: Recorder) -> None:
    @traced
    def bad_leaf() -> None:
        raise ValueError("no")

    @traced
    def top() -> None:
        with pytest.raises(ValueError, match="no"):
            bad_leaf()

    top()
    trace = recorder.trace()
    bad = trace.span(type_of(bad_leaf))
    assert (bad.status, bad.result) == (
        "failed",
        {"error": {"type": "ValueError", "message": "no"}},
    )
    kinds = [
        i["_type"]
        for i in recorder.sink.items
        if i.get("agent_span_id") == bad.id or i.get("details", {}).get("id") == bad.id
    ]
    assert kinds == ["agent_spans/create"]


def test_children_in_pool_threads_name_a_nested_parent_consistently(recorder: Recorder) -> None:
    @traced
    def fan_out() -> list[int]:
        with ContextThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(leaf, range(16)))

    @traced
    def top() -> list[int]:
        return fan_out()

    assert top() == [x * 10 for x in range(16)]
    trace = recorder.trace()
    parent = trace.span(type_of(fan_out))
    assert parent.parent_id == trace.span(type_of(top)).id
    assert {s.parent_id for s in trace.spans_of_type(type_of(leaf))} == {parent.id}
    assert len(trace.spans_of_type(type_of(leaf))) == 16


def test_a_thread_child_started_as_its_parent_finishes_is_sent_once(recorder: Recorder) -> None:
    """The parent's create is claimed exactly once, by the parent or by the child."""
    release = threading.Event()
    threads: list[threading.Thread] = []

    @traced
    def spawner() -> None:
        thread = threading.Thread(target=in_context(lambda: (release.wait(5), leaf(1))))
        thread.start()
        threads.append(thread)

    @traced
    def top() -> None:
        spawner()
        release.set()
        threads[0].join()

    top()
    trace = recorder.trace()
    spawned = trace.span(type_of(spawner))
    assert trace.span(type_of(leaf)).parent_id == spawned.id
    creates = [
        i
        for i in recorder.sink.items
        if i["_type"] == "agent_spans/create" and i["details"]["id"] == spawned.id
    ]
    assert len(creates) == 1
    assert creates[0]["details"]["status"] == "complete"


def test_a_module_function_set_on_a_class_binds_like_a_method(recorder: Recorder) -> None:
    def scale(self: Scaler, x: int) -> int:
        return self.k * x

    class Scaler:
        k = 3
        traced_scale = traced(scale)

    @traced
    def top() -> int:
        return Scaler().traced_scale(2)

    assert top() == 6
    span = recorder.trace().span(
        "function:test_a_module_function_set_on_a_class_binds_like_a_method.<locals>.scale"
    )
    assert span.params == {"x": 2}
    assert span.result == {"value": 6}


def test_plain_functions_stay_plain_functions_and_methods_are_wrapt_wrappers() -> None:
    """Only what binds to an instance goes through wrapt (see the decorator's docstring)."""

    def local_function(x: int) -> int:
        return x

    def looks_like_a_method(self: object, x: int) -> int:
        return x

    class Holder:
        @traced
        def method(self, x: int) -> int:
            return x

    assert type(traced(local_function)) is types.FunctionType
    assert type(leaf) is types.FunctionType
    assert isinstance(Holder.__dict__["method"], TracedFunction)
    assert isinstance(traced(looks_like_a_method), TracedFunction)
    assert Holder().method(4) == 4


def test_strict_nested_calls_use_the_validators_of_their_own_instances_registry() -> None:
    """Validators are cached per registry generation: never reused across registries."""
    from prefactor import _runtime as runtime
    from prefactor._config import PrefactorCoreConfig
    from prefactor._errors import SchemaValidationError
    from prefactor._export.sinks import MemorySink
    from prefactor._schemas.registry import SchemaRegistry
    from prefactor._tracing.context import CURRENT_SPAN
    from prefactor._tracing.state import SpanState

    def registry_with(maximum: int | None) -> SchemaRegistry:
        registry = SchemaRegistry()
        n_schema: dict[str, object] = {"type": "integer"}
        if maximum is not None:
            n_schema["maximum"] = maximum
        registry.register_type(
            name="t:shared",
            params_schema={"type": "object", "properties": {"n": n_schema}},
            result_schema={"type": "object"},
        )
        return registry

    @traced("t:shared")
    def shared(n: int) -> int:
        return n

    loose, tight = (
        runtime.build_tracer(
            PrefactorCoreConfig(schema_registry=reg, sink=MemorySink(), strict=True)
        )
        for reg in (registry_with(None), registry_with(5))
    )
    in_loose = SpanState("0" * 32, loose.new_instance(agent_version={"name": "a"}), "root")
    in_tight = SpanState("1" * 32, tight.new_instance(agent_version={"name": "b"}), "root")
    try:
        for _ in range(3):  # alternate, so a cache keyed on anything else would be reused
            token = CURRENT_SPAN.set(in_loose)
            assert shared(9) == 9
            CURRENT_SPAN.reset(token)
            token = CURRENT_SPAN.set(in_tight)
            with pytest.raises(SchemaValidationError) as info:
                shared(9)
            CURRENT_SPAN.reset(token)
            assert (info.value.side, info.value.path) == ("params", "$.n")
    finally:
        loose.close(5)
        tight.close(5)


async def test_a_traced_call_inside_a_span_context_not_started_yet_is_stored_under_it(
    stored: Stored,
) -> None:
    """The child starts its explicit parent first: the store never sees a child first."""
    inst = stored.tracer.new_instance(agent_version={"name": "explicit"}, use_registry=False)

    @traced(name="nested.inside_explicit")
    def child(x: int) -> int:
        return x

    async with SpanContext(inst, "explicit:parent"):
        assert child(1) == 1  # the block never calls start()
    parent = stored.span("explicit:parent")
    assert (parent["status"], parent["parent_span_id"]) == ("complete", None)
    assert stored.span(type_of(child))["parent_span_id"] == parent["id"]


def test_a_finished_span_waiting_to_be_sent_keeps_no_dict_alive(stored: Stored) -> None:
    # Each container a queued span holds is one more for the garbage collector to walk
    # while the span waits for the exporter: the claim on its create and an empty
    # **kwargs are let go of when the call ends.
    spans: list[object] = []

    @traced(name="nested.kept")
    def kept(x: int, label: str) -> str:
        spans.append(CURRENT_SPAN.get())
        return label

    @traced(name="nested.around")
    def around() -> str:
        return kept(3, "three")

    around()
    (span,) = spans
    assert [r for r in gc.get_referents(span) if isinstance(r, dict)] == []
    stored_span = stored.span(type_of(kept))
    assert (stored_span["payload"], stored_span["result_payload"]) == (
        {"x": 3, "label": "three"},
        {"value": "three"},
    )
