"""The export pipeline, end to end: caller cost, throughput, requests per span, memory.

Run from the repository root:

    /work/venv/bin/python benchmarks/bench_pipeline.py [--spans 50000] [--memory-spans 200000]

Sections:
  (a) caller-side cost of ``async with instance.span(...)`` with ``start``
      and ``complete`` (see :func:`bench_caller_span`), next to the floor of
      the same block on an object that does nothing, and the cost of
      ``Exporter.submit`` alone.
  (b) spans/s delivered to ``prefactor serve`` over loopback (a subprocess on
      a free port with a temporary database), timed from the first submit
      until ``flush()`` returns True; the count is verified through the API.
      In the same run, the OpenTelemetry SDK delivers the same number of
      ended spans (``BatchSpanProcessor`` + the OTLP/HTTP protobuf exporter,
      same batch size) to a discarding OTLP receiver in a subprocess, timed
      from the first ``on_end`` until ``force_flush()`` returns; the receiver
      counts the spans it decoded. The ratio is ours over OpenTelemetry's.
  (c) HTTP requests per span in (b), counted by a transport wrapper.
  (d) memory growth (RSS) over many spans into a discarding sink, after flush.

Targets: (a) <= 10 µs, (b) >= 30,000 spans/s, (c) <= 0.01 requests/span, (d) flat.

    /work/venv/bin/python benchmarks/bench_pipeline.py --sections b   # (b) and (c) only
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import httpx
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic import SecretStr

from prefactor._api.client import PrefactorApiClient
from prefactor._client import PrefactorCoreClient
from prefactor._config import HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._export.sinks.base import OK, ExportResult
from prefactor._ids import generate_pfid
from prefactor._records import (
    CreateSpan,
    FinishSpan,
    Record,
    RegisterInstance,
    StartInstance,
)
from prefactor._schemas.registry import SchemaRegistry

TOKEN = "bench-token-0123456789"
INSTANCES = 10


# --- helpers ------------------------------------------------------------------------------


class DiscardSink:
    """Accepts every batch and keeps nothing."""

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        return OK

    async def aclose(self) -> None:
        return None


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts the requests that reach the network."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def span_records(instance_id: str, parent: str | None = None) -> tuple[CreateSpan, FinishSpan]:
    span_id = generate_pfid()
    now = time.time_ns()
    return (
        CreateSpan(span_id, instance_id, "agent:llm", "active", now, {"prompt": "hi"}, parent),
        FinishSpan(span_id, instance_id, "complete", now + 1000, {"text": "hello"}),
    )


def opening(instance_id: str) -> list[Record]:
    return [
        RegisterInstance(instance_id, "bench-agent", {"name": "bench", "external_identifier": "1"}),
        StartInstance(instance_id, time.time_ns()),
    ]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) a process has used so far (Linux's /proc)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Delivery(NamedTuple):
    """(b): what delivering ``spans`` spans took, on each side of the loopback."""

    rate: float  # spans per second, first hand-off until the flush returned
    sender_us: float  # CPU µs per span of the sending process (every thread)
    receiver_us: float  # CPU µs per span of the receiving process
    count: int  # spans the receiver says it got


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Served:
    """``prefactor serve`` in a subprocess on a free loopback port."""

    def __init__(self, db: Path) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from prefactor._cli import main; raise SystemExit(main())",
                *("serve", "--port", "0", "--db", str(db)),
            ],
            env={**os.environ, "PREFACTOR_API_TOKEN": TOKEN},
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        if match is None:
            self.close()
            raise RuntimeError(f"prefactor serve did not start: {line!r}")
        self.url = match.group(0)

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --- (a) ----------------------------------------------------------------------------------


def _llm_registry() -> SchemaRegistry:
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
    return registry


class _NoSpan:
    """A span with none of its work: the floor that ``async with`` and two awaits cost."""

    async def __aenter__(self) -> _NoSpan:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def start(self, payload: object) -> None:
        return None

    async def complete(self, result: object) -> None:
        return None


def bench_caller_span(samples: int = 100, loops: int = 500) -> tuple[float, float]:
    """(a) ns per ``async with instance.span(...)`` with ``start`` and ``complete``.

    The prefactor-core Quick Start's span, through the public API, with its
    schema registry (so payloads are captured and checked on the caller's
    path) and a sink that discards batches; the median of per-loop means.
    Also returns, interleaved in the same run, the floor: the same block on
    an object whose methods do nothing (what Python charges for the shape).
    """
    params = {"model": "gpt-4", "prompt": "Hello"}
    result = {"response": "Hi there"}

    async def run() -> tuple[float, float]:
        config = PrefactorCoreConfig(
            schema_registry=_llm_registry(),
            sink=DiscardSink(),
            queue_config=QueueConfig(max_queue_size=10 * samples * loops),
        )
        async with PrefactorCoreClient(config) as client:
            instance = await client.create_agent_instance(
                agent_id="bench", agent_version={"name": "bench", "external_identifier": "1"}
            )
            await instance.start()
            nothing = _NoSpan()
            means, floors = [], []
            for _ in range(samples):
                start = time.perf_counter_ns()
                for _ in range(loops):
                    async with instance.span("agent:llm") as span:
                        await span.start(params)
                        await span.complete(result)
                means.append((time.perf_counter_ns() - start) / loops)
                start = time.perf_counter_ns()
                for _ in range(loops):
                    async with nothing as empty:
                        await empty.start(params)
                        await empty.complete(result)
                floors.append((time.perf_counter_ns() - start) / loops)
            await instance.finish()
        return statistics.median(means), statistics.median(floors)

    return asyncio.run(run())


def bench_submit(n: int = 200_000) -> float:
    """ns per ``Exporter.submit`` of a prebuilt record (the queue's share of (a))."""
    instance = generate_pfid()
    records = [span_records(instance)[0] for _ in range(1000)]
    exporter = Exporter(DiscardSink(), QueueConfig(max_queue_size=10 * n))
    submit = exporter.submit
    start = time.perf_counter_ns()
    for i in range(n):
        submit(records[i % 1000])
    elapsed = time.perf_counter_ns() - start
    exporter.flush(60)
    exporter.close()
    return elapsed / n


# --- (b), (c) -----------------------------------------------------------------------------


async def count_spans(url: str, instances: list[str]) -> int:
    config = HttpClientConfig(api_url=url, api_token=SecretStr(TOKEN))
    total = 0
    async with PrefactorApiClient(config) as client:
        for instance in instances:
            offset = 0
            while True:
                page = await client.list_spans(instance, offset=offset, page_size=1000)
                total += len(page.summaries)
                if len(page.summaries) < 1000:
                    break
                offset += 1000
    return total


def bench_throughput(spans: int, batch_size: int) -> tuple[Delivery, float]:
    """(b) delivery to ``prefactor serve`` (the count verified via the API); (c) requests/span."""
    with tempfile.TemporaryDirectory() as tmp:
        served = Served(Path(tmp) / "bench.db")
        try:
            instances = [generate_pfid() for _ in range(INSTANCES)]
            records: list[Record] = []
            for instance in instances:
                records.extend(opening(instance))
            for i in range(spans):
                records.extend(span_records(instances[i % INSTANCES]))
            transport = CountingTransport(httpx.AsyncHTTPTransport())
            config = HttpClientConfig(api_url=served.url, api_token=SecretStr(TOKEN))
            # Block rather than drop: this measures delivery, so nothing may be dropped.
            exporter = Exporter(
                HttpSink(config, transport=transport),
                QueueConfig(on_full="block", batch_size=batch_size),
            )
            server_cpu, cpu = cpu_seconds(served.proc.pid), time.process_time()
            start = time.perf_counter()
            for record in records:
                exporter.submit(record)
            if not exporter.flush(300):
                raise RuntimeError(f"flush timed out: {exporter.stats()}")
            elapsed = time.perf_counter() - start
            cpu = time.process_time() - cpu
            server_cpu = cpu_seconds(served.proc.pid) - server_cpu
            requests = transport.requests
            exporter.close()
            stored = asyncio.run(count_spans(served.url, instances))
        finally:
            served.close()
    delivery = Delivery(spans / elapsed, cpu / spans * 1e6, server_cpu / spans * 1e6, stored)
    return delivery, requests / spans


# OpenTelemetry's side of (b): a receiver that decodes each OTLP/HTTP protobuf request,
# counts its spans and keeps nothing; ``GET`` answers the count. A subprocess, like
# ``prefactor serve``, so that neither receiver shares the sender's GIL.
_OTLP_RECEIVER = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest, ExportTraceServiceResponse)
EMPTY = ExportTraceServiceResponse().SerializeToString()
lock, received = threading.Lock(), [0]
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with lock:
            received[0] += count
        self.answer(EMPTY, "application/x-protobuf")
    def do_GET(self):
        self.answer(str(received[0]).encode(), "text/plain")
    def answer(self, body, media):
        self.send_response(200)
        self.send_header("Content-Type", media)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
