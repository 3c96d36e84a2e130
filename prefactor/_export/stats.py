"""Counters of the background exporter, as one immutable snapshot."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = ["DropReason", "ExportStats", "SinkStats"]


class DropReason:
    """Why records were dropped (the keys of :attr:`ExportStats.dropped`)."""

    QUEUE_FULL = "queue_full"
    """The queue held ``max_queue_size`` records: ``on_full="drop"``, or
    ``on_full="block"`` and no room came within ``block_timeout``."""
    CLOSED = "closed"
    """Submitted after :meth:`Exporter.close`."""
    RETRIES_EXHAUSTED = "retries_exhausted"
    """The batch failed transiently ``max_retries + 1`` times."""
    SHUTDOWN = "shutdown"
    """Still queued or in flight when :meth:`Exporter.close` gave up waiting."""
    UNENCODABLE = "unencodable"
    """The record could not be turned into its wire form: a value the JSON
    encoder cannot write, or its ``to_bulk_item()`` raised. Only that record
    is set aside; the rest of its batch is sent."""
    INTERNAL_ERROR = "internal_error"
    """A bug in the sink or the worker; logged with its traceback."""


def _empty() -> Mapping[str, int]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class SinkStats:
    """What one sink did with the batches it was handed (records, not requests).

    Attributes:
        sent: records this sink delivered.
        rejected: records its destination refused for good.
        retried: retry attempts of batches for this sink.
        spooled: records it could not deliver, kept in the spool for later.
        dropped: records this sink lost, by reason (see :class:`DropReason`).
        last_error: the last transient failure it reported (never a secret), if any.
    """

    sent: int = 0
    rejected: int = 0
    retried: int = 0
    spooled: int = 0
    dropped: Mapping[str, int] = field(default_factory=_empty)
    last_error: str | None = None

    @property
    def dropped_total(self) -> int:
        """Records this sink dropped for any reason."""
        return sum(self.dropped.values())


@dataclass(frozen=True, slots=True)
class ExportStats:
    """A snapshot of the exporter's counters (records, not requests).

    Every record submitted ends up counted once in ``sent``, ``rejected``,
    ``spooled`` or ``dropped`` (``queued`` until then). With several sinks, a
    record counts as sent when every sink delivered it, as dropped when one
    lost it, else as rejected when one refused it, else as spooled when one
    kept it for later; ``sinks`` says which.

    Attributes:
        submitted: records accepted by ``submit()``.
        queued: records accepted and not yet finished (waiting, in backoff or in flight).
        in_flight: records in a batch being delivered right now.
        sent: records the destination (every destination) accepted.
        rejected: records a destination refused for good (logged, not retried).
        retried: batch retry attempts.
        spooled: records not delivered yet, kept in the spool
            (``QueueConfig.spool_path``) for the next start or ``prefactor push``.
        dropped: records lost, by reason (see :class:`DropReason`).
        sinks: per sink, in the order given, keyed by its class name (``#2``,
            ``#3``... for repeats).
    """

    submitted: int = 0
    queued: int = 0
    in_flight: int = 0
    sent: int = 0
    rejected: int = 0
    retried: int = 0
    spooled: int = 0
    dropped: Mapping[str, int] = field(default_factory=_empty)
    sinks: Mapping[str, SinkStats] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def dropped_total(self) -> int:
        """Records dropped for any reason."""
        return sum(self.dropped.values())
