"""The exporter's background half: one thread with its own event loop, lanes, batches, retries.

The worker drains the exporter's queue into per-instance lanes (FIFO) and
hands a lane's records to every sink in batches of up to ``batch_size``, one
batch per lane at a time (order kept within an instance, for every sink) and
up to ``num_workers`` batches at once. When every sink takes batches that mix
instances (``mixed_batches``), a batch with room is topped up with the records
of other idle lanes, which then wait for it as for their own. A lane waiting
out a retry backoff holds no worker slot, so other instances keep flowing.
Lanes disappear once empty: nothing per span or per instance outlives what is
still queued.

With several sinks, each batch goes to all of them at once. A sink that fails
transiently keeps what it still owes for a retry of its own; the sinks that
took the batch never see it again. The lane's next batch waits until every
sink has settled this one, so no sink ever receives an instance's records out
of order.

What each sink did with each record is counted by the
:class:`~prefactor._export.ledger.Ledger`. Everything here runs on the
worker's thread except :meth:`start`, :meth:`wake`, :meth:`stop` and
:meth:`stats`, which the exporter calls from any thread; the counters are
written only by the worker.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from types import MappingProxyType

from prefactor._config import QueueConfig
from prefactor._export._support import backoff_delay
from prefactor._export.base import Sink, TransientExportError
from prefactor._export.ledger import Batch, Ledger, SinkState, TerminateCallback
from prefactor._export.spool import Spool, push
from prefactor._export.stats import DropReason, ExportStats, SinkStats
from prefactor._records import Record

__all__ = ["ExportWorker", "FlushMarker", "TerminateCallback"]

logger = logging.getLogger("prefactor.export")


class FlushMarker:
    """Queued by ``flush``: done once every record queued before it has finished."""

    __slots__ = ("done", "remaining", "seq")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.seq = 0
        self.remaining = 0


class _Lane:
    """The records of one instance, waiting in order, and their drain sequence numbers.

    A plain class: a lane is made per instance (per root call of ``@traced``),
    and a dataclass's field factories cost several times its construction.
    """

    __slots__ = (
        "attempt",
        "busy",
        "key",
        "records",
        "retry",
        "retry_at",
        "riders",
        "seqs",
        "since",
    )

    def __init__(self, key: str, since: float) -> None:
        self.key = key  # the instance's id
        # Lists, not deques: an empty list allocates nothing, a deque a block of 64 slots,
        # and batches are taken off the front as slices (see _take).
        self.records: list[Record] = []
        self.seqs: list[int] = []
        self.since = since  # when the oldest waiting record arrived (roughly)
        self.busy = False
        self.retry: Batch | None = None
        self.retry_at = 0.0
        self.attempt = 0
        # The other lanes whose records ride in this lane's batch (in flight or waiting to
        # be retried): they stay busy until it is settled, so none of them sends ahead of it.
        self.riders: tuple[_Lane, ...] = ()


class ExportWorker:
    """The background thread of one :class:`~prefactor._export.exporter.Exporter`.

    Args:
        queue: the exporter's queue; records and flush markers, drained here.
        sinks: where batches go, each one getting every batch.
        config: batching, concurrency and retry settings.
        on_terminate: called as ``on_terminate(instance_id, reason)`` when a
            destination asks to terminate an instance.
        on_room: called after records leave the queue's capacity (to wake
            callers blocked on a full queue).
        name: the thread's name.
    """

    # Slots: the exporter's submit reads a few of these on the caller's path.
    __slots__ = (
        "_batch_size",
        "_config",
        "_in_flight_batches",
        "_lanes",
        "_ledger",
        "_loop",
        "_markers",
        "_mixed",
        "_name",
        "_on_room",
        "_queue",
        "_sinks",
        "_start_lock",
        "_stopping",
        "_thread",
        "_wake",
        "closing",
        "held",
        "in_flight",
        "pushed",
        "seq",
        "started",
        "wake_pending",
    )

    def __init__(
        self,
        queue: collections.deque[Record | FlushMarker],
        sinks: Sequence[Sink],
        config: QueueConfig,
        *,
        on_terminate: TerminateCallback | None,
        on_room: Callable[[], None],
        name: str,
    ) -> None:
        self._queue = queue
        self._ledger = Ledger(sinks, config.spool_path, on_terminate)
        self._sinks = self._ledger.sinks
        self._config = config
        self._batch_size = config.batch_size
        self._on_room = on_room
        self._name = name
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._lanes: dict[str, _Lane] = {}
        self._markers: list[FlushMarker] = []
        self._in_flight_batches = 0
        # Whether a batch may hold several instances' records: only if every sink takes that.
        self._mixed = all(getattr(state.sink, "mixed_batches", False) for state in self._sinks)
        # Read by the exporter's submit on the caller's path: plain attributes.
        self.started = False
        self.wake_pending = False
        self.closing = False  # set by close(): send partial batches at once
        self.held = 0  # drained from the queue and not yet finished
        self.seq = 0  # records drained so far
        self.in_flight = 0
        self.pushed = threading.Event()  # set while no push of the spool is running
        self.pushed.set()

    # --- control, from any thread -------------------------------------------------------------

    def start(self) -> None:
        """Start the thread once; at interpreter shutdown it may not start (then logged)."""
        with self._start_lock:
            if self.started:
                return
            if any(state.spool is not None for state in self._sinks):
                self.pushed.clear()  # until the worker has looked at the spool
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run, args=(loop,), name=self._name, daemon=True)
            self._loop = loop
            try:
                thread.start()
            except RuntimeError:  # at interpreter shutdown: records stay queued, flush says so
                logger.warning("prefactor: could not start the export worker", exc_info=True)
                self._loop = None
                loop.close()
                self.pushed.set()
                return
            self._thread = thread
            self.started = True

    def wake(self) -> None:
        """Make the worker look at the queue now."""
        loop = self._loop
        if loop is None:
            return
        self.wake_pending = True
        # A closed loop means the worker is gone: nothing left to wake.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._set_wake)

    def stop(self) -> None:
        """Cancel what is in flight, count what is left as ``shutdown``, close the sinks."""
        self._stopping = True
        self.wake()

    def join(self, timeout: float) -> None:
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def is_current(self) -> bool:
        """Whether the calling thread is the worker's own."""
        return self._thread is not None and threading.current_thread() is self._thread

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The worker's event loop (kept referenced after a fork: it never ran here)."""
        return self._loop

    def take_internal_error(self) -> BaseException | None:
        """The first internal error caught since the last call, if any."""
        return self._ledger.take_internal_error()

    def stats(self, waiting: int, caller_drops: collections.Counter[str]) -> ExportStats:
        """The counters, with ``waiting`` records still in the queue and the caller's drops."""
        ledger = self._ledger
        dropped = caller_drops + collections.Counter(dict(ledger.drops))
        return ExportStats(
            submitted=self.seq + waiting,
            queued=waiting + self.held,
            in_flight=self.in_flight,
            sent=ledger.sent,
            rejected=ledger.rejected,
            retried=ledger.retried,
            spooled=ledger.spooled,
            dropped=MappingProxyType(dict(dropped)),
            sinks=MappingProxyType({s.name: s.snapshot() for s in self._sinks}),
        )

    @property
    def spool(self) -> Spool | None:
        """Where undelivered records are kept, if anywhere."""
        return self._ledger.spool

    def has_spooled(self) -> bool:
        """Whether a spooled sink's destination has items waiting from an earlier run."""
        return any(s.spool is not None and s.spool.pending(s.destination) for s in self._sinks)

    def sinks(self) -> list[tuple[Sink, SinkStats]]:
        """Each sink with its counters, in order."""
        return [(s.sink, s.snapshot()) for s in self._sinks]

    # --- the worker's thread ------------------------------------------------------------------

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
        self._push_spooled(tasks)
        self._prepare_sinks(tasks)
        while not self._stopping:
            self.wake_pending = False
            self._wake.clear()
            deadline: float | None = None
            try:
                self._drain()
                deadline = self._dispatch(tasks)
            except Exception as exc:
                self._ledger.internal_error(exc, "the export worker loop")
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
            base = self.held
            self.held = base + n
            seq = self.seq
            taken = 0
            for _ in range(n):
                item = popleft()
                if isinstance(item, FlushMarker):
                    self.held -= 1
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
                        found = lanes[key] = _Lane(key, now)
                    lane, last_key, last_lane = found, key, found
                if not lane.records:
                    lane.since = now
                lane.records.append(item)
                lane.seqs.append(seq)
            self.seq = seq

    def _dispatch(self, tasks: set[asyncio.Task[None]]) -> float | None:
        """Start batches for ready lanes; return when the next waiting lane becomes ready."""
        if self._in_flight_batches >= self._config.num_workers:
            # Nothing can start: the batch that finishes first wakes the worker, which comes
            # back here. Not scanning the lanes meanwhile matters when thousands wait (a
            # root call of @traced is a lane of its own).
            return None
        now = time.monotonic()
        urgent = bool(self._markers) or self.closing
        interval, batch_size = self._config.flush_interval, self._batch_size
        next_due: float | None = None
        # Records a mixed batch could take: a batch's worth of them, however many
        # instances they belong to, is ready at once (like one lane's full batch).
        pooled = self._pooled(batch_size) if self._mixed else 0
        # The lanes are read in place (thousands may wait: a copy per pass would cost more than
        # the pass) and changed after the loop: empty ones dropped, started ones moved last.
        empty: list[str] = []
        started: list[_Lane] = []
        for key, lane in self._lanes.items():
            if lane.busy:
                continue
            if lane.retry is not None:
                if lane.retry_at > now:
                    next_due = lane.retry_at if next_due is None else min(next_due, lane.retry_at)
                    continue
            elif not lane.records:
                empty.append(key)
                continue
            elif not (
                len(lane.records) >= batch_size
                or pooled >= batch_size
                or urgent
                or now - lane.since >= interval
            ):
                due = lane.since + interval
                next_due = due if next_due is None else min(next_due, due)
                continue
            if self._in_flight_batches >= self._config.num_workers:
                break  # a finishing batch wakes the worker, which comes back here
            if lane.retry is not None:
                batch, lane.retry = lane.retry, None
            else:
                batch = self._batch_of(lane)
                pooled -= len(batch.records)
            started.append(lane)
            lane.busy = True
            self._in_flight_batches += 1
            self.in_flight += len(batch.records)
            task = asyncio.get_running_loop().create_task(self._deliver(lane, batch))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        lanes = self._lanes
        for key in empty:
            del lanes[key]
        for lane in started:  # to the end, so that busy instances take turns
            del lanes[lane.key]
            lanes[lane.key] = lane
        return next_due

    def _batch_of(self, lane: _Lane) -> Batch:
        """The lane's next batch, topped up with other idle lanes' records when sinks mix them.

        One request (one store transaction) then carries many short instances
        instead of one each: a lane of a ``@traced`` root call holds one
        record (its four items). Each lane's records stay in order and together.
        """
        room = self._batch_size
        taken: list[Record] = []
        seqs: list[int] = []
        _take(lane, room, taken, seqs)
        riders: list[_Lane] = []
        # A spooled instance's records go to the spool: they never take others with them.
        spooling = self._spooling()
        if (
            self._mixed
            and len(taken) < room
            and not (spooling and self._spooled(taken[0].instance_id))
        ):
            for key, other in self._lanes.items():
                if other.busy or other.retry is not None or not other.records or other is lane:
                    continue
                if spooling and self._spooled(key):
                    continue
                _take(other, room - len(taken), taken, seqs)
                other.busy = True
                riders.append(other)
                if len(taken) >= room:
                    break
            if riders:
                seqs.sort()  # the batch's sequence numbers rise (see _finish)
        lane.riders = tuple(riders)
        owed: dict[SinkState, Sequence[Record]] = dict.fromkeys(self._sinks, taken)
        return Batch(taken, seqs, owed)

    def _pooled(self, enough: int) -> int:
        """How many records wait in lanes free to send (not busy, not waiting for a retry).

        Counting stops at ``enough``: a root call's lane holds one record, and
        thousands of lanes may wait; a batch's worth is all :meth:`_dispatch` asks.
        """
        pooled = 0
        for lane in self._lanes.values():
            if not lane.busy and lane.retry is None:
                pooled += len(lane.records)
                if pooled >= enough:
                    break
        return pooled

    def _spooled(self, key: str) -> bool:
        """Whether a sink spools the instance ``key``'s records (it did some already)."""
        return any(key in state.spooled_instances for state in self._sinks)

    def _spooling(self) -> bool:
        """Whether a sink spools any instance's records."""
        return any(state.spooled_instances for state in self._sinks)

    def _release_riders(self, lane: _Lane) -> None:
        """Free the lanes that rode in ``lane``'s settled batch (dropping those left empty)."""
        lanes = self._lanes
        for rider in lane.riders:  # _forget_if_idle's test, inline: once per root call
            rider.busy = False
            if not rider.records and rider.retry is None and lanes.get(rider.key) is rider:
                del lanes[rider.key]
        lane.riders = ()

    def _forget_if_idle(self, lane: _Lane) -> None:
        """Drop a lane with nothing waiting and no retry: its instance may make a new one."""
        if not lane.records and lane.retry is None and self._lanes.get(lane.key) is lane:
            del self._lanes[lane.key]

    async def _deliver(self, lane: _Lane, batch: Batch) -> None:
        finished = True
        try:
            if self._spooling():
                keys = {lane.key, *(rider.key for rider in lane.riders)}
                for state, records in list(batch.owed.items()):
                    if not state.spooled_instances.isdisjoint(keys):
                        self._ledger.divert(batch, state, records)  # behind its earlier records
            owed = list(batch.owed.items())
            if len(owed) == 1:
                errors = [await self._deliver_to(batch, *owed[0])]
            else:
                errors = await asyncio.gather(*(self._deliver_to(batch, s, r) for s, r in owed))
            failures = [error for error in errors if error is not None]
            if failures:
                finished = self._retry_or_drop(lane, batch, failures)
            else:
                lane.attempt = 0
        except asyncio.CancelledError:
            for state, records in batch.owed.items():
                self._ledger.lose(batch, state, records, DropReason.SHUTDOWN)
            raise
        finally:
            lane.busy = False
            self._in_flight_batches -= 1
            self.in_flight -= len(batch.records)
            if finished:
                self._finish(batch)
                self._release_riders(lane)
            self._forget_if_idle(lane)
            if self._wake is not None:
                self._wake.set()

    async def _deliver_to(
        self, batch: Batch, state: SinkState, records: Sequence[Record]
    ) -> TransientExportError | None:
        """Hand ``records`` to one sink and count the answer; the error if it still owes some."""
        try:
            result = await state.sink.export(records)
            self._ledger.settle(batch, state, len(records), result)
        except TransientExportError as exc:
            pending = records if exc.pending is None else exc.pending
            self._ledger.settle(batch, state, len(records) - len(pending), exc.partial)
            state.last_error = str(exc)
            if not pending:
                return None
            batch.owed[state] = pending
            return exc
        except Exception as exc:
            self._ledger.internal_error(exc, f"the sink {state.name}")
            self._ledger.lose(batch, state, records, DropReason.INTERNAL_ERROR)
        return None

    def _prepare_sinks(self, tasks: set[asyncio.Task[None]]) -> None:
        """Let each sink with a ``prepare()`` coroutine get ready in the background (optional)."""
        loop = asyncio.get_running_loop()
        for state in self._sinks:
            prepare = getattr(state.sink, "prepare", None)
            if prepare is not None:
                task = loop.create_task(self._prepare(state.name, prepare))
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    async def _prepare(self, name: str, prepare: Callable[[], Awaitable[object]]) -> None:
        try:
            await prepare()
        except Exception as exc:
            self._ledger.internal_error(exc, f"preparing the sink {name}")

    def _push_spooled(self, tasks: set[asyncio.Task[None]]) -> None:
        """Send what earlier runs spooled for these sinks, in the background."""
        loop = asyncio.get_running_loop()
        pushes = [
            loop.create_task(self._push(state, state.spool, state.spool.last_row()))
            for state in self._sinks
            if state.spool is not None and state.spool.pending(state.destination)
        ]  # only what is there now: what this run spools waits for its successor
        if not pushes:
            self.pushed.set()
            return
        running = len(pushes)

        def done(task: asyncio.Task[None]) -> None:
            nonlocal running
            tasks.discard(task)
            running -= 1
            if not running:
                self.pushed.set()

        for task in pushes:
            tasks.add(task)
            task.add_done_callback(done)

    async def _push(self, state: SinkState, spool: Spool, upto: int) -> None:
        try:
            result = await push(spool, state.sink, state.destination, upto=upto)
        except Exception as exc:
            self._ledger.internal_error(exc, f"pushing the spool {spool.path}")
            return
        logger.log(
            logging.WARNING if result.error else logging.INFO,
            "prefactor: sent %d spooled records to %r (%d refused); %d wait in %s%s",
            result.sent,
            state.sink,
            result.rejected,
            result.left,
            spool.path,
            f"; last error: {result.error}" if result.error else "",
        )

    def _retry_or_drop(
        self, lane: _Lane, batch: Batch, failures: list[TransientExportError]
    ) -> bool:
        """Keep what the failing sinks owe for another attempt; ``True`` when dropped instead."""
        config = self._config
        if lane.attempt >= config.max_retries:
            lane.attempt = 0
            self._ledger.give_up(batch, config.max_retries + 1)
            return True
        hints = [exc.retry_after for exc in failures if exc.retry_after is not None]
        delay = backoff_delay(
            lane.attempt, config.retry_delay_base, config.retry_delay_max, max(hints, default=None)
        )
        lane.attempt += 1
        self._ledger.retrying(batch)
        lane.retry = batch
        lane.retry_at = time.monotonic() + delay
        logger.debug(
            "prefactor: batch failed (%s); retry %d in %.2fs", failures[0], lane.attempt, delay
        )
        return False

    def _finish(self, batch: Batch) -> None:
        """Account for a batch every sink has settled; release its room and its flushes."""
        self._ledger.close_out(batch)
        seqs = batch.seqs
        self.held -= len(seqs)
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
        self._on_room()

    async def _shutdown(self, tasks: set[asyncio.Task[None]]) -> None:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._drain()
        for lane in self._lanes.values():
            if lane.retry is not None:
                for state, records in list(lane.retry.owed.items()):
                    self._ledger.lose(lane.retry, state, records, DropReason.SHUTDOWN)
                self._finish(lane.retry)
            if lane.records:  # never handed to a sink: each sink loses (or spools) them
                records = lane.records
                batch = Batch(records, lane.seqs, dict.fromkeys(self._sinks, records))
                for state in self._sinks:
                    self._ledger.lose(batch, state, records, DropReason.SHUTDOWN)
                self._finish(batch)
        self._lanes.clear()
        self.held = 0
        for marker in self._markers:
            marker.done.set()
        self._markers.clear()
        for state in self._sinks:
            try:
                await state.sink.aclose()
            except Exception as exc:
                self._ledger.internal_error(exc, f"closing the sink {state.name}")
        if self._ledger.spool is not None:
            self._ledger.spool.close()


def _take(lane: _Lane, count: int, records: list[Record], seqs: list[int]) -> None:
    """Move up to ``count`` of the lane's oldest records (and their numbers) to the lists."""
    if count >= len(lane.records):  # the whole lane (a root call's one record, say)
        records.extend(lane.records)
        seqs.extend(lane.seqs)
        lane.records.clear()
        lane.seqs.clear()
        return
    records.extend(lane.records[:count])
    seqs.extend(lane.seqs[:count])
    del lane.records[:count], lane.seqs[:count]