server.serve_forever()
"""


class _Collect(SpanProcessor):
    """Keeps every ended span (to hand them, prebuilt, to the processor under test)."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.spans.append(span)


def otel_spans(count: int) -> list[ReadableSpan]:
    """``count`` ended OpenTelemetry spans carrying what (b)'s records carry."""
    collect = _Collect()
    provider = TracerProvider()
    provider.add_span_processor(collect)
    tracer = provider.get_tracer("bench")
    for _ in range(count):
        tracer.start_span("agent:llm", attributes={"prompt": "hi", "text": "hello"}).end()
    provider.shutdown()
    return collect.spans


def bench_otel_throughput(spans: int, batch_size: int) -> Delivery:
    """(b) for OpenTelemetry: ended spans delivered to a discarding OTLP receiver.

    Like ours, the spans are made before the clock starts: the figure is the
    pipeline's (queue, batch, encode, POST), not the spans' creation.
    """
    ended = otel_spans(spans)
    receiver = subprocess.Popen(
        [sys.executable, "-c", _OTLP_RECEIVER], stdout=subprocess.PIPE, text=True
    )
    try:
        assert receiver.stdout is not None
        url = receiver.stdout.readline().strip()
        processor = BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{url}/v1/traces"),
            # Nothing may be dropped: this measures delivery (the default queue holds 2,048).
            max_queue_size=max(spans, batch_size),
            max_export_batch_size=batch_size,
        )
        receiver_cpu, cpu = cpu_seconds(receiver.pid), time.process_time()
        start = time.perf_counter()
        for span in ended:
            processor.on_end(span)
        if not processor.force_flush(300_000):
            raise RuntimeError("OpenTelemetry's force_flush timed out")
        elapsed = time.perf_counter() - start
        cpu = time.process_time() - cpu
        receiver_cpu = cpu_seconds(receiver.pid) - receiver_cpu
        processor.shutdown()
        received = int(httpx.get(url).text)
    finally:
        receiver.terminate()
        receiver.wait(10)
        if receiver.stdout is not None:
            receiver.stdout.close()
    return Delivery(spans / elapsed, cpu / spans * 1e6, receiver_cpu / spans * 1e6, received)


