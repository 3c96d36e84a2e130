"""The background exporter: a bounded queue on the caller's side, one worker thread behind it.

``submit()`` is the only thing on a user's hot path: an append to a
:class:`collections.deque` (atomic in CPython, so no lock) and a length check.
The worker is one daemon thread running its own asyncio loop, started on the
first submit. It moves records into per-instance lanes (FIFO), sends a lane's
records in batches of up to ``batch_size``, one batch per lane at a time (order
kept within an instance) and up to ``num_workers`` lanes at once. A lane
waiting out a retry backoff holds no worker slot, so other instances keep
flowing. Lanes disappear once empty: nothing per span or per instance outlives
what is still queued.

The worker wakes when the queue holds a batch's worth of records (once per
batch, not per record), when ``flush``/``close`` asks, and otherwise when the
oldest partial batch has waited ``flush_interval``: no record waits longer
than that for its first attempt.

Capacity: ``max_queue_size`` bounds every record accepted and not yet finished
(waiting, in backoff or in flight). Concurrent submitters may overshoot it by
at most one record each, the price of not taking a lock.

After ``os.fork()`` the child starts empty, with fresh counters (the parent
still owns and sends the records it had queued; copying them would send them
twice, idempotency keys or not) and starts its own worker on its first submit.
"""

from __future__ import annotations

import asyncio
import atexit
import bisect
import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from types import MappingProxyType

from prefactor.config import QueueConfig
from prefactor.export._internal import raise_internal_errors
from prefactor.export._support import RateLimitedLog, backoff_delay
from prefactor.export.records import Record
from prefactor.export.sinks.base import ExportResult, Sink, TransientExportError
from prefactor.export.stats import DropReason, ExportStats

__all__ = ["Exporter", "TerminateCallback"]

logger = logging.getLogger("prefactor.export")

TerminateCallback = Callable[[str, str | None], None]
_Entry = tuple[int, Record]  # (drain sequence number, record)
_LIVENESS_SLICE = 1.0


def _seq_of(entry: _Entry) -> int:
    return entry[0]


class _FlushMarker:
    """Queued by ``flush``: done once every record queued before it has finished."""

    __slots__ = ("done", "remaining", "seq")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seq = 0
        self.remaining = 0


@dataclass(slots=True, eq=False)
class _Lane:
    """The records of one instance, waiting in order."""

    records: collections.deque[_Entry] = field(default_factory=collections.deque)
    since: float = 0.0  # when the oldest waiting record arrived (roughly)
    busy: bool = False
    retry_batch: list[_Entry] | None = None
    retry_at: float = 0.0
    attempt: int = 0


