"""A sink that keeps everything in memory: the backing of tests and the pytest plugin."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from prefactor._export.base import OK, Drop, ExportResult, unwritable
from prefactor._records import Record, wire_items

__all__ = ["MemorySink"]


class MemorySink:
    """Keeps every exported record and its wire items (the ``POST /api/v1/bulk`` items).

    Lazy payloads are resolved on export, as a real sink would, so
    ``items`` shows exactly what would have been sent. The accessors copy under
    a lock and may be read from any thread while the exporter runs.
    """

    # Keeps records as they come: a batch may hold several instances' records.
    mixed_batches: ClassVar[bool] = True

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[Record] = []
        self._items: list[dict[str, Any]] = []
        self._batches = 0
        self._closed = False

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Resolve each record's wire items and keep them; set aside a record that has none."""
        records: list[Record] = []
        items: list[dict[str, Any]] = []
        dropped: list[Drop] = []
        for record in batch:
            try:
                items.extend(wire_items(record))
            except Exception as exc:
                dropped.append(unwritable(record, exc))
                continue
            records.append(record)
        with self._lock:
            self._records.extend(records)
            self._items.extend(items)
            self._batches += 1
        return ExportResult(dropped=tuple(dropped)) if dropped else OK

    async def aclose(self) -> None:
        """Mark the sink closed; what it holds stays readable."""
        self._closed = True

    @property
    def records(self) -> list[Record]:
        """Every record exported so far, in delivery order (a copy)."""
        with self._lock:
            return list(self._records)

    @property
    def items(self) -> list[dict[str, Any]]:
        """The wire items of every record exported so far, in order (a copy).

        One per record, except that a record carrying several items (the root
        span of a ``@traced`` call, with its instance's) gives each of them.
        The list is a copy; the items are not, and are to be read only: the
        registrations of root calls share their agent version and schema
        version with the tracer, which sends them with every such call.
        """
        with self._lock:
            return list(self._items)

    @property
    def batch_count(self) -> int:
        """How many batches were exported."""
        with self._lock:
            return self._batches

    @property
    def closed(self) -> bool:
        """Whether the exporter closed this sink."""
        return self._closed

    def clear(self) -> None:
        """Forget everything exported so far."""
        with self._lock:
            self._records.clear()
            self._items.clear()
            self._batches = 0

    def __repr__(self) -> str:
        return f"MemorySink(records={len(self._records)})"
