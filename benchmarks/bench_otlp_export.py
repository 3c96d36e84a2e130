"""The OTLP sink's encoder: ``opentelemetry-proto`` directly, or the OTLP exporter package.

Both start from the same ended spans (what ``OtlpSink`` makes from our
records) and deliver them to a loopback OTLP receiver in batches:

* ``proto+httpx``: ``OtlpSink``'s path, the request message built with
  ``opentelemetry-proto`` and posted with httpx (already a dependency);
* ``sdk+exporter``: what using ``opentelemetry-exporter-otlp-proto-http``
  would take, each span first made an SDK ``ReadableSpan``, then the package's
  own encoder and ``OTLPSpanExporter.export`` (``requests``).

Encoding is timed alone and end to end (encode + POST), in one run, as
microseconds per span and as a ratio.

    python benchmarks/bench_otlp_export.py [--spans 20000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

from prefactor._otel.encode import encode_request, resource_attributes
from prefactor._otel.spans import InstanceTrack, OtelSpan
from prefactor._version import __version__

RESOURCE = resource_attributes("bench", {})


def spans(count: int) -> list[OtelSpan]:
    """Tool spans of one instance, as the sink makes them from finished records."""
    track = InstanceTrack("01m8xn8v7epxsnn37ntxh2h4wa82xv4n")
    out = []
    for i in range(count):
        item = {
            "_type": "agent_spans/create",
            "details": {
                "id": f"01m8xn8v7epxsnn37ntxh2h4w{i:07d}",
                "agent_instance_id": track.instance_id,
                "schema_name": "tool:lookup",
                "status": "complete",
                "payload": {"city": "Paris", "units": "metric", "days": 3},
                "result_payload": {"value": "sunny, 21 degrees"},
                "parent_span_id": None,
                "started_at": "2026-02-09T00:00:00.000000+00:00",
                "finished_at": "2026-02-09T00:00:00.250000+00:00",
            },
        }
        out.extend(track.feed(item))
    return out


def readable(span: OtelSpan, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    context = SpanContext(
        int.from_bytes(span.trace_id, "big"),
        int.from_bytes(span.span_id, "big"),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    parent = None
    if span.parent_span_id is not None:
        parent = SpanContext(
            context.trace_id, int.from_bytes(span.parent_span_id, "big"), is_remote=False
        )
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=parent,
        resource=resource,
        attributes=span.attributes,
        kind=SpanKind.INTERNAL,
        status=Status(StatusCode.ERROR, span.status_message) if span.error else Status(),
        start_time=span.start_ns,
        end_time=span.end_ns,
        instrumentation_scope=scope,
    )


def receiver() -> tuple[ThreadingHTTPServer, str]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1/traces"


def per_span(seconds: float, count: int) -> float:
    return seconds / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    made = spans(args.spans)
    batches = [made[i : i + args.batch] for i in range(0, len(made), args.batch)]
    resource = Resource.create({"service.name": "bench"})
    scope = InstrumentationScope("prefactor", __version__)

    def proto_encode() -> None:
        for batch in batches:
            encode_request(batch, RESOURCE)

    def sdk_encode() -> None:
        for batch in batches:
            encode_spans([readable(s, resource, scope) for s in batch]).SerializeToString()

    server, url = receiver()
    exporter = OTLPSpanExporter(endpoint=url, timeout=30)

    def sdk_send() -> None:
        for batch in batches:
            result = exporter.export([readable(s, resource, scope) for s in batch])
            assert result is SpanExportResult.SUCCESS

    def proto_send() -> None:
        async def run() -> None:
            headers = {"Content-Type": "application/x-protobuf"}
            async with httpx.AsyncClient(headers=headers, timeout=30) as http:
                for batch in batches:
                    response = await http.post(url, content=encode_request(batch, RESOURCE))
                    assert response.status_code == 200

        asyncio.run(run())

    figures = {}
    for name, func in (
        ("encode proto", proto_encode),
        ("encode sdk+exporter", sdk_encode),
        ("send proto+httpx", proto_send),
        ("send sdk+exporter", sdk_send),
    ):
        func()  # warm-up
        best = min(_timed(func) for _ in range(3))
        figures[name] = per_span(best, len(made))
    exporter.shutdown()
    server.shutdown()
    print(f"{len(made):,} spans in batches of {args.batch}; best of 3, µs per span")
    for name, value in figures.items():
        print(f"{name:<22}{value:8.2f} µs/span")
    encode = figures["encode sdk+exporter"] / figures["encode proto"]
    send = figures["send sdk+exporter"] / figures["send proto+httpx"]
    print(f"sdk+exporter / proto: encode x{encode:.2f}, encode+send x{send:.2f}")


def _timed(func: Any) -> float:
    started = time.perf_counter()
    func()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
