"""Per-call overhead of ``@traced`` against an undecorated call and OpenTelemetry.

Run: ``python benchmarks/bench_traced.py`` (``--quick`` for a short run).

Every variant runs in one process, interleaved round by round, so the ratios
hold on a noisy shared machine even when absolute figures drift. A sample
times a loop of calls of a four-argument function (or, for the ``async-``
variants, of awaits of a coroutine function, in one event loop); the figure
is the median per-call time over samples. Each traced call happens inside an
open span, as in an agent.

Variants:
  plain       the function undecorated
  no-check    ``@traced`` with validation off
  lenient     ``@traced``, validation in the exporter's thread (the default)
  strict      ``@traced``, params and result validated on the caller's path
  otel        OpenTelemetry SDK ``start_as_current_span`` decorator,
              BatchSpanProcessor, an exporter that discards
  lenient+io  as lenient, but the sink also builds every wire item (binding,
              capture, validation, JSON-ready dicts) before discarding it
  async-plain    the coroutine function undecorated, awaited
  async-lenient  ``@traced`` coroutine, lenient, awaited inside an open span
  async-strict   the same, strict

The last lines give nested async over nested sync, per mode, from the same
run (the target: at most 1.3), by the calling thread's CPU time and by wall
time. On a loaded machine the wall time of either includes waits for a core
(or for the GIL, which the exporter's thread wants while a loop runs); the
CPU time is the cost of the call itself.

For counts that do not drift at all, compare instruction counts with
``benchmarks/callgrind_traced.py``.

The first four use a sink that discards batches, like the OpenTelemetry
exporter here: they measure what the caller pays. ``lenient+io`` adds the
exporter's work, which shares the GIL with a loop that never waits; an agent
that waits on I/O absorbs it in its idle time.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig, QueueConfig
from prefactor._export.sinks.base import OK, ExportResult
from prefactor._records import Record
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.decorator import traced
from prefactor._tracing.state import SpanState
from prefactor._tracing.tracer import Tracer


class DiscardingSink:
    """Drops every batch; with ``resolve`` it first builds each record's wire item."""

    def __init__(self, resolve: bool) -> None:
        self.resolve = resolve
        self.count = 0

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        if self.resolve:
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


async def awork(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


Sample = tuple[float, float, float]


def _sample(fn: Callable[..., Any], loops: int, drain: Callable[[], object]) -> Sample:
    """Per call over one loop: (caller wall ns, wall ns with the background drained, CPU ns).

    ``drain`` waits until the variant's own background work is done, so no
    variant's exporter is still busy while the next one is timed.
    """
    start, cpu = time.perf_counter_ns(), time.thread_time_ns()
    for _ in range(loops):
        fn("gpt-4o", "Summarise the report", 0.2, 256)
    called, used = time.perf_counter_ns(), time.thread_time_ns()
    drain()
    done = time.perf_counter_ns()
    return (called - start) / loops, (done - start) / loops, (used - cpu) / loops


def _asample(
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., Any],
    loops: int,
    drain: Callable[[], object],
) -> Sample:
    """As :func:`_sample`, awaiting a coroutine function in ``loop``.

    The clocks are read inside the task, around the awaits: entering and
    leaving the event loop is not part of a call (and leaving it lets the
    exporter's thread, which wants the GIL, run on the caller's clock).
    """
    times: list[int] = []

    async def calls() -> None:
        times.extend((time.perf_counter_ns(), time.thread_time_ns()))
        for _ in range(loops):
            await fn("gpt-4o", "Summarise the report", 0.2, 256)
        times.extend((time.perf_counter_ns(), time.thread_time_ns()))

    loop.run_until_complete(calls())
    start, cpu, called, used = times
    drain()
    done = time.perf_counter_ns()
    return (called - start) / loops, (done - start) / loops, (used - cpu) / loops


def _nothing() -> None:
    return None


def _tracer(sink: DiscardingSink, **options: Any) -> Tracer:
    queue = QueueConfig(max_queue_size=2_000_000)
    return runtime.build_tracer(PrefactorCoreConfig(sink=sink, queue_config=queue, **options))


