"""The sink contract: what the background exporter hands a batch to, and what it gets back.

A sink turns a batch of frozen records into deliveries (HTTP, SQLite, memory).
It reports three outcomes:

* success: :meth:`Sink.export` returns an :class:`ExportResult`; records not
  listed as rejected count as sent;
* a permanent refusal of single records: listed in ``ExportResult.rejected``,
  the exporter logs and counts them and the rest of the batch stands;
* a whole-batch, retryable failure (429, 5xx, network): the sink raises
  :class:`TransientExportError` and the exporter retries the same batch later.
  Idempotency keys make that replay safe.

Any other exception is a bug: the exporter logs it, counts the batch as dropped
(``internal_error``) and keeps running.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from prefactor._records import Record

__all__ = ["ExportResult", "Rejection", "Sink", "Termination", "TransientExportError"]


class TransientExportError(Exception):
    """The whole batch failed for a reason worth retrying.

    Args:
        message: what happened (never containing a secret).
        retry_after: seconds the server asked us to wait, if it did.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Rejection:
    """One record the destination refused for good, with its reason."""

    record: Record
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Termination:
    """The platform asked to terminate an instance (a ``control.terminate`` answer)."""

    instance_id: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class ExportResult:
    """The outcome of one successful :meth:`Sink.export` call."""

    rejected: tuple[Rejection, ...] = ()
    terminations: tuple[Termination, ...] = ()


OK = ExportResult()
"""The result of a batch delivered in full with nothing to report."""


@runtime_checkable
class Sink(Protocol):
    """Where the exporter delivers batches. Called only from the exporter's worker loop.

    A sink must survive ``os.fork()``: a client or connection made in the parent
    is re-created lazily in the child.
    """

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Deliver ``batch`` (records of one instance, in order).

        Raises:
            TransientExportError: the batch as a whole may succeed if retried.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and files; the sink is not used afterwards."""
        ...