# --- (d) ----------------------------------------------------------------------------------


def bench_memory(spans: int) -> tuple[float, float]:
    """(d) RSS growth in MiB over ``spans`` spans after an equal warm-up; and per 1,000 spans."""
    # Block rather than drop: a dropped record would make memory look flatter than it is.
    exporter = Exporter(DiscardSink(), QueueConfig(on_full="block"))

    def run(count: int) -> None:
        instance = generate_pfid()
        for i in range(count):
            if i % 100 == 0:
                instance = generate_pfid()  # short-lived instances: lanes come and go
            for record in span_records(instance):
                exporter.submit(record)
        if not exporter.flush(300):
            raise RuntimeError("flush timed out")

    # A warm-up round of the same size: the allocator's high-water mark (RSS never
    # shrinks) is reached there, so growth in the measured round means a leak.
    run(spans)
    gc.collect()
    before = rss_bytes()
    run(spans)
    gc.collect()
    growth = rss_bytes() - before
    dropped = exporter.stats().dropped_total
    exporter.close()
    if dropped:
        raise RuntimeError(f"{dropped} records were dropped: the memory figure would be wrong")
    return growth / 2**20, growth / 1024 / (spans / 1000)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=50_000)
    parser.add_argument("--memory-spans", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=QueueConfig().batch_size)
    parser.add_argument("--caller-samples", type=int, default=100, help="(a): loops of 500 spans")
    parser.add_argument("--submits", type=int, default=200_000, help="(a): Exporter.submit calls")
    parser.add_argument(
        "--sections", default="abcd", help="which sections to run, e.g. 'b' ((c) comes with (b))"
    )
    args = parser.parse_args(argv)
    sections = set(args.sections)

    rows: list[tuple[str, str, str]] = []
    if "a" in sections:
        caller, floor = bench_caller_span(args.caller_samples)
        submit_ns = bench_submit(args.submits)
        rows += [
            ("(a) caller cost of async with span()", f"{caller:,.0f} ns", "<= 10,000 ns"),
            ("(a) the same block on a do-nothing object (floor)", f"{floor:,.0f} ns", ""),
            ("(a) Exporter.submit() per record", f"{submit_ns:,.0f} ns", ""),
        ]
    stored = received = args.spans
    if "b" in sections or "c" in sections:
        ours, per_span = bench_throughput(args.spans, args.batch_size)
        otel = bench_otel_throughput(args.spans, args.batch_size)
        stored, received = ours.count, otel.count
        rows += [
            (
                f"(b) spans/s to prefactor serve ({args.spans:,} spans, batch {args.batch_size})",
                f"{ours.rate:,.0f}",
                ">= 30,000",
            ),
            ("(b) spans stored, verified via the API", f"{stored:,}", f"== {args.spans:,}"),
            ("(b) CPU per span: SDK process (every thread)", f"{ours.sender_us:.1f} µs", ""),
            ("(b) CPU per span: prefactor serve", f"{ours.receiver_us:.1f} µs", ""),
            ("(b) OpenTelemetry: spans/s to a discarding OTLP receiver", f"{otel.rate:,.0f}", ""),
            ("(b) OpenTelemetry: spans received", f"{received:,}", f"== {args.spans:,}"),
            ("(b) OpenTelemetry: CPU per span, SDK process", f"{otel.sender_us:.1f} µs", ""),
            ("(b) OpenTelemetry: CPU per span, receiver", f"{otel.receiver_us:.1f} µs", ""),
            ("(b) ours / OpenTelemetry, spans/s", f"{ours.rate / otel.rate:.2f}x", ""),
            ("(c) HTTP requests per span", f"{per_span:.4f}", "<= 0.01"),
        ]
    if "d" in sections:
        mib, kib_per_k = bench_memory(args.memory_spans)
        rows += [
            (f"(d) RSS growth over {args.memory_spans:,} spans", f"{mib:+.1f} MiB", "flat"),
            ("(d) RSS growth per 1,000 spans", f"{kib_per_k:+.2f} KiB", "~0"),
        ]
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'value':>14}  target")
    for name, value, target in rows:
        print(f"{name:<{width}}  {value:>14}  {target}")
    if stored != args.spans:
        raise SystemExit("the server did not store every span")
    if received != args.spans:
        raise SystemExit("the OTLP receiver did not get every span")


if __name__ == "__main__":
    main()
