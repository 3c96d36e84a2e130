"""The seams of the export pipeline: what a sink is, what it answers, and the exporter's face.

A sink turns a batch of frozen records into deliveries (HTTP, SQLite, memory,
OTLP). It reports its outcome in one of two ways:

* it returns an :class:`ExportResult`: records listed in ``rejected`` were
  refused by the destination for good, records in ``dropped`` were set aside
  by the sink itself (they could not be written, such as a value the JSON
  encoder refuses); every other record counts as sent;
* it raises :class:`TransientExportError`: the batch, or the part of it named
  in ``pending``, failed for a reason worth retrying (429, 5xx, network). The
  exporter retries exactly those records later; idempotency keys make the
  replay safe, and what the sink settled before the failure (``partial``) is
  never sent again.

Any other exception is a bug: the exporter logs it, counts the batch as
dropped (``internal_error``) and keeps running.

This module imports nothing heavier than the records, so that tracing and the
configuration can name a sink or an exporter in their types.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prefactor._errors import PrefactorError
from prefactor._export.stats import DropReason, ExportStats
from prefactor._records import Record

__all__ = [
    "OK",
    "Drop",
    "ExportResult",
    "RecordExporter",
    "Rejection",
    "Sink",
    "Termination",
    "TransientExportError",
    "unwritable",
]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record the destination refused for good, with its reason."""

    record: Record
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Drop:
    """One record the sink set aside without sending it, and why.

    ``reason`` is a :class:`~prefactor._export.stats.DropReason` value.
    ``error`` is the exception when setting it aside means a bug in the SDK
    (the SDK's own tests surface it); ``None`` when the value itself was at fault.
    """

    record: Record
    reason: str
    message: str
    error: BaseException | None = None


def unwritable(record: Record, exc: Exception) -> Drop:
    """The drop of a record whose ``to_bulk_item()`` raised: a bug, surfaced in the SDK's tests."""
    return Drop(record, DropReason.UNENCODABLE, f"{type(exc).__name__}: {exc}", error=exc)


@dataclass(frozen=True, slots=True)
class Termination:
    """The platform asked to terminate an instance (a ``control.terminate`` answer)."""

    instance_id: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The outcome of the records a :meth:`Sink.export` call settled."""

    rejected: tuple[Rejection, ...] = ()
    terminations: tuple[Termination, ...] = ()
    dropped: tuple[Drop, ...] = ()


OK = ExportResult()
"""The result of a batch delivered in full with nothing to report."""


class TransientExportError(PrefactorError):
    """The batch, or its unsettled rest, failed for a reason worth retrying.

    Args:
        message: what happened (never containing a secret).
        retry_after: seconds the server asked us to wait, if it did.
        pending: the records still to deliver, in batch order; ``None`` means
            the whole batch.
        partial: the outcome of the records settled before the failure (those
            not in ``pending``); they are counted now and never sent again.
    """

    def __init__(
        self,
        message: str,
        retry_after: float | None = None,
        *,
        pending: Sequence[Record] | None = None,
        partial: ExportResult = OK,
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.pending = pending
        self.partial = partial


@runtime_checkable
class Sink(Protocol):
    """Where the exporter delivers batches. Called only from the exporter's worker loop.

    A sink must survive ``os.fork()``: a client or connection made in the parent
    is re-created lazily in the child. Its ``repr`` names the destination (a
    URL, a file) and never a secret: the exporter's loss report quotes it.

    A sink may also have an ``async def prepare()``, which the worker starts
    in the background as it starts (before the first batch is due): the
    embedded store's sink starts its writer process there.
    """

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Deliver ``batch``: records of one instance, in order.

        A sink with a true ``mixed_batches`` attribute may get the records of
        several instances in one batch instead, each instance's together and
        in order (one request for many short instances).

        Raises:
            TransientExportError: the batch (or its ``pending`` rest) may
                succeed if retried.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and files; the sink is not used afterwards."""
        ...


@runtime_checkable
class RecordExporter(Protocol):
    """What tracing needs of an exporter: a place to put records, and a way to drain it."""

    def submit(self, record: Record) -> bool:
        """Queue ``record``; never raises, never waits for the network."""
        ...

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is settled; ``False`` on timeout."""
        ...

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop; later submits are dropped."""
        ...

    def stats(self) -> ExportStats:
        """A snapshot of the counters."""
        ...
