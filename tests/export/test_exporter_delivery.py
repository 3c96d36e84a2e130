"""The exporter delivers in order per instance, in parallel across instances, and batches."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Sequence

from export_helpers import ScriptedSink, spans

from prefactor._config import QueueConfig
from prefactor._export.exporter import WAKE_BACKLOG, Exporter
from prefactor._export.sinks import MemorySink
from prefactor._ids import generate_pfid
from prefactor._records import Record


def test_records_of_one_instance_arrive_in_submission_order() -> None:
    async def jitter(batch: Sequence[Record]) -> None:
        await asyncio.sleep(random.uniform(0, 0.002))

    sink = ScriptedSink(jitter)
    exporter = Exporter(sink, QueueConfig(batch_size=7, num_workers=4))
    instances = [generate_pfid() for _ in range(5)]
    submitted: dict[str, list[Record]] = {i: spans(i, 60) for i in instances}
    for position in range(120):
        for instance in instances:
            exporter.submit(submitted[instance][position])
    assert exporter.flush(10)
    for instance in instances:
        got = [r for r in sink.delivered if r.instance_id == instance]
        assert got == submitted[instance]
    exporter.close()


def test_batches_of_different_instances_are_in_flight_together() -> None:
    blocked, free = generate_pfid(), generate_pfid()
    release = threading.Event()

    async def hold_first_instance(batch: Sequence[Record]) -> None:
        if batch[0].instance_id == blocked:
            await asyncio.to_thread(release.wait, 10)

    sink = ScriptedSink(hold_first_instance)
    exporter = Exporter(sink, QueueConfig(flush_interval=0.01, num_workers=2))
    for record in spans(blocked, 3):
        exporter.submit(record)
    for record in spans(free, 3):
        exporter.submit(record)
    assert sink.delivered_event.wait(10)
    assert [r.instance_id for r in sink.delivered] == [free] * 6
    release.set()
    assert exporter.flush(10)
    assert len(sink.delivered) == 12
    exporter.close()


def test_only_one_batch_per_instance_is_in_flight() -> None:
    async def slow(batch: Sequence[Record]) -> None:
        await asyncio.sleep(0.001)

    sink = ScriptedSink(slow)
    exporter = Exporter(sink, QueueConfig(batch_size=5, num_workers=5))
    for record in spans(generate_pfid(), 100):
        exporter.submit(record)
    assert exporter.flush(10)
    assert sink.max_active_per_instance == 1
    assert len(sink.attempts) == 40
    exporter.close()


def test_num_workers_bounds_the_batches_in_flight() -> None:
    async def slow(batch: Sequence[Record]) -> None:
        await asyncio.sleep(0.005)

    sink = ScriptedSink(slow)
    exporter = Exporter(sink, QueueConfig(batch_size=2, num_workers=3))
    instances = [generate_pfid() for _ in range(8)]
    for instance in instances:
        for record in spans(instance, 4):
            exporter.submit(record)
    assert exporter.flush(10)
    assert sink.max_active == 3
    assert len(sink.delivered) == 64
    exporter.close()


def test_a_partial_batch_is_sent_after_the_flush_interval_without_a_flush() -> None:
    sink = ScriptedSink()
    exporter = Exporter(sink, QueueConfig(batch_size=100, flush_interval=0.05))
    exporter.submit(spans(generate_pfid(), 1)[0])
    assert sink.delivered_event.wait(5)
    exporter.close()


def test_a_backlog_wakes_the_worker_before_the_flush_interval() -> None:
    sink = ScriptedSink()
    exporter = Exporter(sink, QueueConfig(batch_size=10, flush_interval=60))
    instance = generate_pfid()
    for _ in range(WAKE_BACKLOG):  # twice the backlog, in create+finish pairs
        for record in spans(instance, 1):
            exporter.submit(record)
    assert sink.delivered_event.wait(5)
    assert len(sink.attempts[0]) == 10
    exporter.close(timeout=5)


def test_submit_from_many_threads_loses_nothing() -> None:
    sink = MemorySink()
    exporter = Exporter(sink, QueueConfig(batch_size=50))
    batches = [spans(generate_pfid(), 250) for _ in range(8)]

    def produce(records: list[Record]) -> None:
        for record in records:
            exporter.submit(record)

    threads = [threading.Thread(target=produce, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert exporter.flush(10)
    assert sorted(r.idempotency_key for r in sink.records) == sorted(
        r.idempotency_key for b in batches for r in b
    )
    exporter.close()


def test_memory_sink_keeps_records_and_their_wire_items() -> None:
    sink = MemorySink()
    exporter = Exporter(sink)
    records = spans(generate_pfid(), 2)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(5)
    assert sink.records == records
    assert sink.items == [r.to_bulk_item() for r in records]
    sink.clear()
    assert (sink.records, sink.items, sink.batch_count) == ([], [], 0)
    exporter.close()
    assert sink.closed


def test_flush_with_nothing_submitted_returns_true_at_once() -> None:
    exporter = Exporter(MemorySink())
    assert exporter.flush(0)
    exporter.close()


def test_flush_waits_for_a_record_whose_submitter_has_not_started_the_worker_yet() -> None:
    # The window between submit()'s append and its start of the worker, made
    # deterministic: another thread's flush must still wait for that record.
    sink = MemorySink()
    exporter = Exporter(sink)
    exporter._queue.extend(spans(generate_pfid(), 1))
    assert exporter.flush(5)
    assert len(sink.records) == 2
    exporter.close()


async def test_aflush_waits_without_blocking_the_event_loop() -> None:
    sink = MemorySink()
    exporter = Exporter(sink)
    for record in spans(generate_pfid(), 3):
        exporter.submit(record)
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(tick())
    assert await exporter.aflush(5)
    ticker.cancel()
    assert len(sink.records) == 6
    assert ticks > 0
    assert await exporter.aclose()


def test_flush_with_everything_delivered_returns_true_even_with_a_zero_timeout() -> None:
    sink = MemorySink()
    exporter = Exporter(sink)
    for record in spans(generate_pfid(), 2):
        exporter.submit(record)
    assert exporter.flush(10)
    assert exporter.flush(0)
    exporter.close()
