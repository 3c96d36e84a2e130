"""The SDK against the real server: what an agent did is exactly what the server holds."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from integration_helpers import Server

from prefactor import _runtime as runtime
from prefactor._api.client import PrefactorApiClient
from prefactor._client import PrefactorCoreClient
from prefactor._config import PrefactorCoreConfig
from prefactor._errors import PrefactorTerminatedError, SchemaValidationError
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.agents import agent, tool
from prefactor._tracing.decorator import traced


@tool
def fetch_page(url: str, timeout: float = 5.0) -> str:
    """Fetch a page."""
    return f"<html>{url}</html>"


@traced
def summarise(text: str, words: int = 10) -> dict[str, Any]:
    return {"summary": text[:words], "length": len(text)}


@agent(agent_id="research-agent", version="1.2.0")
def research(topic: str) -> str:
    page = fetch_page(f"https://example.org/{topic}")
    return str(summarise(page)["summary"])


def test_decorated_agent_is_read_back_from_the_server(server: Server) -> None:
    runtime.configure(sink=server.sink(), strict=True)
    assert research("llamas") == "<html>http"
    assert runtime.flush(10)
    assert runtime.stats()["rejected"] == 0
    (inst,) = server.instances()
    assert (inst["agent_id"], inst["status"]) == ("research-agent", "complete")
    counts = inst["span_counts"]
    assert (counts["total"], counts["complete"], counts["finished"]) == (3, 3, 3)
    spans = {s["schema_name"]: s for s in server.spans(inst["id"])}
    root = spans["agent:research"]
    assert root["parent_span_id"] is None
    assert root["payload"] == {"topic": "llamas"}
    assert root["result_payload"] == {"value": "<html>http"}
    tool_span = spans["tool:fetch_page"]
    assert tool_span["parent_span_id"] == root["id"]
    assert tool_span["payload"] == {"url": "https://example.org/llamas", "timeout": 5.0}
    step = spans["function:summarise"]
    page = "<html>https://example.org/llamas</html>"
    assert step["result_payload"] == {"summary": "<html>http", "length": len(page)}


def test_lenient_violation_is_stored_flagged_on_the_server(server: Server) -> None:
    registry = SchemaRegistry()
    registry.register_type(
        "agent:llm",
        {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]},
    )

    @traced("agent:llm")
    def llm(model: Any) -> str:
        return "ok"

    runtime.configure(sink=server.sink(), strict=False, registry=registry)
    llm(model=7)
    assert runtime.flush(10)
    assert runtime.stats()["rejected"] == 0
    (inst,) = server.instances()
    (span,) = server.spans(inst["id"])
    assert span["status"] == "complete"
    assert [v["path"] for v in span["schema_violations"]] == ["$.model"]


def test_strict_violation_raises_and_sends_nothing_invalid(server: Server) -> None:
    runtime.configure(sink=server.sink(), strict=True)
    with pytest.raises(SchemaValidationError):
        fetch_page(url=["not", "a", "string"])  # type: ignore[arg-type]
    assert runtime.flush(10)
    assert runtime.stats()["rejected"] == 0


async def test_core_client_quick_start_flow_lands_on_the_server(server: Server) -> None:
    registry = SchemaRegistry()
    registry.register_type(
        name="agent:llm",
        params_schema={
            "type": "object",
            "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
            "required": ["model", "prompt"],
        },
        result_schema={"type": "object", "properties": {"response": {"type": "string"}}},
    )
    config = PrefactorCoreConfig(
        http_config=server.http_config, schema_registry=registry, sink=server.sink()
    )
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(
            agent_id="my-agent", agent_version={"name": "My Agent", "external_identifier": "v1.0.0"}
        )
        await instance.start()
        async with instance.span("agent:llm") as span:
            await span.start({"model": "gpt-4", "prompt": "Hello"})
            await span.complete({"response": "Hi there"})
        async with instance.span("agent:llm", payload={"model": "m", "prompt": "p"}) as skipped:
            await skipped.cancel()

        await instance.finish()
        assert await client.flush(10)
        assert client.stats()["rejected"] == 0
    async with PrefactorApiClient(server.http_config, transport=server.transport) as api:
        got = await api.get_instance(instance.id)
        assert got.status == "complete"
        listed = await api.list_spans(instance.id)
    by_id = {s.id: s for s in listed.summaries}
    assert by_id[span.id].status == "complete"
    assert by_id[span.id].result_payload == {"response": "Hi there"}
    assert by_id[skipped.id].status == "cancelled"
    assert by_id[skipped.id].payload == {"model": "m", "prompt": "p"}


async def test_platform_termination_reaches_the_handle(server: Server) -> None:
    config = PrefactorCoreConfig(http_config=server.http_config, sink=server.sink())
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(agent_version={"name": "a"})
        await instance.start()
        assert await client.flush(10)
        server.store.terminate_instance(instance.id, {"reason": "operator stop"})
        async with instance.span("agent:step") as span:
            await span.start({})
        assert await client.flush(10)
        for _ in range(100):
            if instance.terminated:
                break
            await asyncio.sleep(0.01)
        assert instance.terminated
        assert instance.termination_reason == "operator stop"
        with pytest.raises(PrefactorTerminatedError, match="operator stop"):
            async with instance.span("agent:step"):
                pass


async def test_external_schema_version_id_names_the_registrys_version_then_refers_to_it(
    server: Server,
) -> None:
    registry = SchemaRegistry()
    registry.register_type("agent:step", {"type": "object", "required": ["n"]})
    with_registry = PrefactorCoreConfig(
        http_config=server.http_config, schema_registry=registry, sink=server.sink()
    )
    async with PrefactorCoreClient(with_registry) as client:
        first = await client.create_agent_instance(
            agent_id="ref", agent_version={"name": "a"}, external_schema_version_id="steps-v1"
        )
    config = PrefactorCoreConfig(http_config=server.http_config, sink=server.sink())
    async with PrefactorCoreClient(config) as client:
        second = await client.create_agent_instance(
            agent_id="ref", agent_version={"name": "a"}, external_schema_version_id="steps-v1"
        )
        unknown = await client.create_agent_instance(
            agent_id="ref", agent_version={"name": "a"}, external_schema_version_id="nope"
        )
        async with second.span("agent:step") as span:
            await span.start({"n": 1})
        assert await client.flush(10)
        stats = client.stats()
    ids = {inst["id"] for inst in server.instances()}
    assert {first.id, second.id} <= ids
    assert unknown.id not in ids
    assert stats["rejected"] == 1
    (stored,) = server.spans(second.id)
    assert stored["payload"] == {"n": 1}


async def test_single_endpoints_carry_declared_violations(server: Server) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with PrefactorApiClient(server.http_config, transport=server.transport) as api:
        inst = await api.register_instance(
            agent_version={"name": "a"},
            agent_schema_version={
                "external_identifier": "v1",
                "span_type_schemas": [{"name": "agent:step", "params_schema": schema}],
            },
        )
        declared = [{"side": "params", "path": "$.n", "reason": "'x' is not of type 'integer'"}]
        created = await api.create_span(
            inst.id, "agent:step", "active", payload={"n": "x"}, schema_violations=declared
        )
        await api.finish_span(created.details.id, "complete", result_payload={})
        (span,) = (await api.list_spans(inst.id)).summaries
    assert span.status == "complete"
    assert span.schema_violations is not None
    assert [(v.side, v.path) for v in span.schema_violations] == [("params", "$.n")]
