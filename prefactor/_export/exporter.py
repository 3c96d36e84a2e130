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

The worker wakes when the queue holds a backlog of ``WAKE_BACKLOG`` records
(or a batch, if larger), when ``flush``/``close`` asks, and otherwise when the
oldest partial batch has waited ``flush_interval``: no record waits longer
than that for its first attempt. Waking for less costs a busy producer dearly:
each wake hands the GIL to the worker.

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
import collections
import contextlib
import logging
import os
import threading
import time
import weakref
from types import MappingProxyType

from prefactor._config import QueueConfig
from prefactor._export._internal import raise_internal_errors
from prefactor._export._support import RateLimitedLog
from prefactor._export.sinks.base import Sink
from prefactor._export.stats import DropReason, ExportStats
from prefactor._export.worker import ExportWorker, FlushMarker, TerminateCallback
from prefactor._records import Record

__all__ = ["Exporter", "TerminateCallback"]

logger = logging.getLogger("prefactor.export")

_LIVENESS_SLICE = 1.0


WAKE_BACKLOG = 4096
"""Queued records that wake the worker before ``flush_interval`` elapses."""


class Exporter(ExportWorker):
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
        # Wake the worker early only for a backlog of several batches: every wake
        # makes the worker take the GIL from the producing thread, and a wake per
        # batch doubled the per-call cost of a busy producer. flush_interval bounds
        # the delay of everything below the threshold.
        self._wake_at = min(max(self._batch_size, WAKE_BACKLOG), self._config.max_queue_size)
        self._max_size = self._config.max_queue_size
        self._block = self._config.on_full == "block"
        self._closed = False
        self._rejections_log = RateLimitedLog(logger)
        self._failures_log = RateLimitedLog(logger)
        self._reset()
        _live.add(self)

    def _reset(self) -> None:
        """Fresh queue, locks, counters and no worker (at creation and in a forked child)."""
        self._queue: collections.deque[Record | FlushMarker] = collections.deque()
        self._lock = threading.Lock()
        self._space = threading.Condition(threading.Lock())
        self._blocked = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._close_result = True
        self._reset_worker()
        # Written under self._lock by submitters that drop.
        self._caller_drops: collections.Counter[str] = collections.Counter()

    # --- the caller's side ------------------------------------------------------------------

    def submit(self, record: Record) -> bool:
        """Queue ``record`` for export; never raises, never waits for the network.

        Safe from any thread or event loop: an append and a length check. Only
        with ``on_full="block"`` and a full queue does it wait (for room, not
        for the network), blocking the calling thread, event loop included.

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
            if len(queue) >= self._wake_at and not self._wake_pending:
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
        marker = FlushMarker()
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
        waiting = sum(1 for item in list(self._queue) if not isinstance(item, FlushMarker))
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
