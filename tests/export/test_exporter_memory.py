"""Nothing per record or per instance outlives what is queued."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Callable, Sequence

from export_helpers import span_pair

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig, QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks.base import OK, ExportResult
from prefactor._ids import generate_pfid
from prefactor._records import Record
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.decorator import traced
from prefactor._tracing.span_context import SpanContext
from prefactor._tracing.state import InstanceState, SpanState


class DiscardSink:
    """Accepts everything and keeps nothing."""

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        return OK

    async def aclose(self) -> None:
        return None


def submit_spans(exporter: Exporter, instances: int, spans_each: int) -> None:
    for _ in range(instances):
        instance = generate_pfid()
        for _ in range(spans_each):
            for record in span_pair(instance):
                exporter.submit(record)


def test_memory_stays_flat_over_many_spans_and_instances() -> None:
    exporter = Exporter(DiscardSink(), QueueConfig(batch_size=200))
    # One warm-up round: tables and free lists reach their working size.
    submit_spans(exporter, 3_000, 4)
    assert exporter.flush(30)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        submit_spans(exporter, 3_000, 4)  # 24,000 records over 3,000 short-lived lanes
        assert exporter.flush(60)
        gc.collect()
        growth = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert exporter.stats().sent == 48_000
    assert growth < 200 * 1024, growth  # a lane or a record kept per span would be MiBs
    exporter.close()


class ResolvingSink(DiscardSink):
    """Builds every wire item (lazy payloads resolved), then keeps nothing."""

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        for record in batch:
            record.to_bulk_item()
        return OK


def _heap_growth(run: Callable[[], None], flush: Callable[[], bool]) -> int:
    """Bytes still allocated after a second, equal round of ``run`` (the first warms up)."""
    run()
    assert flush()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        run()
        assert flush()
        gc.collect()
        return tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_finished_traced_and_explicit_spans_are_freed_once_sent() -> None:
    """A span is its own record: once exported, nothing may keep it (or its parent) alive."""
    tracer = runtime.build_tracer(
        PrefactorCoreConfig(sink=ResolvingSink(), queue_config=QueueConfig(batch_size=200))
    )

    @traced
    def leaf(x: int, tags: list[str]) -> dict[str, int]:
        return {"x": x}

    @traced
    def middle(x: int) -> int:
        return leaf(x, ["a"])["x"] + leaf(x + 1, ["b"])["x"]

    async def explicit(inst: InstanceState) -> None:
        for n in range(500):
            async with SpanContext(inst, "agent:step", payload={"n": n}) as span:
                await span.complete({"ok": True})

    def run() -> None:
        inst = tracer.new_instance(agent_version={"name": "memory"})
        root = SpanState(generate_pfid(), inst, "root")
        token = CURRENT_SPAN.set(root)
        try:
            for n in range(1_000):
                middle(n)
        finally:
            CURRENT_SPAN.reset(token)
        asyncio.run(explicit(inst))

    growth = _heap_growth(run, lambda: tracer.flush(60))
    assert tracer.stats()["sent"] >= 2 * 3_500
    assert growth < 200 * 1024, growth  # 3,500 spans kept would be MiBs
    tracer.close(10)
