"""OTLP into ``prefactor serve``: real OpenTelemetry SDK spans read back from the store.

The tests that take ``server`` run on each store backend, SQLite and PostgreSQL.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from google.rpc.status_pb2 import Status as RpcStatus
from ingest_helpers import by_type, otel_provider, tree
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse
from opentelemetry.trace import Status, StatusCode

from prefactor.server.app import create_app
from prefactor.server.store import Store
from prefactor.testing.server import LocalServer

WEATHER_TOOL = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather of a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
}


@pytest.fixture
def server(db_target: str) -> Iterator[LocalServer]:
    """``prefactor serve`` in process, on each store backend (SQLite, PostgreSQL)."""
    with LocalServer(db_target) as running:
        yield running


def _agent_run(provider, arguments: str = '{"city": "Paris"}') -> None:  # type: ignore[no-untyped-def]
    tracer = provider.get_tracer("hand-built")
    with tracer.start_as_current_span(
        "invoke_agent weather",
        attributes={
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.provider.name": "openai",
            "gen_ai.agent.name": "weather",
            "gen_ai.agent.id": "asst_42",
            "gen_ai.agent.version": "3",
            "gen_ai.tool.definitions": json.dumps([WEATHER_TOOL]),
        },
    ):
        with tracer.start_as_current_span(
            "chat gpt-4o",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.provider.name": "openai",
                "gen_ai.request.model": "gpt-4o",
                "gen_ai.response.model": "gpt-4o-2024-08-06",
                "gen_ai.input.messages": json.dumps(
                    [{"role": "user", "parts": [{"type": "text", "content": "Weather?"}]}]
                ),
                "gen_ai.output.messages": json.dumps(
                    [{"role": "assistant", "parts": [{"type": "tool_call", "name": "get_weather"}]}]
                ),
                "gen_ai.usage.input_tokens": 12,
                "gen_ai.usage.output_tokens": 7,
                "gen_ai.response.finish_reasons": ["tool_calls"],
            },
        ):
            pass
        with tracer.start_as_current_span(
            "execute_tool get_weather",
            attributes={
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": "call_1",
                "gen_ai.tool.call.arguments": arguments,
                "gen_ai.tool.call.result": "sunny",
            },
        ):
            pass


def test_genai_spans_from_the_otel_exporter_become_an_instance_with_tool_and_llm_spans(
    server: LocalServer,
) -> None:
    with otel_provider(server) as provider:
        _agent_run(provider)
    (inst,) = tree(server)
    assert (inst["agent_id"], inst["status"]) == ("asst_42", "complete")
    spans = by_type(inst)
    assert set(spans) == {"agent:weather", "llm", "tool:get_weather"}
    root, llm, tool = spans["agent:weather"], spans["llm"], spans["tool:get_weather"]
    assert root["parent_span_id"] is None
    assert llm["parent_type"] == tool["parent_type"] == "agent:weather"
    assert tool["payload"] == {"city": "Paris"}
    assert tool["result_payload"] == {"value": "sunny"}
    assert tool["status"] == "complete"
    assert not tool["schema_violations"]
    assert llm["payload"]["model"] == "gpt-4o"
    assert llm["payload"]["provider"] == "openai"
    assert llm["payload"]["messages"][0]["role"] == "user"
    assert llm["result_payload"]["usage"] == {"input_tokens": 12, "output_tokens": 7}
    assert llm["result_payload"]["model"] == "gpt-4o-2024-08-06"
    assert llm["result_payload"]["finish_reasons"] == ["tool_calls"]
    assert inst["started_at"] == root["started_at"]
    assert inst["finished_at"] == root["finished_at"]


def test_tool_call_that_breaks_its_definition_is_stored_flagged(server: LocalServer) -> None:
    with otel_provider(server) as provider:
        _agent_run(provider, arguments='{"city": 75}')
    (inst,) = tree(server)
    tool = by_type(inst)["tool:get_weather"]
    assert tool["payload"] == {"city": 75}
    (violation,) = tool["schema_violations"]
    assert (violation["side"], violation["path"]) == ("params", "$.city")


def test_spans_wait_for_their_root_and_are_stored_when_it_ends(server: LocalServer) -> None:
    with otel_provider(server) as provider:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "invoke_agent slow", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            with tracer.start_as_current_span(
                "execute_tool search",
                attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "search"},
            ):
                pass
            provider.force_flush()
            assert server.client.instances() == []  # the child arrived; its root has not
    (inst,) = tree(server)
    assert inst["status"] == "complete"
    assert by_type(inst)["tool:search"]["parent_type"] == "agent:slow"


def test_unknown_spans_are_kept_as_generic_spans_under_their_parent(server: LocalServer) -> None:
    with otel_provider(server) as provider:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "invoke_agent helper", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            with tracer.start_as_current_span("GET /lookup", attributes={"http.method": "GET"}):
                with tracer.start_as_current_span("db query"):
                    pass
    (inst,) = tree(server)
    spans = by_type(inst)
    http = spans["otel:GET /lookup"]
    assert http["parent_type"] == "agent:helper"
    assert http["payload"] == {"name": "GET /lookup", "attributes": {"http.method": "GET"}}
    assert spans["otel:db query"]["parent_type"] == "otel:GET /lookup"


def test_a_trace_without_agent_span_is_an_instance_of_the_service(server: LocalServer) -> None:
    with otel_provider(server) as provider:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span("handle request"):
            with tracer.start_as_current_span(
                "chat small", attributes={"gen_ai.operation.name": "chat"}
            ):
                pass
    (inst,) = tree(server)
    assert inst["agent_id"] == "test-service"
    assert by_type(inst)["llm"]["parent_type"] == "otel:handle request"


def test_failed_span_is_stored_failed_with_the_error_type_and_message(
    server: LocalServer,
) -> None:
    with otel_provider(server) as provider:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "invoke_agent careful", attributes={"gen_ai.operation.name": "invoke_agent"}
        ):
            try:
                with tracer.start_as_current_span(
                    "execute_tool divide",
                    attributes={"gen_ai.operation.name": "execute_tool"},
                ):
                    raise ZeroDivisionError("division by zero")
            except ZeroDivisionError:
                pass
    (inst,) = tree(server)
    tool = by_type(inst)["tool:divide"]
    assert tool["status"] == "failed"
    assert tool["result_payload"] == {
        "error": {"type": "ZeroDivisionError", "message": "ZeroDivisionError: division by zero"}
    }
    assert inst["status"] == "complete"


def test_failed_root_fails_the_instance(server: LocalServer) -> None:
    with otel_provider(server) as provider:
        tracer = provider.get_tracer("t")
        with tracer.start_as_current_span(
            "invoke_agent doomed", attributes={"gen_ai.operation.name": "invoke_agent"}
        ) as span:
            span.set_status(Status(StatusCode.ERROR, "gave up"))
            span.set_attribute("error.type", "timeout")
    (inst,) = tree(server)
    assert inst["status"] == "failed"
    root = by_type(inst)["agent:doomed"]
    assert root["result_payload"] == {"error": {"type": "timeout", "message": "gave up"}}


def test_gzip_protobuf_from_the_exporter_is_ingested(server: LocalServer) -> None:
    with otel_provider(server, compression=Compression.Gzip) as provider:
        _agent_run(provider)
    (inst,) = tree(server)
    assert len(inst["spans"]) == 3


def _json_trace(trace_id: str, *spans: dict[str, object]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [{"key": "service.name", "value": {"stringValue": "js"}}]
                    },
                    "scopeSpans": [{"scope": {"name": "manual"}, "spans": list(spans)}],
                }
            ]
        }
    )


def _post(server: LocalServer, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/traces",
        content=body,
        headers={"Authorization": f"Bearer {server.token}", **headers},
    )


def test_otlp_json_with_gzip_is_ingested(server: LocalServer) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = _json_trace(
        trace_id,
        {
            "traceId": trace_id,
            "spanId": "eee19b7ec3c1b174",
            "parentSpanId": "eee19b7ec3c1b173",
            "name": "execute_tool add",
            "startTimeUnixNano": "1544712660300000000",
            "endTimeUnixNano": "1544712660600000000",
            "kind": 1,
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "execute_tool"}},
                {"key": "gen_ai.tool.name", "value": {"stringValue": "add"}},
                {"key": "gen_ai.tool.call.arguments", "value": {"stringValue": '{"a": 1}'}},
                {"key": "gen_ai.tool.call.result", "value": {"stringValue": "2"}},
            ],
        },
        {
            "traceId": trace_id,
            "spanId": "eee19b7ec3c1b173",
            "name": "invoke_agent calc",
            "startTimeUnixNano": "1544712660000000000",
            "endTimeUnixNano": "1544712661000000000",
            "attributes": [
                {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}},
                {"key": "gen_ai.agent.name", "value": {"stringValue": "calc"}},
            ],
            "status": {"code": 1},
        },
    )
    response = _post(
        server,
        gzip.compress(body),
        **{"Content-Type": "application/json", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    (inst,) = tree(server)
    tool = by_type(inst)["tool:add"]
    assert (tool["payload"], tool["result_payload"]) == ({"a": 1}, {"value": 2})
    assert tool["started_at"] == "2018-12-13T14:51:00.300000Z"
    assert inst["agent_id"] == "calc"


def test_malformed_protobuf_gets_400_with_an_otlp_status(server: LocalServer) -> None:
    response = _post(
        server, b"\xff\xff\xff not protobuf", **{"Content-Type": "application/x-protobuf"}
    )
    assert response.status_code == 400
    status = RpcStatus.FromString(response.content)
    assert status.code == 3
    assert "not an OTLP trace request" in status.message


def test_malformed_json_gets_400_with_a_json_status(server: LocalServer) -> None:
    response = _post(server, b'{"resourceSpans": [', **{"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == 3


def test_unsupported_content_type_gets_415(server: LocalServer) -> None:
    response = _post(server, b"hello", **{"Content-Type": "text/plain"})
    assert response.status_code == 415


def test_otlp_requests_need_the_bearer_token(server: LocalServer) -> None:
    response = httpx.post(
        f"{server.url}/v1/traces",
        content=b"",
        headers={"Content-Type": "application/x-protobuf"},
    )
    assert response.status_code == 401


def test_spans_with_malformed_ids_are_refused_through_partial_success(
    server: LocalServer,
) -> None:
    trace_id = "5b8efff798038103d269b633813fc60c"
    body = _json_trace(
        trace_id,
        {"traceId": trace_id, "spanId": "0102", "name": "short id"},
        {"traceId": trace_id, "spanId": "eee19b7ec3c1b173", "name": "fine"},
    )
    response = _post(server, body, **{"Content-Type": "application/json"})
    assert response.status_code == 200
    partial = response.json()["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "8-byte span_id" in partial["errorMessage"]
    (inst,) = tree(server)
    assert [s["schema_name"] for s in inst["spans"]] == ["otel:fine"]


def test_a_replayed_request_stores_nothing_twice(server: LocalServer) -> None:
    trace_id = "0af7651916cd43dd8448eb211c80319c"
    root = {
        "traceId": trace_id,
        "spanId": "b7ad6b7169203331",
        "name": "invoke_agent once",
        "startTimeUnixNano": "1700000000000000000",
        "endTimeUnixNano": "1700000001000000000",
        "attributes": [{"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}],
    }
    body = _json_trace(trace_id, root)
    for _ in range(2):
        response = _post(server, body, **{"Content-Type": "application/json"})
        assert response.status_code == 200
        assert "partialSuccess" not in response.json()
    (inst,) = tree(server)
    assert len(inst["spans"]) == 1


def test_protobuf_answer_is_an_export_response(server: LocalServer) -> None:
    response = _post(server, b"", **{"Content-Type": "application/x-protobuf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/x-protobuf"
    assert not ExportTraceServiceResponse.FromString(response.content).HasField("partial_success")


async def test_a_gzip_body_that_inflates_past_the_limit_gets_413(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    app = create_app(store, token="token-of-sixteen-chars", max_body_bytes=100_000)
    bomb = gzip.compress(b"\0" * 1_000_000)
    assert len(bomb) < 100_000
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://serve.test"
        ) as client:
            response = await client.post(
                "/v1/traces",
                content=bomb,
                headers={
                    "Authorization": "Bearer token-of-sixteen-chars",
                    "Content-Type": "application/x-protobuf",
                    "Content-Encoding": "gzip",
                },
            )
    finally:
        store.close()
    assert response.status_code == 413
    assert "exceeds 100000 bytes" in RpcStatus.FromString(response.content).message
