"""What every bulk-speaking sink shares: coalescing, and the stop-at-first-error protocol.

``POST /api/v1/bulk`` (and ``Store.bulk``) applies items in order and stops at
the first item that fails: that item's error is in the answer, later items
are not. A :class:`BulkSink` records the failed item as rejected and sends the
rest again, so one bad item costs one extra request, never the batch.

Coalescing: a span created and finished within one batch becomes one create in
its final state, so a short span costs one item, not two.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prefactor._export.sinks.base import (
    ExportResult,
    Rejection,
    Termination,
    TransientExportError,
)
from prefactor._records import CreateSpan, FinishSpan, Record

__all__ = [
    "BulkRequestError",
    "BulkSink",
    "BulkUnsupportedError",
    "Unit",
    "coalesce",
]

Output = Mapping[str, Any]

# Answers that mean "already in that terminal state": success for a replaying exporter.
_ALREADY_DONE = {
    ("agent_instances/finish", "conflict"),
    ("agent_spans/finish", "invalid_action"),
}
_ITEM_INDEX = re.compile(r"^items\[(\d+)\]")
_NEXT, _STOPPED, _AGAIN = object(), object(), object()


@dataclass(frozen=True, slots=True)
class Unit:
    """One wire item and the records it carries (two for a coalesced span)."""

    record: Record
    origin: tuple[Record, ...]

    @property
    def kind(self) -> str:
        return self.record.kind


def coalesce(batch: Sequence[Record]) -> list[Unit]:
    """Merge each active span's create with its finish later in the same batch.

    The merged create takes the create's place, so a child created after its
    parent's create still follows it.
    """
    units: list[Unit] = []
    open_creates: dict[str, int] = {}
    for record in batch:
        if isinstance(record, CreateSpan) and record.status == "active":
            open_creates[record.span_id] = len(units)
        elif isinstance(record, FinishSpan):
            index = open_creates.pop(record.span_id, None)
            if index is not None:
                create = units[index].record
                assert isinstance(create, CreateSpan)
                units[index] = Unit(create.merged_with(record), (*units[index].origin, record))
                continue
        units.append(Unit(record, (record,)))
    return units


@dataclass(slots=True)
class _Delivery:
    """One batch on its way: its items and what has been learnt so far."""

    units: list[Unit]
    items: list[dict[str, Any]]
    rejected: list[Rejection] = field(default_factory=list)
    terminations: dict[str, str | None] = field(default_factory=dict)


class BulkRequestError(Exception):
    """The destination refused a whole bulk request for good (4xx other than 404/405).

    ``errors`` keys such as ``items[3].idempotency_key`` point at the culprit items.
    """

    def __init__(
        self, status: int, code: str, message: str, errors: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{message} (HTTP {status}, code={code})")
        self.status = status
        self.code = code
        self.message = message
        self.errors = dict(errors or {})


class BulkUnsupportedError(Exception):
    """The destination has no bulk endpoint (404 or 405): use the single endpoints."""


class BulkSink(ABC):
    """A sink that sends batches as bulk requests; subclasses provide the transport.

    Subclasses implement :meth:`_bulk` (one bulk request: the ``outputs`` map)
    and :meth:`_single` (one item through its single endpoint, answered as a
    bulk output). Both raise :class:`~prefactor._export.sinks.base.TransientExportError`
    for retryable failures.
    """

    def __init__(self) -> None:
        self._single_types: set[str] = set()
        self._bulk_supported = True

    @abstractmethod
    async def _bulk(self, items: list[dict[str, Any]]) -> Mapping[str, Output]:
        """Send one bulk request; return its ``outputs`` (idempotency key -> output)."""

    @abstractmethod
    async def _single(self, item: dict[str, Any]) -> Output:
        """Send one item through its single endpoint; answer like a bulk output."""

    def _remember_single(self, kind: str) -> None:
        """From now on send items of ``kind`` through their single endpoint."""
        self._single_types.add(kind)

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Coalesce and deliver ``batch``; see the module docstring."""
        units = coalesce(batch)
        run = _Delivery(units, [unit.record.to_bulk_item() for unit in units])
        start = 0
        while start < len(units):
            if not self._bulk_supported or units[start].kind in self._single_types:
                output = await self._single(run.items[start])
                self._settle(run, start, output, single=True)
                start += 1
                continue
            start = await self._send_run(run, start, self._request_end(run, start))
        return ExportResult(
            rejected=tuple(run.rejected),
            terminations=tuple(Termination(i, r) for i, r in run.terminations.items()),
        )

    def _request_end(self, run: _Delivery, start: int) -> int:
        """End of the next bulk request: before a single-endpoint type or a repeated key."""
        keys: set[str] = set()
        end = start
        while end < len(run.units) and run.units[end].kind not in self._single_types:
            key = run.items[end]["idempotency_key"]
            if key in keys:
                break
            keys.add(key)
            end += 1
        return end

    async def _send_run(self, run: _Delivery, start: int, end: int) -> int:
        """Send ``items[start:end]`` in one request; return where the next request starts."""
        try:
            outputs = await self._bulk(run.items[start:end])
        except BulkUnsupportedError:
            self._bulk_supported = False
            return start
        except BulkRequestError as exc:
            if exc.status == 413 and end - start > 1:
                # Too large: send the first half now, the rest next time round.
                return await self._send_run(run, start, start + (end - start) // 2)
            culprits = sorted(
                start + int(m.group(1))
                for key in exc.errors
                if (m := _ITEM_INDEX.match(key)) is not None and int(m.group(1)) < end - start
            )
            for index in culprits or range(start, end):
                self._reject(run, index, exc.code, exc.message)
            return culprits[0] + 1 if culprits else end
        for index in range(start, end):
            output = outputs.get(run.items[index]["idempotency_key"])
            if output is None:
                if index == start:
                    raise TransientExportError("the bulk answer has no output for its first item")
                return index  # nothing failed before it, yet no answer: resend from here
            step = self._settle(run, index, output, single=False)
            if step is not _NEXT:
                return index + 1 if step is _STOPPED else index
        return end

    def _settle(self, run: _Delivery, index: int, output: Output, *, single: bool) -> object:
        """Account for one item's output.

        Returns:
            ``_NEXT`` (it succeeded), ``_STOPPED`` (it failed, bulk stopped
            after it) or ``_AGAIN`` (send it again, through its single endpoint).
        """
        unit = run.units[index]
        if output.get("status") == "success":
            control = output.get("control")
            if isinstance(control, Mapping) and control.get("terminate"):
                reason = control.get("reason")
                run.terminations[unit.record.instance_id] = (
                    reason if isinstance(reason, str) else None
                )
            return _NEXT
        code = str(output.get("code", "unknown"))
        if (unit.kind, code) in _ALREADY_DONE:
            return _STOPPED
        if code == "unsupported_type" and not single:
            self._remember_single(unit.kind)
            return _AGAIN
        self._reject(run, index, code, str(output.get("message", "")))
        return _STOPPED

    @staticmethod
    def _reject(run: _Delivery, index: int, code: str, message: str) -> None:
        run.rejected.extend(Rejection(record, code, message) for record in run.units[index].origin)