class Exporter:
    """Batches records off the caller's path and delivers them to a sink.

    Args:
        sink: where batches go (:class:`HttpSink`, :class:`LocalSink`, :class:`MemorySink`...).
        config: queue size, batching, concurrency and retry settings.
        on_terminate: called as ``on_terminate(instance_id, reason)`` from the
            worker thread when the platform asks to terminate an instance. May
            be called more than once for one instance; exceptions are logged.
        name: the worker thread's name.
    """

    def __init__(
        self,
        sink: Sink,
        config: QueueConfig | None = None,
        *,
        on_terminate: TerminateCallback | None = None,
        name: str = "prefactor-export",
    ) -> None:
        self._sink = sink
        self._config = config if config is not None else QueueConfig()
        self._on_terminate = on_terminate
        self._name = name
        self._batch_size = self._config.batch_size
        self._max_size = self._config.max_queue_size
        self._block = self._config.on_full == "block"
        self._closed = False
        self._rejections_log = RateLimitedLog(logger)
        self._failures_log = RateLimitedLog(logger)
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks, counters and no worker (at creation and in a forked child)."""
        self._queue: collections.deque[Record | _FlushMarker] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(threading.Lock())
        self._blocked = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake_pending = False
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._closing = False
        self._close_result = True
        # Written by the worker only; other threads just read them.
        self._lanes: dict[str, _Lane] = {}
        self._markers: list[_FlushMarker] = []
        self._seq = 0
        self._held = 0
        self._in_flight = 0
        self._in_flight_batches = 0
        self._sent = 0
        self._rejected = 0
        self._retried = 0
        self._worker_drops: collections.Counter[str] = collections.Counter()
        self._internal_errors: list[BaseException] = []
        # Written under self._lock by submitters that drop.
        self._caller_drops: collections.Counter[str] = collections.Counter()

    # --- the caller's side ------------------------------------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue ``record`` for export; never raises, never waits for the network.

        Returns:
            ``False`` when the record was dropped (queue full with
            ``on_full="drop"``, or the exporter is closed), else ``True``.
        """
        try:
            if self._closed:
                self._count_drop(DropReason.CLOSED)
                return False
            queue = self._queue
            if len(queue) + self._held >= self._max_size:
                if not self._block:
                    self._count_drop(DropReason.QUEUE_FULL)
                    return False
                return self._submit_blocking(record)
            queue.append(record)
            if self._thread is None:
                self._start()
            if len(queue) >= self._batch_size and not self._wake_pending:
                self._wake_worker()
            return True
        except Exception:
            logger.exception("prefactor: dropped a record after an internal error")
            self._count_drop(DropReason.INTERNAL_ERROR)
            return False

    def _submit_blocking(self, record: Record) -> bool:
        """Wait (on a condition, not a spin) until the queue has room, then queue."""
        if threading.current_thread() is self._thread:
            # The worker frees the room; it must never wait for itself.
            self._count_drop(DropReason.QUEUE_FULL)
            return False
        with self._space:
            self._blocked += 1
            try:
                while len(self._queue) + self._held >= self._max_size:
                    if self._closed:
                        self._count_drop(DropReason.CLOSED)
                        return False
                    self._wake_worker()
                    # The timeout is only a safety net against a lost notify.
                    self._space.wait(self._config.flush_interval)
                self._queue.append(record)
            finally:
                self._blocked -= 1
        if self._thread is None:
            self._start()
        return True

    def _count_drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._caller_drops[reason] += count

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
            self._loop = loop
            try:
                thread.start()
            except RuntimeError:  # at interpreter shutdown: records stay queued, flush says so
                logger.warning("prefactor: could not start the export worker", exc_info=True)
                self._loop = None
                loop.close()
                return
            self._thread = thread

    def _wake_worker(self) -> None:
        loop = self._loop
        if loop is None:
            return
        self._wake_pending = True
        # A closed loop means the worker is gone: nothing left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._set_wake)

    def _set_wake(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record submitted before this call is sent, rejected or dropped.

        A sync call usable from any thread. In async code use :meth:`aflush`,
        which waits in a worker thread instead of blocking the event loop. A
        flush never cancels a retry: when the timeout expires it just stops
        waiting.

        Returns:
            ``True`` if everything finished in time, ``False`` on timeout (or
            when called from the exporter's own thread, which cannot wait for
            itself).

        Raises:
            Exception: only with internal-error surfacing on (the SDK's own
                tests); then the first error the worker swallowed.
        """
        if threading.current_thread() is self._thread:
            return False
        thread = self._thread
        if thread is None or not thread.is_alive() or (not self._queue and not self._held):
            self._surface_internal_errors()
            return not self._queue and not self._held
        marker = _FlushMarker()
        self._queue.append(marker)
        self._wake_worker()
        deadline = None if timeout is None else time.monotonic() + timeout
        done = False
        while not done:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            # Wait in slices only to notice a worker that has died meanwhile.
            done = marker.done.wait(_LIVENESS_SLICE if left is None else min(left, _LIVENESS_SLICE))
            if not done and not thread.is_alive():
                break
        self._surface_internal_errors()
        return done

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for async code: waits in a thread, the event loop keeps running."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the worker and close the sink; idempotent.

        Records submitted afterwards are dropped (reason ``closed``); those
        still pending when the wait ends are dropped (reason ``shutdown``).
        If any record was ever lost, a WARNING says how many and why.

        Args:
            timeout: seconds to wait; ``None`` means ``config.shutdown_timeout``.

        Returns:
            ``True`` if everything queued was delivered (sent or rejected).
        """
        with self._lock:
            if self._closing:
                return self._close_result
            self._closing = True
        wait = self._config.shutdown_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        self._closed = True
        with self._space:
            self._space.notify_all()
        if self._thread is None:
            self._start()  # closes the sink on the worker's loop
        ok = self.flush(wait)
        self._stopping = True
        self._wake_worker()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(deadline - time.monotonic(), 0.0) + 1.0)
        self._close_result = ok
        self._report_losses()
        self._surface_internal_errors()
        return ok

    def _report_losses(self) -> None:
        stats = self.stats()
        if stats.dropped_total:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.dropped.items()) if v)
            logger.warning(
                "prefactor: %d telemetry records were lost (%s); %d were sent",
                stats.dropped_total,
                reasons,
                stats.sent,
            )

    async def aclose(self, timeout: float | None = None) -> bool:
        """:meth:`close` for async code."""
        return await asyncio.to_thread(self.close, timeout)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def stats(self) -> ExportStats:
        """A snapshot of the counters (exact once the exporter is idle)."""
        with self._lock:
            dropped = collections.Counter(self._caller_drops)
        dropped.update(dict(self._worker_drops))
        waiting = sum(1 for item in list(self._queue) if not isinstance(item, _FlushMarker))
        return ExportStats(
            submitted=self._seq + waiting,
            queued=waiting + self._held,
            in_flight=self._in_flight,
            sent=self._sent,
            rejected=self._rejected,
            retried=self._retried,
            dropped=MappingProxyType(dict(dropped)),
        )

    def _surface_internal_errors(self) -> None:
        if self._internal_errors and raise_internal_errors():
            error = self._internal_errors[0]
            self._internal_errors.clear()
            raise error

    def _after_fork_in_child(self) -> None:
        # The parent's loop is marked running in a thread that does not exist
        # here: keep it referenced (never collected, never closed) and start over.
        if self._loop is not None:
            _orphaned_loops.append(self._loop)
        self._reset()
        self._closing = self._closed

    # --- the worker's side ------------------------------------------------------------------

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
        """Move every queued record into its instance's lane."""
        queue, lanes, now = self._queue, self._lanes, time.monotonic()
        popleft = queue.popleft
        while True:
            # Count the record as held before it leaves the queue, so that
            # len(queue) + held never under-counts what is pending (flush and
            # the capacity check read both from other threads).
            self._held += 1
            try:
                item = popleft()
            except IndexError:
                self._held -= 1
                break
            if isinstance(item, _FlushMarker):
                self._held -= 1
                item.seq, item.remaining = self._seq, self._held
                if item.remaining == 0:
                    item.done.set()
                else:
                    self._markers.append(item)
                continue
            self._seq += 1
            lane = lanes.get(item.instance_id)
            if lane is None:
                lane = lanes[item.instance_id] = _Lane(since=now)
            elif not lane.records:
                lane.since = now
            lane.records.append((self._seq, item))

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
                batch = [lane.records.popleft() for _ in range(take)]
            # Move the lane to the end so that busy instances take turns.
            del self._lanes[key]
            self._lanes[key] = lane
            lane.busy = True
            self._in_flight_batches += 1
            self._in_flight += len(batch)
            task = asyncio.get_running_loop().create_task(self._deliver(key, lane, batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        return next_due

    async def _deliver(self, key: str, lane: _Lane, batch: list[_Entry]) -> None:
        records = [record for _, record in batch]
        finished = True
        try:
            result = await self._sink.export(records)
        except TransientExportError as exc:
            finished = self._schedule_retry(lane, batch, exc)
        except asyncio.CancelledError:
            self._worker_drops[DropReason.SHUTDOWN] += len(batch)
            raise
        except Exception as exc:
            self._internal_error(exc, f"the sink ({type(self._sink).__name__})", len(batch))
        else:
            lane.attempt = 0
            self._apply(result, len(batch))
        finally:
            lane.busy = False
            self._in_flight_batches -= 1
            self._in_flight -= len(batch)
            if finished:
                self._finish(batch)
            if not lane.records and lane.retry_batch is None:
                self._lanes.pop(key, None)
            if self._wake is not None:
                self._wake.set()

    def _schedule_retry(self, lane: _Lane, batch: list[_Entry], exc: TransientExportError) -> bool:
        """Keep the batch for another attempt; ``True`` when it was dropped instead."""
        config = self._config
        if lane.attempt >= config.max_retries:
            lane.attempt = 0
            self._worker_drops[DropReason.RETRIES_EXHAUSTED] += len(batch)
            self._failures_log.log(
                logging.WARNING,
                "prefactor: dropped %d records after %d attempts; last error: %s",
                len(batch),
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

    def _finish(self, batch: list[_Entry]) -> None:
        """Account for records that are done (sent, rejected or dropped)."""
        self._held -= len(batch)
        if self._markers:
            for marker in list(self._markers):
                # Sequence numbers rise within a batch: count those up to the marker's.
                if batch[-1][0] <= marker.seq:
                    marker.remaining -= len(batch)
                elif batch[0][0] <= marker.seq:
                    marker.remaining -= bisect.bisect_right(batch, marker.seq, key=_seq_of)
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


_live: weakref.WeakSet[Exporter] = weakref.WeakSet()
_orphaned_loops: list[asyncio.AbstractEventLoop] = []


def _after_fork_in_child() -> None:
    for exporter in list(_live):
        exporter._after_fork_in_child()


def _at_exit() -> None:
    """Flush every open exporter with its shutdown timeout; ``close`` reports what was lost."""
    for exporter in list(_live):
        if exporter.closed:
            continue
        try:
            exporter.close()
        except Exception:
            logger.exception("prefactor: error while closing the exporter at exit")


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_at_exit)
