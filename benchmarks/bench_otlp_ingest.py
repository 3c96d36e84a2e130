"""OTLP ingest throughput of ``prefactor serve``: GenAI spans per second over loopback HTTP.

Starts ``prefactor serve`` in a subprocess on a free loopback port with a
temporary database, then POSTs ``/v1/traces`` requests as an OpenTelemetry
SDK's batch processor sends them: protobuf, up to ``--batch`` spans each,
every trace an agent run of four spans (``invoke_agent`` root, two ``chat``
calls with messages and token usage, one ``execute_tool`` with arguments and
result), children before their root as spans end. Bodies are serialised
before the clock starts, so the figure is the server's: decode, assemble,
map, store, answer. Afterwards every instance and span is read back and
counted.

    python benchmarks/bench_otlp_ingest.py [--traces 5000] [--batch 512] [--json] [--in-process]

``--json`` also times the same spans as OTLP/JSON; ``--in-process`` times
decode and ingest on a ``Store`` directly, without HTTP.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

from prefactor.server.otlp import OtlpIngest, answer_export
from prefactor.server.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-otlp-token-0123456789"
T0 = 1_770_000_000_000_000_000
MESSAGES = orjson.dumps(
    [
        {"role": "system", "parts": [{"type": "text", "content": "Answer briefly. " * 4}]},
        {"role": "user", "parts": [{"type": "text", "content": "What is the weather? " * 4}]},
    ]
).decode()
TOOLS = orjson.dumps(
    [
        {
            "type": "function",
            "name": "get_weather",
            "description": "The weather of a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        }
    ]
).decode()


def _kv(key: str, value: str | int) -> KeyValue:
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace: int, index: int, parent: int | None, name: str, **attrs: str | int) -> Span:
    start = T0 + trace * 10_000_000 + index * 1_000_000
    span = Span(
        trace_id=(trace + 1).to_bytes(16, "big"),
        span_id=(trace * 8 + index + 1).to_bytes(8, "big"),
        name=name,
        kind=Span.SpanKind.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + (9_000_000 if parent is None else 500_000),
        attributes=[_kv(k, v) for k, v in attrs.items()],
    )
    if parent is not None:
        span.parent_span_id = (trace * 8 + parent + 1).to_bytes(8, "big")
    return span


def agent_run(trace: int) -> list[Span]:
    """One agent run's spans in the order they end: children first, the root last."""
    chat = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.response.model": "gpt-4o-mini-2024-07-18",
        "gen_ai.input.messages": MESSAGES,
        "gen_ai.output.messages": MESSAGES,
        "gen_ai.usage.input_tokens": 120,
        "gen_ai.usage.output_tokens": 24,
        "gen_ai.tool.definitions": TOOLS,
    }
    return [
        _span(trace, 1, 0, "chat gpt-4o-mini", **chat),
        _span(
            trace,
            2,
            0,
            "execute_tool get_weather",
            **{
                "gen_ai.operation.name": "execute_tool",
                "gen_ai.tool.name": "get_weather",
                "gen_ai.tool.call.id": f"call_{trace}",
                "gen_ai.tool.call.arguments": '{"city": "Paris"}',
                "gen_ai.tool.call.result": "sunny, 21 degrees",
            },
        ),
        _span(trace, 3, 0, "chat gpt-4o-mini", **chat),
        _span(
            trace,
            0,
            None,
            "invoke_agent forecaster",
            **{
                "gen_ai.operation.name": "invoke_agent",
                "gen_ai.provider.name": "openai",
                "gen_ai.agent.name": "forecaster",
                "gen_ai.tool.definitions": TOOLS,
            },
        ),
    ]


def requests(traces: int, batch: int) -> list[ExportTraceServiceRequest]:
    spans = [span for trace in range(traces) for span in agent_run(trace)]
    resource = [_kv("service.name", "bench")]
    out = []
    for i in range(0, len(spans), batch):
        scope = ScopeSpans(spans=spans[i : i + batch])
        request = ExportTraceServiceRequest(resource_spans=[ResourceSpans(scope_spans=[scope])])
        request.resource_spans[0].resource.attributes.extend(resource)
        out.append(request)
    return out


def _serve(db: Path) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0", "--db", str(db)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split("listening on ", 1)[1].strip()


def _verify(http: httpx.Client, traces: int) -> None:
    """Every trace is a complete instance with its four spans."""
    seen, offset = 0, 0
    while True:
        page = http.get(
            "/api/v1/agent_instance",
            params={"pagination[offset]": offset, "pagination[page_size]": 1000},
        ).json()
        for inst in page["summaries"]:
            assert inst["status"] == "complete", inst
            assert inst["span_counts"]["total"] == 4, inst["span_counts"]
            seen += 1
        if page["pagination"]["next_page_offset"] is None:
            break
        offset = page["pagination"]["next_page_offset"]
    assert seen == traces, (seen, traces)


def bench_http(traces: int, batch: int, db: Path, *, json: bool) -> float:
    built = requests(traces, batch)
    if json:
        media = "application/json"
        bodies = [orjson.dumps(_hex_ids(json_format.MessageToDict(r))) for r in built]
    else:
        media = "application/x-protobuf"
        bodies = [r.SerializeToString() for r in built]
    proc, url = _serve(db)
    try:
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": media}
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            started = time.perf_counter()
            for body in bodies:
                response = http.post("/v1/traces", content=body)
                assert response.status_code == 200, response.text
                assert b"rejected" not in response.content.lower(), response.content
            elapsed = time.perf_counter() - started
            _verify(http, traces)
        return traces * 4 / elapsed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _hex_ids(document: dict[str, object]) -> dict[str, object]:
    """OTLP/JSON writes ids as hex, where protobuf's JSON mapping writes base64."""
    import base64

    for resource in document["resourceSpans"]:  # type: ignore[attr-defined]
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return document


def bench_in_process(traces: int, batch: int, db: Path) -> float:
    bodies = [r.SerializeToString() for r in requests(traces, batch)]
    store = Store(db)
    try:
        ingest = OtlpIngest(store)
        started = time.perf_counter()
        for body in bodies:
            status, _, _ = answer_export(
                ingest,
                body,
                content_type="application/x-protobuf",
                content_encoding="",
                max_bytes=1 << 26,
            )
            assert status == 200
        elapsed = time.perf_counter() - started
        assert store.list_instances(page_size=1)["pagination"]["item_count"] == traces
        return traces * 4 / elapsed
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=512, help="spans per request")
    parser.add_argument("--json", action="store_true", help="also time OTLP/JSON")
    parser.add_argument("--in-process", action="store_true", help="also time without HTTP")
    args = parser.parse_args()
    body = requests(1, 4)[0].SerializeToString()
    print(f"{args.traces} agent runs of 4 spans, {args.batch} spans per request")
    print(f"one run is {len(body):,} bytes of protobuf")
    with tempfile.TemporaryDirectory() as tmp:
        rate = bench_http(args.traces, args.batch, Path(tmp) / "http.db", json=False)
        print(f"prefactor serve /v1/traces, protobuf: {rate:,.0f} spans/s ingested")
        if args.json:
            rate = bench_http(args.traces, args.batch, Path(tmp) / "json.db", json=True)
            print(f"prefactor serve /v1/traces, JSON:     {rate:,.0f} spans/s ingested")
        if args.in_process:
            rate = bench_in_process(args.traces, args.batch, Path(tmp) / "store.db")
            print(f"decode and ingest in process:         {rate:,.0f} spans/s ingested")


if __name__ == "__main__":
    main()
