"""The worker side of the exporter: lanes, batches, retries, accounting.

Everything here runs on the exporter's own thread and event loop; the
counters it writes are read, never written, by other threads. The caller's
side (submit, flush, close) is :mod:`prefactor._export.exporter`.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from prefactor._config import QueueConfig
from prefactor._export._support import RateLimitedLog, backoff_delay
from prefactor._export.sinks.base import ExportResult, Sink, TransientExportError
from prefactor._export.stats import DropReason
from prefactor._records import Record

__all__ = ["ExportWorker", "FlushMarker", "TerminateCallback"]

logger = logging.getLogger("prefactor.export")

TerminateCallback = Callable[[str, str | None], None]


class FlushMarker:
    """Queued by ``flush``: done once every record queued before it has finished."""

    __slots__ = ("done", "remaining", "seq")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seq = 0
        self.remaining = 0


@dataclass(slots=True, eq=False)
class _Batch:
    """Records sent together, with their drain sequence numbers (rising), for flush markers.

    Kept side by side rather than as ``(seq, record)`` pairs: a pair is one more
    object per record for the garbage collector to track until the batch is done.
    """

    records: list[Record]
    seqs: list[int]


@dataclass(slots=True, eq=False)
class _Lane:
    """The records of one instance, waiting in order, and their drain sequence numbers."""

    records: collections.deque[Record] = field(default_factory=collections.deque)
    seqs: collections.deque[int] = field(default_factory=collections.deque)
    since: float = 0.0  # when the oldest waiting record arrived (roughly)
    busy: bool = False
    retry_batch: _Batch | None = None
    retry_at: float = 0.0
    attempt: int = 0


class ExportWorker:
    """The exporter's background half; :class:`~prefactor._export.exporter.Exporter` is the rest."""

    _sink: Sink
    _config: QueueConfig
    _on_terminate: TerminateCallback | None
    _batch_size: int
    _closed: bool
    _queue: collections.deque[Record | FlushMarker]
    _space: threading.Condition
    _blocked: int
    _rejections_log: RateLimitedLog
    _failures_log: RateLimitedLog

    def _reset_worker(self) -> None:
        """No lanes, no counters, no loop yet (at creation and in a forked child)."""
        self._wake_pending = False
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._lanes: dict[str, _Lane] = {}
        self._markers: list[FlushMarker] = []
        self._seq = 0
        self._held = 0
        self._in_flight = 0
        self._in_flight_batches = 0
        self._sent = 0
        self._rejected = 0
        self._retried = 0
        self._worker_drops: collections.Counter[str] = collections.Counter()
        self._internal_errors: list[BaseException] = []

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _run(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except Exception:
            logger.exception("prefactor: the export worker stopped after an internal error")
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _main(self) -> None:
        self._wake = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        while not self._stopping:
            self._wake_pending = False
            self._wake.clear()
            deadline: float | None = None
            try:
                self._drain()
                deadline = self._dispatch(tasks)
            except Exception as exc:
                self._internal_error(exc, "the export worker loop", 0)
            if self._stopping:
                break
            delay = self._config.flush_interval
            if deadline is not None:
                delay = min(delay, max(deadline - time.monotonic(), 0.0))
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
        await self._shutdown(tasks)

    def _drain(self) -> None:
        """Move every queued record into its instance's lane.

        Records are taken in chunks of what is queued now. The chunk is counted
        as held before any of it leaves the queue, so ``len(queue) + held``
        (read by flush and the capacity check in other threads) may briefly
        over-count, never under-count. Counters live in locals for the chunk:
        this loop runs once per record, and attribute updates were most of it.
        """
        queue, lanes, now = self._queue, self._lanes, time.monotonic()
        popleft = queue.popleft
        last_key: str | None = None
        last_lane: _Lane | None = None
        while True:
            n = len(queue)
            if not n:
                break
            base = self._held
            self._held = base + n
            seq = self._seq
            taken = 0
            for _ in range(n):
                item = popleft()
                if isinstance(item, FlushMarker):
                    self._held -= 1
                    # What this flush waits for: every record held before it.
                    item.seq, item.remaining = seq, base + taken
                    if item.remaining == 0:
                        item.done.set()
                    else:
                        self._markers.append(item)
                    continue
                seq += 1
                taken += 1
                key = item.instance_id
                if key == last_key and last_lane is not None:
                    lane = last_lane
                else:
                    found = lanes.get(key)
                    if found is None:
                        found = lanes[key] = _Lane(since=now)
                    lane, last_key, last_lane = found, key, found
                if not lane.records:
                    lane.since = now
                lane.records.append(item)
                lane.seqs.append(seq)
            self._seq = seq

    def _dispatch(self, tasks: set[asyncio.Task[None]]) -> float | None:
        """Start batches for ready lanes; return when the next waiting lane becomes ready."""
        now = time.monotonic()
        urgent = bool(self._markers) or self._closed
        interval, batch_size = self._config.flush_interval, self._batch_size
        next_due: float | None = None
        for key, lane in list(self._lanes.items()):
            if lane.busy:
                continue
            if lane.retry_batch is not None:
                if lane.retry_at > now:
                    next_due = lane.retry_at if next_due is None else min(next_due, lane.retry_at)
                    continue
            elif not lane.records:
                del self._lanes[key]
                continue
            elif not (len(lane.records) >= batch_size or urgent or now - lane.since >= interval):
                due = lane.since + interval
                next_due = due if next_due is None else min(next_due, due)
                continue
            if self._in_flight_batches >= self._config.num_workers:
                break  # a finishing batch wakes the worker, which comes back here
            if lane.retry_batch is not None:
                batch, lane.retry_batch = lane.retry_batch, None
            else:
                take = min(batch_size, len(lane.records))
                records, seqs = lane.records.popleft, lane.seqs.popleft
                batch = _Batch([records() for _ in range(take)], [seqs() for _ in range(take)])
            # Move the lane to the end so that busy instances take turns.
            del self._lanes[key]
            self._lanes[key] = lane
            lane.busy = True
            self._in_flight_batches += 1
            self._in_flight += len(batch.records)
            task = asyncio.get_running_loop().create_task(self._deliver(key, lane, batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return next_due

    async def _deliver(self, key: str, lane: _Lane, batch: _Batch) -> None:
        size = len(batch.records)
        finished = True
        try:
            result = await self._sink.export(batch.records)
        except TransientExportError as exc:
            finished = self._schedule_retry(lane, batch, exc)
        except asyncio.CancelledError:
            self._worker_drops[DropReason.SHUTDOWN] += size
            raise
        except Exception as exc:
            self._internal_error(exc, f"the sink ({type(self._sink).__name__})", size)
        else:
            lane.attempt = 0
            self._apply(result, size)
        finally:
            lane.busy = False
            self._in_flight_batches -= 1
            self._in_flight -= size
            if finished:
                self._finish(batch)
            if not lane.records and lane.retry_batch is None:
                self._lanes.pop(key, None)
            if self._wake is not None:
                self._wake.set()

    def _schedule_retry(self, lane: _Lane, batch: _Batch, exc: TransientExportError) -> bool:
        """Keep the batch for another attempt; ``True`` when it was dropped instead."""
        config = self._config
        if lane.attempt >= config.max_retries:
            lane.attempt = 0
            self._worker_drops[DropReason.RETRIES_EXHAUSTED] += len(batch.records)
            self._failures_log.log(
                logging.WARNING,
                "prefactor: dropped %d records after %d attempts; last error: %s",
                len(batch.records),
                config.max_retries + 1,
                exc,
            )
            return True
        delay = backoff_delay(
            lane.attempt, config.retry_delay_base, config.retry_delay_max, exc.retry_after
        )
        lane.attempt += 1
        self._retried += 1
        lane.retry_batch = batch
        lane.retry_at = time.monotonic() + delay
        logger.debug("prefactor: batch failed (%s); retry %d in %.2fs", exc, lane.attempt, delay)
        return False

    def _apply(self, result: ExportResult, size: int) -> None:
        rejected = len(result.rejected)
        self._rejected += rejected
        self._sent += size - rejected
        for rejection in result.rejected:
            self._rejections_log.log(
                logging.WARNING,
                "prefactor: the server refused %s %s: %s (%s)",
                rejection.record.kind,
                rejection.record.idempotency_key,
                rejection.message,
                rejection.code,
            )
        if self._on_terminate is not None:
            for termination in result.terminations:
                try:
                    self._on_terminate(termination.instance_id, termination.reason)
                except Exception as exc:
                    self._internal_error(exc, "the on_terminate callback", 0)

    def _internal_error(self, exc: BaseException, where: str, dropped: int) -> None:
        if dropped:
            self._worker_drops[DropReason.INTERNAL_ERROR] += dropped
        logger.error(
            "prefactor: internal error in %s; %d records dropped", where, dropped, exc_info=exc
        )
        self._internal_errors.append(exc)

    def _finish(self, batch: _Batch) -> None:
        """Account for records that are done (sent, rejected or dropped)."""
        seqs = batch.seqs
        self._held -= len(seqs)
        if self._markers:
            for marker in list(self._markers):
                # Sequence numbers rise within a batch: count those up to the marker's.
                if seqs[-1] <= marker.seq:
                    marker.remaining -= len(seqs)
                elif seqs[0] <= marker.seq:
                    marker.remaining -= bisect.bisect_right(seqs, marker.seq)
                if marker.remaining <= 0:
                    marker.done.set()
                    self._markers.remove(marker)
        if self._blocked:
            with self._space:
                self._space.notify_all()

    async def _shutdown(self, tasks: set[asyncio.Task[None]]) -> None:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._drain()
        lost = self._held
        self._lanes.clear()
        self._held = 0
        if lost:
            self._worker_drops[DropReason.SHUTDOWN] += lost
        for marker in self._markers:
            marker.done.set()
        self._markers.clear()
        try:
            await self._sink.aclose()
        except Exception as exc:
            self._internal_error(exc, "closing the sink", 0)
