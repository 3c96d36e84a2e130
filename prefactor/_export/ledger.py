"""The exporter's accounting: who still owes what, and how each record ended.

A batch is handed to every sink. Each sink settles its share: sent, refused
for good, set aside, kept in the spool, or dropped. The :class:`Ledger`
counts that per sink and, once every sink has settled a batch, per record: a
record counts once at the top, by the worst that happened to it anywhere (a
drop, then a refusal, then being kept in the spool).

Everything here runs on the worker's thread; other threads only read the
counters.
"""

from __future__ import annotations

import collections
import logging
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from prefactor._export._support import RateLimitedLog
from prefactor._export.base import ExportResult, Sink
from prefactor._export.sinks.bulk import BulkSink
from prefactor._export.spool import Spool
from prefactor._export.stats import DropReason, SinkStats
from prefactor._records import Record

__all__ = ["Batch", "Ledger", "SinkState", "TerminateCallback", "sink_names"]

logger = logging.getLogger("prefactor.export")

TerminateCallback = Callable[[str, str | None], None]

# Outcomes of a record that are not drop reasons; when sinks disagree, a drop
# outranks a rejection, which outranks a record kept in the spool.
REJECTED = "rejected"
SPOOLED = "spooled"
_RANK = {SPOOLED: 1, REJECTED: 2}
_SPOOLABLE = (DropReason.RETRIES_EXHAUSTED, DropReason.SHUTDOWN)
_KEPT_ERRORS = 8


class SinkState:
    """One sink and what it did: the counters behind :class:`SinkStats`.

    ``spool`` is set for a sink whose undelivered records are kept for later;
    ``spooled_instances`` are the instances it has spooled records of, whose
    later records go to the spool too (never ahead of the earlier ones).
    """

    __slots__ = (
        "destination",
        "dropped",
        "last_error",
        "name",
        "rejected",
        "retried",
        "sent",
        "sink",
        "spool",
        "spooled",
        "spooled_instances",
    )

    def __init__(self, sink: Sink, name: str, spool: Spool | None) -> None:
        self.sink = sink
        self.name = name
        self.sent = 0
        self.rejected = 0
        self.retried = 0
        self.spooled = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.last_error: str | None = None
        destination = sink.spool_destination if isinstance(sink, BulkSink) else None
        self.destination = destination or ""
        self.spool = spool if destination else None
        self.spooled_instances: set[str] = set()

    def snapshot(self) -> SinkStats:
        return SinkStats(
            sent=self.sent,
            rejected=self.rejected,
            retried=self.retried,
            spooled=self.spooled,
            dropped=MappingProxyType(dict(self.dropped)),
            last_error=self.last_error,
        )


def sink_names(sinks: Sequence[Sink]) -> list[str]:
    """Each sink's class name, with ``#2``, ``#3``... for repeats."""
    seen: collections.Counter[str] = collections.Counter()
    names = []
    for sink in sinks:
        base = type(sink).__name__
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return names


@dataclass(slots=True, eq=False)
class Batch:
    """Records delivered together, their drain sequence numbers (rising), and who owes what.

    ``owed`` maps each sink that has not settled the batch to the records it
    still has to deliver. ``outcomes`` holds, by record identity, every record
    that was not sent everywhere, with its worst outcome. Sequence numbers are
    kept side by side rather than as pairs: a pair is one more object per
    record for the garbage collector to track.
    """

    records: list[Record]
    seqs: list[int]
    owed: dict[SinkState, Sequence[Record]]
    outcomes: dict[int, str] | None = None

    def mark(self, record: Record, outcome: str) -> None:
        """Note what happened to ``record`` at one sink, unless worse happened elsewhere."""
        outcomes = self.outcomes
        if outcomes is None:
            outcomes = self.outcomes = {}
        key = id(record)
        if _RANK.get(outcome, 3) > _RANK.get(outcomes.get(key, ""), 0):
            outcomes[key] = outcome


