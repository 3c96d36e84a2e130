"""Counters of the background exporter, as one immutable snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DropReason", "ExportStats"]


class DropReason:
    """Why records were dropped (the keys of :attr:`ExportStats.dropped`)."""

    QUEUE_FULL = "queue_full"
    """The queue held ``max_queue_size`` records and ``on_full="drop"``."""
    CLOSED = "closed"
    """Submitted after :meth:`Exporter.close`."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """The batch failed transiently ``max_retries + 1`` times."""
    SHUTDOWN = "shutdown"
    """Still queued or in flight when :meth:`Exporter.close` gave up waiting."""
    INTERNAL_ERROR = "internal_error"
    """A bug in the sink or the worker; logged with its traceback."""


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class ExportStats:
    """A snapshot of the exporter's counters (records, not requests).

    Attributes:
        submitted: records accepted by ``submit()``.
        queued: records accepted and not yet finished (waiting, in backoff or in flight).
        in_flight: records in a batch being delivered right now.
        sent: records the destination accepted.
        rejected: records the destination refused for good (logged, not retried).
        retried: batch retry attempts.
        dropped: records lost, by reason (see :class:`DropReason`).
    """

    submitted: int = 0
    queued: int = 0
    in_flight: int = 0
    sent: int = 0
    rejected: int = 0
    retried: int = 0
    dropped: Mapping[str, int] = field(default_factory=_empty)

    @property
    def dropped_total(self) -> int:
        """Records dropped for any reason."""
        return sum(self.dropped.values())
