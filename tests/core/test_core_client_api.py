"""The prefactor-core API on the new pipeline, recorded into memory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from core_helpers import VERSION, llm_registry

from prefactor._client import PrefactorCoreClient
from prefactor._config import PrefactorCoreConfig
from prefactor._errors import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorTerminatedError,
    SchemaValidationError,
    SpanNotFoundError,
)
from prefactor._export._internal import set_raise_internal_errors
from prefactor._export.sinks import MemorySink
from prefactor._ids import is_pfid
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.decorator import traced
from prefactor.testing.spans import Trace


def _registry() -> SchemaRegistry:
    registry = llm_registry()
    registry.register_type(name="agent:step", params_schema={"type": "object"})
    return registry


class Harness:
    def __init__(self, client: PrefactorCoreClient, sink: MemorySink) -> None:
        self.client = client
        self.sink = sink

    async def trace(self) -> Trace:
        assert await self.client.flush(10)
        return Trace(self.sink.items)


@pytest.fixture
async def core() -> AsyncIterator[Harness]:
    set_raise_internal_errors(True)
    sink = MemorySink()
    config = PrefactorCoreConfig(schema_registry=_registry(), sink=sink, strict=False)
    async with PrefactorCoreClient(config) as client:
        yield Harness(client, sink)
    set_raise_internal_errors(None)


async def test_quick_start_flow_records_instance_and_span(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_id="my-agent", agent_version=VERSION)
    await instance.start()
    async with instance.span("agent:llm") as span:
        await span.start({"model": "gpt-4", "prompt": "Hello"})
        await span.complete({"response": "Hi"})
    await instance.finish()
    trace = await core.trace()
    (inst,) = trace.instances
    assert (inst.id, inst.agent_id, inst.status) == (instance.id, "my-agent", "complete")
    assert {k: v for k, v in inst.agent_version.items() if k != "runtime_environment"} == VERSION
    (rec,) = trace.spans
    assert (rec.id, rec.type, rec.status) == (span.id, "agent:llm", "complete")
    assert rec.params == {"model": "gpt-4", "prompt": "Hello"}
    assert rec.result == {"response": "Hi"}


async def test_ids_are_pfids_known_before_start(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    assert is_pfid(instance.id)
    async with instance.span("agent:step") as span:
        assert is_pfid(span.id)
        before = span.id
        await span.start({})
        assert span.id == before


async def test_exception_in_block_fails_span_and_propagates_unchanged(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    boom = RuntimeError("model timed out")
    with pytest.raises(RuntimeError) as info:
        async with instance.span("agent:step") as span:
            await span.start({})
            raise boom
    assert info.value is boom
    rec = (await core.trace()).span("agent:step")
    assert rec.status == "failed"
    assert rec.result == {"error": {"type": "RuntimeError", "message": "model timed out"}}


async def test_cancel_before_start_sends_pending_then_cancelled_with_default_payload(
    core: Harness,
) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step", payload={"query": "skipped"}) as span:
        await span.cancel()
    await core.client.flush(10)
    kinds = [(i["_type"], i.get("details", i).get("status")) for i in core.sink.items[1:]]
    assert kinds == [("agent_spans/create", "pending"), ("agent_spans/finish", "cancelled")]
    rec = (await core.trace()).span("agent:step")
    assert (rec.status, rec.params) == ("cancelled", {"query": "skipped"})


async def test_cancel_after_start_finishes_cancelled(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step") as span:
        await span.start({"a": 1})
        await span.cancel()
    assert (await core.trace()).span("agent:step").status == "cancelled"


async def test_exit_starts_and_finishes_with_default_payload_and_set_result(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step", payload={"q": 1}) as span:
        span.set_result({"a": 1})
        span.set_result({"b": 2})
    rec = (await core.trace()).span("agent:step")
    assert (rec.status, rec.params, rec.result) == ("complete", {"q": 1}, {"a": 1, "b": 2})


async def test_finish_is_idempotent(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step") as span:
        await span.complete({"x": 1})
        await span.finish()
        await span.fail({"late": True})
    await core.client.flush(10)
    # one record for the span: its create, already complete with the first result
    (item,) = [i for i in core.sink.items if i["_type"].startswith("agent_spans/")]
    assert (item["details"]["status"], item["details"]["result_payload"]) == ("complete", {"x": 1})


async def test_nested_spans_are_parented_and_a_child_starts_its_parent_first(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step", payload={"level": 0}) as parent:
        async with instance.span("agent:step", payload={"level": 1}) as child:
            await child.start()
        await parent.complete()
    await core.client.flush(10)
    creates = [i["details"] for i in core.sink.items if i["_type"] == "agent_spans/create"]
    assert [c["id"] for c in creates] == [parent.id, child.id]
    assert creates[1]["parent_span_id"] == parent.id


async def test_create_span_does_not_become_the_implicit_parent(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    first = await instance.create_span("agent:step", payload={"n": 1})
    async with instance.span("agent:step") as second:
        await second.start({"n": 2})
    await instance.finish_span(first, {"done": True})
    trace = await core.trace()
    assert trace.get(second.id).parent_id is None
    assert trace.get(first).result == {"done": True}


async def test_finish_span_of_unknown_id_raises(core: Harness) -> None:
    with pytest.raises(SpanNotFoundError):
        await core.client.finish_span("0" * 32)


async def test_record_quality_is_queued(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    await instance.record_quality("accuracy", {"score": 0.9})
    await core.client.record_quality(instance.id, "latency", {"ms": 12})
    inst = (await core.trace()).instances[0]
    assert inst.quality == {"accuracy": {"score": 0.9}, "latency": {"ms": 12}}


async def test_terminated_instance_refuses_new_spans(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    core.client.tracer.terminate(instance.id, "budget exceeded")
    assert instance.terminated
    assert instance.termination_reason == "budget exceeded"
    with pytest.raises(PrefactorTerminatedError, match="budget exceeded"):
        async with instance.span("agent:step"):
            pass


async def test_caller_supplied_instance_id_must_be_a_pfid(core: Harness) -> None:
    with pytest.raises(ValueError, match="PFID"):
        await core.client.create_agent_instance(agent_version=VERSION, instance_id="inst-1")


async def test_schema_version_identifier_is_a_content_hash(core: Harness) -> None:
    await core.client.create_agent_instance(agent_version=VERSION)
    await core.client.create_agent_instance(agent_version=VERSION)
    versions = [i.schema_version for i in (await core.trace()).instances]
    assert versions[0] == versions[1]
    assert versions[0] is not None
    assert versions[0]["external_identifier"] == _registry().version_identifier()


async def test_initialize_twice_raises_and_close_allows_reinitialize() -> None:
    client = PrefactorCoreClient(PrefactorCoreConfig(sink=MemorySink()))
    with pytest.raises(ClientNotInitializedError):
        await client.create_agent_instance(agent_version=VERSION)
    await client.initialize()
    with pytest.raises(ClientAlreadyInitializedError):
        await client.initialize()
    await client.close()
    await client.close()
    await client.initialize()
    await client.create_agent_instance(agent_version=VERSION)
    assert await client.flush(5)
    await client.close()


async def test_strict_mode_raises_on_bad_params_at_start() -> None:
    config = PrefactorCoreConfig(schema_registry=_registry(), sink=MemorySink(), strict=True)
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(agent_version=VERSION)
        with pytest.raises(SchemaValidationError) as info:
            async with instance.span("agent:llm") as span:
                await span.start({"model": "gpt-4"})
        assert (info.value.side, info.value.path) == ("params", "$")
        assert "'prompt' is a required property" in info.value.reason


async def test_concurrent_tasks_keep_their_own_parents(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)

    async def worker(n: int) -> tuple[str, str]:
        async with instance.span("agent:step", payload={"n": n}) as outer:
            await asyncio.sleep(0)
            async with instance.span("agent:step", payload={"n": n, "inner": True}) as inner:
                await asyncio.sleep(0)
            return outer.id, inner.id

    pairs = await asyncio.gather(*(worker(n) for n in range(20)))
    trace = await core.trace()
    for outer_id, inner_id in pairs:
        assert trace.get(inner_id).parent_id == outer_id
        assert trace.get(outer_id).parent_id is None


async def test_explicit_span_inside_a_traced_coroutine_follows_its_parent(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)

    @traced("agent:step")
    async def step(n: int) -> int:
        async with instance.span("agent:step", payload={"inner": True}) as inner:
            await inner.start()
        return n

    async with instance.span("agent:step", payload={"outer": True}) as outer:
        await outer.start()
        await step(1)
    await core.client.flush(10)
    creates = [i["details"] for i in core.sink.items if i["_type"] == "agent_spans/create"]
    assert [c["payload"] for c in creates] == [{"outer": True}, {"n": 1}, {"inner": True}]
    assert creates[1]["parent_span_id"] == outer.id
    assert creates[2]["parent_span_id"] == creates[1]["id"]


async def test_lenient_payloads_are_snapshots_taken_at_the_call(core: Harness) -> None:
    """Capture waits for the exporter's thread; later changes must not reach the span."""
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    params = {"model": "gpt-4", "prompt": "Hello"}
    history = ["first"]
    result = {"response": "Hi", "history": history}
    async with instance.span("agent:llm") as span:
        await span.start(params)
        params["model"] = "changed after start"
        await span.complete(result)
        history.append("appended after complete")
        result["response"] = "changed after complete"
    trace = await core.trace()
    rec = trace.get(span.id)
    assert rec.params == {"model": "gpt-4", "prompt": "Hello"}
    assert rec.result == {"response": "Hi", "history": ["first"]}


