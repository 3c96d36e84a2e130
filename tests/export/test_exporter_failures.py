"""Retries, drops, rejections, terminations and internal errors, counted exactly."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Sequence

import pytest
from export_helpers import ScriptedSink, reject_finishes, spans, terminate_each

from prefactor._config import QueueConfig
from prefactor._errors import PrefactorError
from prefactor._export._internal import set_raise_internal_errors
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import TransientExportError
from prefactor._ids import generate_pfid
from prefactor._records import Record

FAST_RETRY = {"retry_delay_base": 0.001, "retry_delay_max": 0.01}


def failing(times: int, retry_after: float | None = None) -> ScriptedSink:
    """A sink whose first ``times`` attempts fail transiently."""
    calls = 0

    def behaviour(batch: Sequence[Record]) -> None:
        nonlocal calls
        calls += 1
        if calls <= times:
            raise TransientExportError("503 from the test", retry_after=retry_after)

    return ScriptedSink(behaviour)


def test_a_transient_failure_is_retried_and_delivered_once() -> None:
    sink = failing(2)
    exporter = Exporter(sink, QueueConfig(**FAST_RETRY))
    records = spans(generate_pfid(), 3)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert sink.delivered == records
    stats = exporter.stats()
    assert (stats.sent, stats.retried, dict(stats.dropped)) == (6, 2, {})
    exporter.close()


def test_retries_exhausted_drops_the_batch_counts_it_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sink = failing(10**6)
    exporter = Exporter(sink, QueueConfig(max_retries=2, **FAST_RETRY))
    for record in spans(generate_pfid(), 2):
        exporter.submit(record)
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, stats.retried, dict(stats.dropped)) == (0, 2, {"retries_exhausted": 4})
    assert len(sink.attempts) == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "gave up on 4 records after 3 attempts" in warnings[0].getMessage()
    exporter.close()


def test_retry_after_from_the_server_is_honoured() -> None:
    sink = failing(1, retry_after=0.3)
    exporter = Exporter(sink, QueueConfig(**FAST_RETRY | {"retry_delay_max": 5}))
    exporter.submit(spans(generate_pfid(), 1)[0])
    assert exporter.flush(10)
    first, second = sink.attempt_times
    assert second - first >= 0.3
    exporter.close()


def test_an_instance_in_backoff_does_not_hold_up_other_instances() -> None:
    stuck, healthy = generate_pfid(), generate_pfid()

    def behaviour(batch: Sequence[Record]) -> None:
        if batch[0].instance_id == stuck:
            raise TransientExportError("down", retry_after=30)

    sink = ScriptedSink(behaviour)
    config = QueueConfig(num_workers=1, flush_interval=0.01, retry_delay_max=60)
    exporter = Exporter(sink, config)
    for record in spans(stuck, 1):
        exporter.submit(record)
    for record in spans(healthy, 2):
        exporter.submit(record)
    assert sink.delivered_event.wait(10)
    assert [r.instance_id for r in sink.delivered] == [healthy] * 4
    assert exporter.stats().queued == 2
    exporter.close(timeout=0)


def test_flush_keeps_its_timeout_while_the_sink_is_in_retry_backoff() -> None:
    sink = failing(10**6)
    exporter = Exporter(sink, QueueConfig(retry_delay_base=1, retry_delay_max=1))
    exporter.submit(spans(generate_pfid(), 1)[0])
    start = time.monotonic()
    assert not exporter.flush(0.5)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 3
    exporter.close(timeout=0)


def test_flush_keeps_its_timeout_while_the_sink_hangs() -> None:
    async def hang(batch: Sequence[Record]) -> None:
        await asyncio.sleep(3600)

    exporter = Exporter(ScriptedSink(hang))
    exporter.submit(spans(generate_pfid(), 1)[0])
    start = time.monotonic()
    assert not exporter.flush(0.5)
    assert time.monotonic() - start < 3
    exporter.close(timeout=0)


def test_a_full_queue_drops_new_records_and_counts_them() -> None:
    release = threading.Event()

    async def gate(batch: Sequence[Record]) -> None:
        await asyncio.to_thread(release.wait, 10)

    sink = ScriptedSink(gate)
    exporter = Exporter(sink, QueueConfig(max_queue_size=10))
    records = spans(generate_pfid(), 8)
    accepted = [exporter.submit(record) for record in records]
    assert accepted == [True] * 10 + [False] * 6
    assert dict(exporter.stats().dropped) == {"queue_full": 6}
    release.set()
    assert exporter.flush(10)
    assert sink.delivered == records[:10]
    exporter.close()


def test_block_mode_waits_for_room_and_then_proceeds() -> None:
    release = threading.Event()

    async def gate(batch: Sequence[Record]) -> None:
        await asyncio.to_thread(release.wait, 10)

    sink = ScriptedSink(gate)
    exporter = Exporter(sink, QueueConfig(max_queue_size=4, batch_size=2, on_full="block"))
    records = spans(generate_pfid(), 5)
    done = threading.Event()

    def produce() -> None:
        for record in records:
            exporter.submit(record)
        done.set()

    producer = threading.Thread(target=produce)
    producer.start()
    assert not done.wait(0.3)  # stuck on the full queue while the sink is held
    release.set()
    assert done.wait(10)
    producer.join()
    assert exporter.flush(10)
    assert sink.delivered == records
    assert dict(exporter.stats().dropped) == {}
    exporter.close()


def test_close_is_idempotent_and_later_submits_are_dropped_as_closed() -> None:
    sink = ScriptedSink()
    exporter = Exporter(sink)
    records = spans(generate_pfid(), 2)
    exporter.submit(records[0])
    assert exporter.close()
    assert exporter.close()
    assert sink.closed
    assert not exporter.submit(records[1])
    stats = exporter.stats()
    assert (stats.submitted, stats.sent, dict(stats.dropped)) == (1, 1, {"closed": 1})


def test_close_counts_what_it_could_not_deliver_as_shutdown() -> None:
    async def hang(batch: Sequence[Record]) -> None:
        await asyncio.sleep(3600)

    sink = ScriptedSink(hang)
    exporter = Exporter(sink, QueueConfig(batch_size=2))
    for record in spans(generate_pfid(), 3):
        exporter.submit(record)
    assert not exporter.close(timeout=0.2)
    stats = exporter.stats()
    assert (stats.queued, stats.sent, dict(stats.dropped)) == (0, 0, {"shutdown": 6})
    assert sink.closed


def test_rejected_records_are_counted_and_the_rest_are_sent() -> None:
    sink = ScriptedSink(reject_finishes)
    exporter = Exporter(sink)
    records = spans(generate_pfid(), 3)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.submitted, stats.sent, stats.rejected) == (6, 3, 3)
    assert sink.delivered == records[::2]
    for record in spans(generate_pfid(), 1):
        exporter.submit(record)
    assert exporter.flush(10)
    assert exporter.stats().sent == 4  # a rejection never disables the exporter
    exporter.close()


def test_a_termination_signal_calls_on_terminate_with_instance_and_reason() -> None:
    calls: list[tuple[str, str | None]] = []
    instance = generate_pfid()
    exporter = Exporter(
        ScriptedSink(terminate_each), on_terminate=lambda i, r: calls.append((i, r))
    )
    exporter.submit(spans(instance, 1)[0])
    assert exporter.flush(10)
    assert calls == [(instance, "budget")]
    exporter.close()


def test_a_failing_on_terminate_callback_does_not_stop_the_worker() -> None:
    set_raise_internal_errors(False)

    def explode(instance_id: str, reason: str | None) -> None:
        raise RuntimeError("bug in the callback")

    sink = ScriptedSink(terminate_each)
    exporter = Exporter(sink, on_terminate=explode)
    exporter.submit(spans(generate_pfid(), 1)[0])
    assert exporter.flush(10)
    exporter.submit(spans(generate_pfid(), 1)[0])
    assert exporter.flush(10)
    assert exporter.stats().sent == 2
    exporter.close()


def test_an_internal_error_in_the_sink_drops_the_batch_and_the_worker_keeps_running() -> None:
    set_raise_internal_errors(False)
    first = True

    def behaviour(batch: Sequence[Record]) -> None:
        nonlocal first
        if first:
            first = False
            raise KeyError("bug in the sink")

    sink = ScriptedSink(behaviour)
    exporter = Exporter(sink)
    for record in spans(generate_pfid(), 1):
        exporter.submit(record)
    assert exporter.flush(10)
    later = spans(generate_pfid(), 1)
    for record in later:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, dict(stats.dropped)) == (2, {"internal_error": 2})
    assert sink.delivered == later
    exporter.close()


def test_an_internal_error_surfaces_from_flush_when_raising_is_on() -> None:
    def behaviour(batch: Sequence[Record]) -> None:
        raise KeyError("bug in the sink")

    exporter = Exporter(ScriptedSink(behaviour))
    exporter.submit(spans(generate_pfid(), 1)[0])
    with pytest.raises(KeyError, match="bug in the sink"):
        exporter.flush(10)
    exporter.close()


def test_stats_count_every_record_exactly() -> None:
    calls = 0

    def behaviour(batch: Sequence[Record]) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise TransientExportError("429")
        return reject_finishes(batch)

    config = QueueConfig(max_queue_size=8, flush_interval=30, **FAST_RETRY)
    exporter = Exporter(ScriptedSink(behaviour), config)  # nothing is sent before the flush
    records = spans(generate_pfid(), 5)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert stats.submitted == 8
    assert stats.queued == 0
    assert stats.in_flight == 0
    assert stats.sent == 4
    assert stats.rejected == 4
    assert stats.retried == 1
    assert dict(stats.dropped) == {"queue_full": 2}
    exporter.close()
    assert dict(exporter.stats().dropped) == {"queue_full": 2}


def test_close_warns_how_many_records_were_lost(caplog: pytest.LogCaptureFixture) -> None:
    exporter = Exporter(ScriptedSink(), QueueConfig(max_queue_size=2, flush_interval=30))
    for record in spans(generate_pfid(), 2):
        exporter.submit(record)
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        assert exporter.close()
    assert [r.getMessage() for r in caplog.records] == [
        "prefactor: 2 telemetry records were lost (queue_full=2); 2 were sent"
    ]


def test_a_transient_export_error_is_a_prefactor_error() -> None:
    with pytest.raises(PrefactorError):
        raise TransientExportError("503 from the test")
