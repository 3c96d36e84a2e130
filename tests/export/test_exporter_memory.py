"""Nothing per record or per instance outlives what is queued."""

from __future__ import annotations

import gc
import tracemalloc
from collections.abc import Sequence

from export_helpers import span_pair

from prefactor.config import QueueConfig
from prefactor.export.exporter import Exporter
from prefactor.export.records import Record
from prefactor.export.sinks.base import OK, ExportResult
from prefactor.ids import generate_pfid


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