def _under(
    tracer: Tracer,
    fn: Callable[..., Any],
    loops: int,
    loop: asyncio.AbstractEventLoop | None = None,
) -> Callable[[], Sample]:
    """Time ``fn`` inside an open span of ``tracer``'s own instance (awaited, given a loop)."""
    inst = tracer.new_instance(agent_version={"name": "bench"})
    state = SpanState("0" * 32, inst, "bench")

    def drain() -> object:
        return tracer.flush(60)

    def run() -> Sample:
        token = CURRENT_SPAN.set(state)  # a task copies the context: it sees the span too
        try:
            if loop is not None:
                return _asample(loop, fn, loops, drain)
            return _sample(fn, loops, drain)
        finally:
            CURRENT_SPAN.reset(token)

    return run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Per-call overhead of @traced.")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    args = parser.parse_args(argv)
    samples, loops = (40, 500) if args.quick else (200, 1000)

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DiscardingExporter()))
    otel_work = provider.get_tracer("bench").start_as_current_span("work")(work)
    traced_work = traced(work)
    traced_awork = traced(awork)
    loop = asyncio.new_event_loop()

    caller_sink, io_sink = DiscardingSink(resolve=False), DiscardingSink(resolve=True)
    tracers = {
        "no-check": _tracer(caller_sink, validation=False),
        "lenient": _tracer(caller_sink, strict=False),
        "strict": _tracer(caller_sink, strict=True),
        "lenient+io": _tracer(io_sink, strict=False),
    }
    variants: dict[str, Callable[[], Sample]] = {
        "plain": lambda: _sample(work, loops, _nothing),
        **{name: _under(tracer, traced_work, loops) for name, tracer in tracers.items()},
        "otel": lambda: _sample(otel_work, loops, provider.force_flush),
        "async-plain": lambda: _asample(loop, awork, loops, _nothing),
        "async-lenient": _under(tracers["lenient"], traced_awork, loops, loop),
        "async-strict": _under(tracers["strict"], traced_awork, loops, loop),
    }
    # Each async variant runs right after its sync twin, so the two follow the same
    # variants (whose background threads may still be finishing) in every round.
    order = ["plain", "async-plain", "no-check", "lenient", "async-lenient", "strict"]
    order += ["async-strict", "lenient+io", "otel"]
    results: dict[str, list[Sample]] = {name: [] for name in variants}
    gc.collect()
    for _ in range(samples):
        for name in order:
            results[name].append(variants[name]())
    for tracer in tracers.values():
        tracer.close(60)
    provider.shutdown()
    loop.close()

    def median(name: str, index: int) -> float:
        return statistics.median(sample[index] for sample in results[name])

    call = {name: median(name, 0) for name in variants}
    total = {name: median(name, 1) for name in variants}
    cpu = {name: median(name, 2) for name in variants}
    plain = call["plain"]
    print(f"@traced per-call cost, sync 4-argument function ({samples} x {loops} calls each)")
    print(
        f"{'variant':<14}{'call ns':>10}{'overhead µs':>13}{'otel/this':>11}"
        f"{'caller CPU ns':>15}{'all-in ns':>11}{'otel/this':>11}"
    )
    for name in variants:
        base = call["async-plain"] if name.startswith("async-") else plain
        print(
            f"{name:<14}{call[name]:>10,.0f}{(call[name] - base) / 1000:>13.2f}"
            f"{call['otel'] / call[name]:>11.1f}{cpu[name]:>15,.0f}"
            f"{total[name]:>11,.0f}{total['otel'] / total[name]:>11.1f}"
        )
    for mode in ("lenient", "strict"):
        by_cpu = cpu[f"async-{mode}"] / cpu[mode]
        by_wall = call[f"async-{mode}"] / call[mode]
        print(f"nested async / nested sync ({mode}): {by_cpu:.2f}x caller CPU, {by_wall:.2f}x call")
    print()
    print("targets: no-check overhead <= 5 µs, strict <= 10 µs, otel/no-check >= 5,")
    print("         nested async / nested sync <= 1.3 (async overheads are over async-plain)")
    print("call: wall time of the calls (medians of per-loop means); caller CPU: the calling")
    print("thread's CPU time in the same loops; all-in: wall time until the variant's exporter")
    print("(or OpenTelemetry's batch processor) has also processed everything the loop made.")
    dropped = {k: v for t in tracers.values() for k, v in t.stats()["dropped"].items()}
    print(f"records exported: {caller_sink.count + io_sink.count:,}; dropped: {dropped or 0}")


if __name__ == "__main__":
    main()
