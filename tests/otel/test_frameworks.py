"""Real agent frameworks, instrumented with OpenTelemetry, offline, into ``prefactor serve``.

pydantic-ai emits GenAI spans natively; the OpenAI Agents SDK is traced by
OpenInference's instrumentor. Neither reaches a model over the network: a
``TestModel`` and a model stub answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from agents import Agent as OpenAIAgent
from agents import RunConfig, Runner, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.tracing import generation_span
from agents.usage import Usage
from ingest_helpers import by_type, otel_provider, tree
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)
from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent
from pydantic_ai.models.instrumented import InstrumentationSettings
from pydantic_ai.models.test import TestModel

from prefactor.testing.server import LocalServer


def render(server: LocalServer) -> str:
    """The stored trees as indented lines: type, status, params and result."""
    lines = []
    for inst in tree(server):
        lines.append(f"instance agent={inst['agent_id']} status={inst['status']}")
        children: dict[str | None, list[dict[str, object]]] = {}
        for span in inst["spans"]:
            children.setdefault(span["parent_span_id"], []).append(span)

        def walk(parent: str | None, depth: int) -> None:
            for span in children.get(parent, []):
                lines.append(
                    f"{'  ' * depth}{span['schema_name']} [{span['status']}]"
                    f" params={span['payload']} result={span['result_payload']}"
                )
                walk(str(span["id"]), depth + 1)

        walk(None, 1)
    return "\n".join(lines)


async def test_pydantic_ai_agent_with_a_tool_is_stored_with_its_tool_and_llm_spans(
    server: LocalServer,
) -> None:
    agent = Agent(TestModel(), name="weather", instructions="Answer briefly.")

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The weather of a city."""
        return f"sunny in {city}"

    with otel_provider(server) as provider:
        agent.instrument = InstrumentationSettings(tracer_provider=provider)
        result = await agent.run("What is the weather in Paris?")
    print(render(server))
    (inst,) = tree(server)
    assert (inst["agent_id"], inst["status"]) == ("weather", "complete")
    spans = inst["spans"]
    types = sorted(s["schema_name"] for s in spans)
    assert types == ["agent:weather", "llm", "llm", "tool:get_weather"]
    named = by_type(inst)
    root, tool = named["agent:weather"], named["tool:get_weather"]
    assert root["parent_span_id"] is None
    assert root["result_payload"] == {"output": json.loads(result.output)}
    assert tool["parent_type"] == "agent:weather"
    assert tool["payload"] == {"city": "a"}
    assert tool["result_payload"] == {"value": "sunny in a"}
    assert not tool["schema_violations"]
    first_llm = min((s for s in spans if s["schema_name"] == "llm"), key=lambda s: s["started_at"])
    assert first_llm["payload"]["model"] == "test"
    assert first_llm["payload"]["tools"] == ["get_weather"]
    assert first_llm["payload"]["messages"][0]["parts"][0]["content"] == (
        "What is the weather in Paris?"
    )
    usage = first_llm["result_payload"]["usage"]
    assert usage["input_tokens"] > 0 and usage["output_tokens"] > 0
    assert first_llm["result_payload"]["messages"][0]["parts"][0]["name"] == "get_weather"


class StubModel(Model):
    """A model that asks for the weather tool once, then answers: no network, no key."""

    async def get_response(  # type: ignore[override]
        self, system_instructions: str | None, input: Any, *args: Any, **kwargs: Any
    ) -> ModelResponse:
        items = [{"role": "user", "content": input}] if isinstance(input, str) else list(input)
        answered = any(item.get("type") == "function_call_output" for item in items)
        output: list[Any]
        if answered:
            text = ResponseOutputText(
                text="It is sunny in Paris.", type="output_text", annotations=[]
            )
            output = [
                ResponseOutputMessage(
                    id="msg_1", content=[text], role="assistant", status="completed", type="message"
                )
            ]
        else:
            output = [
                ResponseFunctionToolCall(
                    arguments=json.dumps({"city": "Paris"}),
                    call_id="call_1",
                    name="get_weather",
                    type="function_call",
                    id="fc_1",
                    status="completed",
                )
            ]
        # A model implementation records its own generation span, as the SDK's models do.
        with generation_span(
            model="stub-model",
            input=[
                {"role": i.get("role", "tool"), "content": str(i.get("content", ""))} for i in items
            ],
            output=[o.model_dump() for o in output],
            usage={"input_tokens": 10, "output_tokens": 4},
        ):
            pass
        usage = Usage(requests=1, input_tokens=10, output_tokens=4, total_tokens=14)
        return ModelResponse(output=output, usage=usage, response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


@function_tool
def get_weather(city: str) -> str:
    """The weather of a city."""
    return f"sunny in {city}"


@pytest.fixture
def openinference(server: LocalServer) -> Iterator[TracerProvider]:
    """The OpenAI Agents SDK traced by OpenInference into ``prefactor serve``, then undone."""
    with otel_provider(server) as provider:
        instrumentor = OpenAIAgentsInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        try:
            yield provider
        finally:
            instrumentor.uninstrument()


async def test_openai_agents_traced_by_openinference_is_stored_with_its_tool_and_llm_spans(
    server: LocalServer, openinference: TracerProvider
) -> None:
    agent = OpenAIAgent(
        name="Assistant", instructions="Be brief.", model=StubModel(), tools=[get_weather]
    )
    result = await Runner.run(agent, "What is the weather in Paris?", run_config=RunConfig())
    assert result.final_output == "It is sunny in Paris."
    openinference.force_flush()
    print(render(server))
    (inst,) = tree(server)
    assert inst["status"] == "complete"
    named = by_type(inst)
    assert {"agent:Agent workflow", "agent:Assistant", "tool:get_weather", "llm"} <= set(named)
    tool = named["tool:get_weather"]
    assert tool["payload"] == {"city": "Paris"}
    assert tool["result_payload"] == {"value": "sunny in Paris"}
    assert not tool["schema_violations"]
    llms = [s for s in inst["spans"] if s["schema_name"] == "llm"]
    assert len(llms) == 2
    first = min(llms, key=lambda s: s["started_at"])
    assert first["payload"]["model"] == "stub-model"
    assert first["payload"]["messages"][0]["role"] == "user"
    assert first["result_payload"]["usage"] == {"input_tokens": 10, "output_tokens": 4}
    last = max(llms, key=lambda s: s["started_at"])
    assert "It is sunny in Paris." in json.dumps(last["result_payload"])
    assert named["agent:Assistant"]["parent_type"] == "otel:Agent workflow"
