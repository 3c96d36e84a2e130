"""The OTLP sink: our spans as GenAI spans, decoded by a loopback OTLP receiver."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from opentelemetry import trace as otel_trace
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otlp_receiver import OtlpReceiver, attributes

from prefactor import _runtime as runtime
from prefactor._config import QueueConfig
from prefactor._export.sinks import MemorySink
from prefactor._export.sinks.base import ExportResult
from prefactor._ids import generate_pfid
from prefactor._otel import sink as otlp_sink
from prefactor._otel.ids import span_id_for, trace_id_for
from prefactor._records import CreateSpan, FinishInstance, Lazy, StartInstance, Violation
from prefactor._tracing.agents import agent, tool
from prefactor._tracing.decorator import traced
from prefactor.otel import OtlpSink


@tool
def otlp_weather(city: str) -> str:
    """Look up the weather of a city."""
    return f"sunny in {city}"


@tool
def otlp_broken_tool(city: str) -> str:
    """Always fails."""
    raise LookupError(f"no station in {city}")


@traced
def otlp_plan(goal: str) -> list[str]:
    return [goal, "done"]


@agent(agent_id="weather-bot", version="2.1.0", name="otlp_forecaster")
def otlp_forecaster(city: str) -> str:
    otlp_plan(city)
    return otlp_weather(city)


@agent(agent_id="weather-bot", name="otlp_fragile")
def otlp_fragile(city: str) -> str:
    try:
        return otlp_broken_tool(city)
    except LookupError:
        return "unknown"


def _run(sink: OtlpSink, func: object, *args: object) -> None:
    runtime.configure(sink=sink, strict=True)
    assert callable(func)
    func(*args)
    assert runtime.flush(10)
    assert runtime.stats()["rejected"] == 0


def test_agent_run_is_an_invoke_agent_root_with_its_spans_as_children(
    receiver: OtlpReceiver,
) -> None:
    _run(OtlpSink(receiver.url), otlp_forecaster, "Oslo")
    spans = receiver.by_name()
    assert set(spans) == {
        "invoke_agent otlp_forecaster",
        "execute_tool otlp_weather",
        "function:otlp_plan",
    }
    root = spans["invoke_agent otlp_forecaster"]
    attrs = attributes(root)
    instance_id = attrs["prefactor.instance.id"]
    assert root.trace_id == trace_id_for(instance_id)
    assert root.span_id == span_id_for(instance_id)
    assert root.parent_span_id == b""
    assert root.kind == Span.SpanKind.SPAN_KIND_INTERNAL
    genai = {k: v for k, v in attrs.items() if k.startswith("gen_ai.") and "tool" not in k}
    assert genai == {
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": "otlp_forecaster",
        "gen_ai.agent.id": "weather-bot",
        "gen_ai.agent.version": "2.1.0",
    }
    assert attrs["prefactor.span.type"] == "agent:otlp_forecaster"
    assert json.loads(attrs["prefactor.params"]) == {"city": "Oslo"}
    assert json.loads(attrs["prefactor.result"]) == {"value": "sunny in Oslo"}
    definitions = json.loads(attrs["gen_ai.tool.definitions"])
    weather = next(d for d in definitions if d["name"] == "otlp_weather")
    assert weather["parameters"]["properties"]["city"] == {"type": "string"}
    for name in ("execute_tool otlp_weather", "function:otlp_plan"):
        child = spans[name]
        assert (child.trace_id, child.parent_span_id) == (root.trace_id, root.span_id)
        assert root.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= root.end_time_unix_nano


def test_tool_span_carries_the_genai_tool_attributes_and_prefactor_ids(
    receiver: OtlpReceiver,
) -> None:
    _run(OtlpSink(receiver.url), otlp_forecaster, "Oslo")
    span = receiver.by_name()["execute_tool otlp_weather"]
    attrs = attributes(span)
    assert span.span_id == span_id_for(attrs["prefactor.span.id"])
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "otlp_weather"
    assert attrs["gen_ai.tool.type"] == "function"
    assert attrs["gen_ai.tool.description"] == "Look up the weather of a city."
    assert json.loads(attrs["gen_ai.tool.call.arguments"]) == {"city": "Oslo"}
    assert json.loads(attrs["gen_ai.tool.call.result"]) == {"value": "sunny in Oslo"}
    assert attrs["prefactor.span.type"] == "tool:otlp_weather"
    assert attrs["prefactor.span.status"] == "complete"
    assert attrs["prefactor.schema_version"]
    assert span.status.code == Status.StatusCode.STATUS_CODE_UNSET


def test_payloads_off_leaves_every_param_and_result_out(receiver: OtlpReceiver) -> None:
    _run(OtlpSink(receiver.url, payloads=False), otlp_forecaster, "Oslo")
    sent = {key for span in receiver.spans() for key in attributes(span)}
    assert sent.isdisjoint(
        {
            "gen_ai.tool.call.arguments",
            "gen_ai.tool.call.result",
            "prefactor.params",
            "prefactor.result",
        }
    )
    assert "gen_ai.tool.name" in sent


def test_payloads_off_by_environment_variable(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFACTOR_OTLP_PAYLOADS", "0")
    _run(OtlpSink(receiver.url), otlp_forecaster, "Oslo")
    assert "gen_ai.tool.call.arguments" not in attributes(
        receiver.by_name()["execute_tool otlp_weather"]
    )


def test_failed_tool_ends_with_error_status_and_error_type(receiver: OtlpReceiver) -> None:
    _run(OtlpSink(receiver.url), otlp_fragile, "Atlantis")
    spans = receiver.by_name()
    failed = spans["execute_tool otlp_broken_tool"]
    assert failed.status.code == Status.StatusCode.STATUS_CODE_ERROR
    assert failed.status.message == "no station in Atlantis"
    attrs = attributes(failed)
    assert attrs["error.type"] == "LookupError"
    assert attrs["prefactor.span.status"] == "failed"
    root = spans["invoke_agent otlp_fragile"]
    assert root.status.code == Status.StatusCode.STATUS_CODE_UNSET
    assert "error.type" not in attributes(root)


def test_a_run_exported_twice_is_the_same_trace(receiver: OtlpReceiver) -> None:
    memory = MemorySink()
    _run(memory, otlp_forecaster, "Oslo")
    records = memory.records
    first, second = OtlpSink(receiver.url), OtlpSink(receiver.url)

    async def replay(sink: OtlpSink) -> None:
        await sink.export(records)
        await sink.aclose()

    asyncio.run(replay(first))
    asyncio.run(replay(second))
    one, two = receiver.received
    key = lambda s: (s.trace_id, s.span_id, s.parent_span_id, s.name)  # noqa: E731
    assert sorted(map(key, one.spans())) == sorted(map(key, two.spans()))
    assert len(list(one.spans())) == 3


def test_environment_variables_choose_endpoint_headers_compression_and_service(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.url.removesuffix("/v1/traces"))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cr%3Dt,x-team=agents")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "weather-service")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    sink = OtlpSink()
    assert "s3cr" not in repr(sink) + repr(sink.config)
    _run(sink, otlp_forecaster, "Oslo")
    (request,) = receiver.received
    assert request.headers["x-api-key"] == "s3cr=t"
    assert request.headers["x-team"] == "agents"
    assert request.headers["Content-Encoding"] == "gzip"
    resource = request.resource()
    assert resource["service.name"] == "weather-service"
    assert resource["deployment.environment"] == "test"
    assert resource["telemetry.sdk.name"] == "prefactor"


def test_unsupported_protocol_is_refused_when_the_sink_is_made(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValueError, match="grpc"):
        OtlpSink()


def test_unavailable_endpoint_is_retried_and_each_span_arrives_once(
    receiver: OtlpReceiver,
) -> None:
    receiver.statuses[:] = [503, 503]
    runtime.configure(
        sink=OtlpSink(receiver.url),
        strict=True,
        queue=QueueConfig(retry_delay_base=0.01, retry_delay_max=0.05),
    )
    otlp_forecaster("Oslo")
    assert runtime.flush(10)
    stats = runtime.stats()
    assert stats["retried"] >= 2
    assert (stats["rejected"], sum(stats["dropped"].values())) == (0, 0)
    names = [span.name for span in receiver.spans()]
    assert sorted(names) == sorted(set(names))
    assert len(names) == 3


def test_permanent_refusal_rejects_the_batch_records_without_retrying(
    receiver: OtlpReceiver,
) -> None:
    receiver.statuses[:] = [400]
    runtime.configure(sink=OtlpSink(receiver.url), strict=True)
    otlp_forecaster("Oslo")
    assert runtime.flush(10)
    stats = runtime.stats()
    assert stats["rejected"] > 0
    assert stats["retried"] == 0
    assert receiver.attempts == 1


def test_an_application_tracer_provider_is_left_alone(receiver: OtlpReceiver) -> None:
    global_before = otel_trace.get_tracer_provider()
    app_spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(app_spans))
    tracer = provider.get_tracer("app")
    runtime.configure(sink=OtlpSink(receiver.url), strict=True)
    with tracer.start_as_current_span("request") as request_span:
        otlp_forecaster("Oslo")
        assert otel_trace.get_current_span() is request_span
    assert runtime.flush(10)
    assert otel_trace.get_tracer_provider() is global_before
    assert [s.name for s in app_spans.get_finished_spans()] == ["request"]
    ours = receiver.spans()
    assert len(ours) == 3
    app_trace = request_span.get_span_context().trace_id.to_bytes(16, "big")
    assert all(span.trace_id != app_trace for span in ours)


class _BrokenParams(Lazy):
    """Params whose capture fails in the background, as a broken ``__repr__`` would."""

    def resolve(self) -> tuple[dict[str, object], tuple[Violation, ...]]:
        raise RuntimeError("capture failed")


def test_a_record_that_cannot_be_read_costs_only_itself(receiver: OtlpReceiver) -> None:
    instance_id, good_id, bad_id = generate_pfid(), generate_pfid(), generate_pfid()
    now = time.time_ns()

    def create(span_id: str, payload: object) -> CreateSpan:
        return CreateSpan(
            span_id, instance_id, "step:load", "complete", now, payload, None, now + 1000
        )

    bad = create(bad_id, _BrokenParams())
    batch = [
        StartInstance(instance_id, now),
        create(good_id, {"rows": 3}),
        bad,
        FinishInstance(instance_id, "complete", now + 2000),
    ]
    sink = OtlpSink(receiver.url)

    async def deliver() -> ExportResult:
        try:
            return await sink.export(batch)
        finally:
            await sink.aclose()

    result = asyncio.run(deliver())
    assert result.rejected == ()
    (drop,) = result.dropped
    assert (drop.record, drop.reason) == (bad, "unencodable")
    assert isinstance(drop.error, RuntimeError)
    assert {attributes(s).get("prefactor.span.id") for s in receiver.spans()} == {good_id, None}


def test_unfinished_instances_past_the_cap_are_forgotten_oldest_first(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(otlp_sink, "MAX_OPEN_INSTANCES", 1)
    first, second, now = generate_pfid(), generate_pfid(), time.time_ns()
    sink = OtlpSink(receiver.url)

    async def start_both() -> None:
        for instance_id in (first, second):
            open_span = CreateSpan(generate_pfid(), instance_id, "step:wait", "active", now)
            await sink.export([StartInstance(instance_id, now), open_span])
        await sink.aclose()

    asyncio.run(start_both())
    assert f"forgot unfinished instance {first} (1 open spans)" in caplog.text
    assert second not in caplog.text


def test_a_password_in_the_endpoint_never_shows_in_a_repr() -> None:
    sink = OtlpSink("https://bob:hunter2@otel.example.com/v1/traces")
    shown = repr(sink) + repr(sink.config)
    assert "hunter2" not in shown
    assert "https://bob:[REDACTED]@otel.example.com/v1/traces" in shown
    assert sink.config.endpoint == "https://bob:hunter2@otel.example.com/v1/traces"
