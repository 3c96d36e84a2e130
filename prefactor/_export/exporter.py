"""The background exporter: a bounded queue on the caller's side, one worker thread behind it.

``submit()`` is the only thing on a user's hot path: an append to a
:class:`collections.deque` (atomic in CPython, so no lock) and a length check.
The :class:`~prefactor._export.worker.ExportWorker` behind it is one daemon
thread running its own asyncio loop, started on the first submit; it batches
per instance and delivers to every sink (see its module).

The worker wakes when the queue holds a backlog of ``WAKE_BACKLOG`` records
(or a batch, if larger), when ``flush``/``close`` asks, and otherwise when the
oldest partial batch has waited ``flush_interval``: no record waits longer
than that for its first attempt. Waking for less costs a busy producer dearly:
each wake hands the GIL to the worker.

Capacity: ``max_queue_size`` bounds every record accepted and not yet finished
(waiting, in backoff or in flight). Concurrent submitters may overshoot it by
at most one record each, the price of not taking a lock.

How an exporter ends with its process (exit, SIGTERM, fork, multiprocessing)
is :mod:`prefactor._export.process`.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
import time
from collections.abc import Sequence

from prefactor._config import QueueConfig
from prefactor._export import process
from prefactor._export._internal import raise_internal_errors
from prefactor._export.base import Sink
from prefactor._export.stats import DropReason, ExportStats
from prefactor._export.worker import ExportWorker, FlushMarker, TerminateCallback
from prefactor._records import Record

__all__ = ["Exporter", "TerminateCallback"]

logger = logging.getLogger("prefactor.export")

_LIVENESS_SLICE = 1.0
_JOIN_GRACE = 1.0
"""Seconds past the shutdown timeout that close() gives the worker to close its sinks."""
_SPOOL_GRACE = 5.0
"""Seconds more when a spool is set: the backlog is written to it after the timeout."""

WAKE_BACKLOG = 4096
"""Queued records that wake the worker before ``flush_interval`` elapses."""


class Exporter:
    """Batches records off the caller's path and delivers them to one or more sinks.

    Args:
        sink: where batches go (:class:`HttpSink`, :class:`LocalSink`,
            :class:`MemorySink`...), or a sequence of sinks: each of them gets
            every record, and a sink's failures are retried for that sink only.
        config: queue size, batching, concurrency and retry settings.
        on_terminate: called as ``on_terminate(instance_id, reason)`` from the
            worker thread when the platform asks to terminate an instance. May
            be called more than once for one instance; exceptions are logged.
        name: the worker thread's name.
    """

    def __init__(
        self,
        sink: Sink | Sequence[Sink],
        config: QueueConfig | None = None,
        *,
        on_terminate: TerminateCallback | None = None,
        name: str = "prefactor-export",
    ) -> None:
        sinks = (sink,) if isinstance(sink, Sink) else tuple(sink)
        if not sinks:
            raise ValueError("an exporter needs at least one sink")
        self._sinks = sinks
        self._config = config if config is not None else QueueConfig()
        self._on_terminate = on_terminate
        self._name = name
        self._batch_size = self._config.batch_size
        # Wake the worker early only for a backlog of several batches: every wake
        # makes the worker take the GIL from the producing thread, and a wake per
        # batch doubled the per-call cost of a busy producer. flush_interval bounds
        # the delay of everything below the threshold.
        self._wake_at = min(max(self._batch_size, WAKE_BACKLOG), self._config.max_queue_size)
        self._max_size = self._config.max_queue_size
        self._block = self._config.on_full == "block"
        self._closed = False
        self._reset()
        process.track(self)
        if self._config.spool_path is not None and self._worker.has_spooled():
            self._start()  # send what an earlier run spooled without waiting for a record

    def _reset(self) -> None:
        """Fresh queue, locks, counters and worker (at creation and in a forked child)."""
        self._queue: collections.deque[Record | FlushMarker] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(threading.Lock())
        self._blocked = 0
        self._stalled = False
        self._closing = False
        self._close_result = True
        self._close_done = threading.Event()
        # Written under self._lock by submitters that drop.
        self._caller_drops: collections.Counter[str] = collections.Counter()
        self._worker = ExportWorker(
            self._queue,
            self._sinks,
            self._config,
            on_terminate=self._on_terminate,
            on_room=self._room_freed,
            name=self._name,
        )

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The sinks every record goes to, in order."""
        return self._sinks

    @property
    def config(self) -> QueueConfig:
        """The queue settings."""
        return self._config

    # --- the caller's side ------------------------------------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue ``record`` for export; never raises, never waits for the network.

        Safe from any thread or event loop: an append and a length check. Only
        with ``on_full="block"`` and a full queue does it wait, for room and at
        most ``block_timeout`` seconds, blocking the calling thread (event loop
        included).

        Returns:
            ``False`` when the record was dropped (queue full, or the exporter
            is closed), else ``True``.
        """
        try:
            if self._closed:
                self._count_drop(DropReason.CLOSED)
                return False
            queue, worker = self._queue, self._worker
            if len(queue) + worker.held >= self._max_size:
                if not self._block:
                    self._count_drop(DropReason.QUEUE_FULL)
                    return False
                return self._submit_blocking(record)
            queue.append(record)
            if not worker.started:
                self._start()
            if len(queue) >= self._wake_at and not worker.wake_pending:
                worker.wake()
            return True
        except Exception:
            logger.exception("prefactor: dropped a record after an internal error")
            self._count_drop(DropReason.INTERNAL_ERROR)
            return False

    def _submit_blocking(self, record: Record) -> bool:
        """Wait (on a condition, not a spin) for room, at most ``block_timeout``, then queue.

        A wait that times out marks the queue stalled: until the worker frees
        room again, later callers drop at once instead of each waiting in turn.
        """
        worker = self._worker
        if worker.is_current():
            # The worker frees the room; it must never wait for itself.
            self._count_drop(DropReason.QUEUE_FULL)
            return False
        deadline = time.monotonic() + self._config.block_timeout
        with self._space:
            self._blocked += 1
            try:
                while len(self._queue) + worker.held >= self._max_size:
                    if self._closed:
                        self._count_drop(DropReason.CLOSED)
                        return False
                    left = deadline - time.monotonic()
                    if self._stalled or left <= 0:
                        self._stalled = True
                        self._count_drop(DropReason.QUEUE_FULL)
                        return False
                    worker.wake()
                    # The slice is only a safety net against a lost notify.
                    self._space.wait(min(left, self._config.flush_interval))
                self._queue.append(record)
            finally:
                self._blocked -= 1
        if not worker.started:
            self._start()
        return True

    def _room_freed(self) -> None:
        """Called by the worker when records leave the queue's capacity."""
        self._stalled = False
        if self._blocked:
            with self._space:
                self._space.notify_all()

    def _count_drop(self, reason: str, count: int = 1) -> None:
        with self._lock:
            self._caller_drops[reason] += count

    def _start(self) -> None:
        self._worker.start()
        process.started(self._config)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record submitted before this call is sent, rejected or dropped.

        Also waits for what an earlier run left in the spool, which the
        exporter sends when it starts. A sync call usable from any thread. In
        async code use :meth:`aflush`, which waits in a worker thread instead
        of blocking the event loop. A flush never cancels a retry: when the
        timeout expires it just stops waiting.

        Returns:
            ``True`` if everything finished in time, ``False`` on timeout (or
            when called from the exporter's own thread, which cannot wait for
            itself).

        Raises:
            Exception: only with internal-error surfacing on (the SDK's own
                tests); then the first error the worker swallowed.
        """
        worker = self._worker
        if worker.is_current():
            return False
        if self._queue and not worker.started and not self._closed:
            # A submitter in another thread has queued its record but not yet started
            # the worker: start it here rather than report a flush that never waited.
            self._start()
        if not worker.alive() or (not self._queue and not worker.held):
            done = not self._queue and not worker.held
            if done and worker.alive():
                done = self._wait_for(worker.pushed, timeout)
            self._surface_internal_errors()
            return done
        marker = FlushMarker()
        self._queue.append(marker)
        worker.wake()
        deadline = None if timeout is None else time.monotonic() + timeout
        done = self._wait_for(marker.done, timeout)
        if done:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            done = self._wait_for(worker.pushed, left)
        self._surface_internal_errors()
        return done

    def _wait_for(self, event: threading.Event, timeout: float | None) -> bool:
        """Wait for ``event``, at most ``timeout``, and not past the worker's death."""
        worker = self._worker
        deadline = None if timeout is None else time.monotonic() + timeout
        while not event.is_set():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            # Wait in slices only to notice a worker that has died meanwhile.
            if event.wait(_LIVENESS_SLICE if left is None else min(left, _LIVENESS_SLICE)):
                return True
            if not worker.alive():
                return event.is_set()
        return True

    async def aflush(self, timeout: float | None = None) -> bool:
        """:meth:`flush` for async code: waits in a thread, the event loop keeps running."""
        return await asyncio.to_thread(self.flush, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Flush, stop the worker and close the sinks; idempotent.

        Records submitted afterwards are dropped (reason ``closed``); those
        still pending when the wait ends are dropped (reason ``shutdown``).
        If any record was ever lost, a WARNING says how many, why, and the
        last error of each destination that failed.

        Args:
            timeout: seconds to wait; ``None`` means ``config.shutdown_timeout``.

        Returns:
            ``True`` if everything queued was delivered (sent or rejected).
        """
        with process.closing():
            return self._close(timeout)

    def _close(self, timeout: float | None) -> bool:
        wait = self._config.shutdown_timeout if timeout is None else timeout
        with self._lock:
            closing, self._closing = self._closing, True
        if closing:  # closed, or closing in another thread: wait for that close
            self._close_done.wait(wait + self._grace())
            return self._close_result
        deadline = time.monotonic() + wait
        self._closed = True
        with self._space:
            self._space.notify_all()
        worker = self._worker
        worker.closing = True
        if not worker.started:
            worker.start()  # closes the sinks on the worker's loop
        ok = self.flush(wait)
        worker.stop()
        worker.join(max(deadline - time.monotonic(), 0.0) + self._grace())
        self._close_result = ok
        self._close_done.set()
        self._report_losses()
        self._surface_internal_errors()
        return ok

    def _grace(self) -> float:
        return _JOIN_GRACE + (_SPOOL_GRACE if self._config.spool_path is not None else 0.0)

    @property
    def longest_close(self) -> float:
        """Seconds a :meth:`close` with the default timeout may take at most."""
        return self._config.shutdown_timeout + self._grace()

    def _report_losses(self) -> None:
        stats = self.stats()
        if not stats.dropped_total and not stats.spooled:
            return
        causes = []
        for sink, sink_stats in self._worker.sinks():
            if sink_stats.last_error is not None:
                causes.append(f"; {sink!r} last failed with: {sink_stats.last_error}")
            elif sink_stats.dropped.get(DropReason.SHUTDOWN) or sink_stats.spooled:
                causes.append(f"; {sink!r} had not answered by the shutdown timeout")
        if stats.dropped_total:
            reasons = ", ".join(f"{k}={v}" for k, v in sorted(stats.dropped.items()) if v)
            logger.warning(
                "prefactor: %d telemetry records were lost (%s); %d were sent%s",
                stats.dropped_total,
                reasons,
                stats.sent,
                "".join(causes),
            )
        spool = self._worker.spool
        if stats.spooled and spool is not None:
            logger.warning(
                "prefactor: %d telemetry records wait in the spool %s; they are sent on the"
                " next start or by `prefactor push`%s",
                stats.spooled,
                spool.path,
                "".join(causes),
            )

    async def aclose(self, timeout: float | None = None) -> bool:
        """:meth:`close` for async code."""
        return await asyncio.to_thread(self.close, timeout)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    @property
    def stopped(self) -> bool:
        """Whether a :meth:`close` has finished (the worker stopped, the sinks closed)."""
        return self._close_done.is_set()

    def stats(self) -> ExportStats:
        """A snapshot of the counters (exact once the exporter is idle)."""
        with self._lock:
            caller_drops = collections.Counter(self._caller_drops)
        waiting = sum(1 for item in list(self._queue) if not isinstance(item, FlushMarker))
        return self._worker.stats(waiting, caller_drops)

    def _surface_internal_errors(self) -> None:
        if raise_internal_errors():
            error = self._worker.take_internal_error()
            if error is not None:
                raise error

    def after_fork_in_child(self) -> None:
        """Start over empty: the parent still owns and sends what it had queued."""
        process.orphan(self._worker.loop)
        self._reset()
        if self._closed:
            self._closing = True
            self._close_done.set()