async def test_lenient_violations_are_flagged_on_both_sides_and_counted(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:llm") as span:
        await span.start({"model": "gpt-4"})  # no prompt
        await span.complete({"response": 42})
    trace = await core.trace()
    flagged = {(v["side"], v["path"]) for v in trace.get(span.id).violations}
    assert flagged == {("params", "$"), ("result", "$.response")}
    assert core.client.stats()["schema_violations"] == 2


async def test_lenient_secret_keys_are_redacted_though_captured_late(core: Harness) -> None:
    instance = await core.client.create_agent_instance(agent_version=VERSION)
    async with instance.span("agent:step", payload={"api_key": "sk-live-1", "n": 1}) as span:
        pass
    trace = await core.trace()
    assert trace.get(span.id).params == {"api_key": "[REDACTED]", "n": 1}


async def test_strict_mode_raises_on_a_bad_result_at_complete() -> None:
    sink = MemorySink()
    config = PrefactorCoreConfig(schema_registry=_registry(), sink=sink, strict=True)
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(agent_version=VERSION)
        with pytest.raises(SchemaValidationError) as info:
            async with instance.span("agent:llm") as span:
                await span.start({"model": "gpt-4", "prompt": "Hello"})
                await span.complete({"response": 42})
        assert (info.value.side, info.value.path) == ("result", "$.response")
        assert await client.flush(10)
    assert Trace(sink.items).get(span.id).status == "failed"