class Ledger:
    """Counters per sink and per record, and what the SDK's own tests need to see.

    Args:
        sinks: the sinks, in order.
        spool_path: where undelivered records of API sinks are kept, if anywhere.
        on_terminate: called when a destination asks to terminate an instance.
    """

    __slots__ = (
        "_failures_log",
        "_internal_errors",
        "_on_terminate",
        "_rejections_log",
        "drops",
        "rejected",
        "retried",
        "sent",
        "sinks",
        "spool",
        "spooled",
    )

    def __init__(
        self,
        sinks: Sequence[Sink],
        spool_path: Path | None,
        on_terminate: TerminateCallback | None,
    ) -> None:
        self.spool = Spool(spool_path) if spool_path is not None else None
        self.sinks = [
            SinkState(s, n, self.spool) for s, n in zip(sinks, sink_names(sinks), strict=True)
        ]
        self._on_terminate = on_terminate
        self.sent = 0
        self.rejected = 0
        self.retried = 0
        self.spooled = 0
        self.drops: collections.Counter[str] = collections.Counter()
        self._internal_errors: list[BaseException] = []
        self._rejections_log = RateLimitedLog(logger)
        self._failures_log = RateLimitedLog(logger)

    def settle(self, batch: Batch, state: SinkState, settled: int, result: ExportResult) -> None:
        """Count ``settled`` records of one sink: those not rejected or dropped were sent."""
        batch.owed.pop(state, None)
        rejected, dropped = result.rejected, result.dropped
        state.sent += settled - len(rejected) - len(dropped)
        for rejection in rejected:
            state.rejected += 1
            batch.mark(rejection.record, REJECTED)
            self._rejections_log.log(
                logging.WARNING,
                "prefactor: %s refused %s %s: %s (%s)",
                state.name,
                rejection.record.kind,
                rejection.record.idempotency_key,
                rejection.message,
                rejection.code,
            )
        for drop in dropped:
            state.dropped[drop.reason] += 1
            batch.mark(drop.record, drop.reason)
            self._rejections_log.log(
                logging.WARNING,
                "prefactor: %s set aside %s %s (%s): %s",
                state.name,
                drop.record.kind,
                drop.record.idempotency_key,
                drop.reason,
                drop.message,
                exc_info=drop.error,
            )
            if drop.error is not None:
                self._keep_error(drop.error)
        if self._on_terminate is not None:
            for termination in result.terminations:
                try:
                    self._on_terminate(termination.instance_id, termination.reason)
                except Exception as exc:
                    self.internal_error(exc, "the on_terminate callback")

    def lose(self, batch: Batch, state: SinkState, records: Sequence[Record], reason: str) -> None:
        """Count ``records`` as dropped by one sink, or keep them in its spool."""
        if reason in _SPOOLABLE and self.divert(batch, state, records):
            return
        batch.owed.pop(state, None)
        state.dropped[reason] += len(records)
        for record in records:
            batch.mark(record, reason)

    def divert(self, batch: Batch, state: SinkState, records: Sequence[Record]) -> bool:
        """Keep ``records`` in the sink's spool; ``False`` when it has none or writing failed."""
        if state.spool is None:
            return False
        try:
            kept, dropped = state.spool.add(state.destination, records)
        except (sqlite3.Error, OSError) as exc:
            logger.error("prefactor: could not write the spool %s: %s", state.spool.path, exc)
            return False
        batch.owed.pop(state, None)
        state.spooled += len(kept)
        for record in kept:
            state.spooled_instances.add(record.instance_id)
            batch.mark(record, SPOOLED)
        self.settle(batch, state, len(dropped), ExportResult(dropped=tuple(dropped)))
        return True

    def give_up(self, batch: Batch, attempts: int) -> None:
        """Every sink that still owes ``batch`` has failed ``attempts`` times: stop trying."""
        for state, records in list(batch.owed.items()):
            self._failures_log.log(
                logging.WARNING,
                "prefactor: gave up on %d records after %d attempts to %r (%s); last error: %s",
                len(records),
                attempts,
                state.sink,
                "kept in the spool" if state.spool is not None else "dropped",
                state.last_error,
            )
            self.lose(batch, state, records, DropReason.RETRIES_EXHAUSTED)

    def retrying(self, batch: Batch) -> None:
        """Count one more attempt of ``batch`` for every sink that still owes it."""
        self.retried += 1
        for state in batch.owed:
            state.retried += 1

    def close_out(self, batch: Batch) -> None:
        """Count each record of a batch every sink has settled, once, by its worst outcome."""
        outcomes, size = batch.outcomes, len(batch.records)
        if not outcomes:
            self.sent += size
            return
        self.sent += size - len(outcomes)
        for outcome in outcomes.values():
            if outcome == REJECTED:
                self.rejected += 1
            elif outcome == SPOOLED:
                self.spooled += 1
            else:
                self.drops[outcome] += 1

    def internal_error(self, exc: BaseException, where: str) -> None:
        """Log a bug of the SDK's and keep it for :meth:`take_internal_error`."""
        logger.error("prefactor: internal error in %s", where, exc_info=exc)
        self._keep_error(exc)

    def _keep_error(self, exc: BaseException) -> None:
        # Only the first is ever raised (in the SDK's own tests): keep a few, not all.
        if len(self._internal_errors) < _KEPT_ERRORS:
            self._internal_errors.append(exc)

    def take_internal_error(self) -> BaseException | None:
        """The first internal error caught since the last call, if any."""
        if not self._internal_errors:
            return None
        error = self._internal_errors[0]
        self._internal_errors.clear()
        return error
