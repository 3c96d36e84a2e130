"""Per-call overhead of ``@traced`` against an undecorated call and OpenTelemetry.

Run: ``python benchmarks/bench_traced.py`` (add ``--quick`` for a short run).

All variants run in one process, interleaved round by round, so the ratios
hold on a noisy shared machine even when absolute figures drift. Each sample
times a loop of calls; the figure is the median per-call time over samples,
minus nothing (the undecorated call is printed for reference).

Variants:
  plain        the function undecorated
  traced       ``@traced`` (lenient: binding, capture and validation run in
               the exporter's thread)
  strict       ``@traced`` with strict validation of params and result on the
               caller's path
  otel         OpenTelemetry SDK ``tracer.start_as_current_span`` decorator with
               a BatchSpanProcessor and an exporter that discards
The exporter behind prefactor resolves every payload (as a real sink would)
and then discards it, so the background work competes for the GIL honestly.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from prefactor import runtime
from prefactor.config import PrefactorCoreConfig, QueueConfig
from prefactor.export.records import Record
from prefactor.export.sinks.base import OK, ExportResult
from prefactor.tracing.context import CURRENT_SPAN
from prefactor.tracing.decorator import traced
from prefactor.tracing.state import SpanState


class DiscardingSink:
    """Resolves every record's wire item, then forgets it."""

    def __init__(self) -> None:
        self.count = 0

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        for record in batch:
            record.to_bulk_item()
        self.count += len(batch)
        return OK

    async def aclose(self) -> None:
        return None


class DiscardingExporter(SpanExporter):
    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def work(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


def _sample(fn: Callable[..., Any], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        fn("gpt-4o", "Summarise the report", 0.2, 256)
    return (time.perf_counter_ns() - start) / loops


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(argv)
    samples, loops = (40, 500) if args.quick else (200, 1000)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    otel = provider.get_tracer("bench")

    otel_work = otel.start_as_current_span("work")(work)
    traced_work = traced(work)
    strict_work = traced(work)

    sink = DiscardingSink()
    queue = QueueConfig(max_queue_size=1_000_000)
    lenient_tracer = runtime.build_tracer(
        PrefactorCoreConfig(sink=sink, queue_config=queue, strict=False)
    )
    strict_tracer = runtime.build_tracer(
        PrefactorCoreConfig(sink=sink, queue_config=queue, strict=True)
    )

    # Each variant's calls happen inside an open span of its tracer, as in an agent.
    def under(tracer: Any, fn: Callable[..., Any]) -> Callable[[], float]:
        inst = tracer.new_instance(agent_version={"name": "bench"})
        state = SpanState("0" * 32, inst, "bench")

        def run() -> float:
            token = CURRENT_SPAN.set(state)
            try:
                return _sample(fn, loops)
            finally:
                CURRENT_SPAN.reset(token)

        return run

    variants: dict[str, Callable[[], float]] = {
        "plain": lambda: _sample(work, loops),
        "traced": under(lenient_tracer, traced_work),
        "strict": under(strict_tracer, strict_work),
        "otel": lambda: _sample(otel_work, loops),
    }
    results: dict[str, list[float]] = {name: [] for name in variants}
    gc.collect()
    for _ in range(samples):
        for name, run in variants.items():
            results[name].append(run())
    lenient_tracer.close(30)
    strict_tracer.close(30)
    provider.shutdown()

    med = {name: statistics.median(values) for name, values in results.items()}
    print(f"@traced per-call overhead, sync 4-argument function ({samples} x {loops} calls each)")
    print(f"{'variant':<10}{'median ns/call':>16}{'p90 ns/call':>14}")
    for name, values in results.items():
        p90 = statistics.quantiles(values, n=10)[-1]
        print(f"{name:<10}{med[name]:>16,.0f}{p90:>14,.0f}")
    print()
    print(f"traced - plain      : {(med['traced'] - med['plain']) / 1000:6.2f} µs (target <= 5)")
    print(f"strict - plain      : {(med['strict'] - med['plain']) / 1000:6.2f} µs (target <= 10)")
    print(f"otel / traced       : {med['otel'] / med['traced']:6.1f} x (target >= 5)")
    stats = lenient_tracer.stats()
    print(f"records exported    : {sink.count:,}; dropped: {stats['dropped']}")


if __name__ == "__main__":
    main()
