"""What every bulk-speaking sink shares: coalescing, and the stop-at-first-error protocol.

``POST /api/v1/bulk`` (and ``Store.bulk``) applies items in order and stops at
the first item that fails: that item's error is in the answer, later items
are not. A :class:`BulkSink` records the failed item as rejected and sends the
rest again, so one bad item costs one extra request, never the batch, and no
retry: retries are for transient failures only.

Each item is built once and JSON-encoded once, before anything is sent, into
one request body for the batch. Items are encoded a run of them at a time
(one encoder call per run of :data:`_ENCODE_EVERY`), and each run's dicts are
freed as soon as it is encoded: a whole batch's items alive at once would set
off the garbage collector several times per batch and age every object alive
then, records still queued included, into generations whose collections cost
far more. An item that cannot be written (its record's ``to_bulk_item()``
raises, or the JSON encoder refuses one of its values) is set aside then,
dropped as ``unencodable``, and the rest of the batch goes on. While the batch
waits for its answer, the sink holds only that body (bytes, which the garbage
collector does not track) and the items' keys; the items are decoded from the
body again only when part of the batch has to be sent on its own (after an
item was refused, or through a single endpoint).

When a transient failure stops a batch part way, the sink raises
:class:`~prefactor._export.base.TransientExportError` naming the records still
pending and the outcome of those it settled, so a retry sends only the rest.

Coalescing: a span created and finished within one batch becomes one create in
its final state, so a short span costs one item, not two.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson

from prefactor._errors import PrefactorError
from prefactor._export.base import (
    Drop,
    ExportResult,
    Rejection,
    Termination,
    TransientExportError,
    unwritable,
)
from prefactor._export.stats import DropReason
from prefactor._records import CreateSpan, FinishSpan, JSONDict, Record, bulk_form, items_of

__all__ = [
    "BulkRequestError",
    "BulkSink",
    "BulkUnsupportedError",
    "Coalesced",
    "bulk_body",
    "coalesce",
    "wire_form",
]

Output = Mapping[str, Any]

# Answers that mean "already in that terminal state": success for a replaying exporter.
_ALREADY_DONE = {
    ("agent_instances/finish", "conflict"),
    ("agent_spans/finish", "invalid_action"),
}
_ITEM_INDEX = re.compile(r"^items\[(\d+)\]")
_NEXT, _STOPPED, _AGAIN = object(), object(), object()


class Coalesced:
    """A batch as wire units: one record per item, and what each merged record stands for.

    ``units`` are records; a span created and finished within the batch is
    one merged create, and ``merged`` maps its ``id()`` to the two records it
    carries. Nothing else is allocated per record: a batch waits for its
    answer for a whole round trip, and every object it holds is one more for
    the garbage collector to walk meanwhile.
    """

    __slots__ = ("merged", "units")

    def __init__(self, units: list[Record], merged: dict[int, tuple[Record, ...]]) -> None:
        self.units = units
        self.merged = merged

    def origin(self, unit: Record) -> tuple[Record, ...]:
        """The records ``unit`` carries: itself, or the create and finish it merges."""
        found = self.merged.get(id(unit))
        return (unit,) if found is None else found


def coalesce(batch: Sequence[Record]) -> Coalesced:
    """Merge each active span's create with its finish later in the same batch.

    The merged create takes the create's place, so a child created after its
    parent's create still follows it.
    """
    units: list[Record] = []
    merged: dict[int, tuple[Record, ...]] = {}
    open_creates: dict[str, int] = {}
    for record in batch:
        if isinstance(record, CreateSpan) and record.status == "active":
            open_creates[record.span_id] = len(units)
        elif isinstance(record, FinishSpan):
            index = open_creates.pop(record.span_id, None)
            if index is not None:
                create = units[index]
                assert isinstance(create, CreateSpan)
                both = units[index] = create.merged_with(record)
                merged[id(both)] = (create, record)
                continue
        units.append(record)
    return Coalesced(units, merged)


_ENCODE_EVERY = 128
"""How many items a batch builds before it encodes them (see the module docstring).

The collector runs when 700 more containers have been allocated than freed:
a run of items (a few dicts each) stays well under that, and costs about as
little per item as one encoder call for the whole batch."""


def bulk_body(items: Sequence[JSONDict]) -> bytes:
    """The bulk request ``{"items": [...]}``: every item encoded in one call, into one buffer.

    Raises:
        orjson.JSONEncodeError: an item holds a value JSON cannot carry.
    """
    return orjson.dumps({"items": items})


def _built(unit: Record, batch: Coalesced, dropped: list[Drop]) -> JSONDict | list[JSONDict] | None:
    """The wire item of ``unit``, or its items (:func:`bulk_form`); ``None`` when that raised.

    Its records are then added to ``dropped``: a record whose wire form
    raises is a bug of the SDK's, and the drop carries the error.
    """
    try:
        return bulk_form(unit)
    except Exception as exc:
        dropped.extend(unwritable(record, exc) for record in batch.origin(unit))
        return None


def _encodable(
    unit: Record, items: Sequence[JSONDict], batch: Coalesced, dropped: list[Drop]
) -> bool:
    """Whether each of ``unit``'s ``items`` can be JSON-encoded; if not, its records are dropped."""
    try:
        for item in items:
            orjson.dumps(item)
    except orjson.JSONEncodeError as exc:
        reason, message = DropReason.UNENCODABLE, str(exc)
        dropped.extend(Drop(record, reason, message) for record in batch.origin(unit))
        return False
    return True


def wire_form(unit: Record, batch: Coalesced, dropped: list[Drop]) -> tuple[str, bytes] | None:
    """For the spool: the idempotency key and JSON encoding of ``unit``'s wire item.

    A record that carries several items (see :class:`~prefactor._records.Record`)
    is encoded as the list of them, under its first item's key.

    Returns:
        ``None`` when the item cannot be written: the records it carries are
        then added to ``dropped`` (``unencodable``; with the error when
        building the item raised, which is a bug of the SDK's).
    """
    form = _built(unit, batch, dropped)
    if form is None:
        return None
    items = items_of(form)
    if not _encodable(unit, items, batch, dropped):
        return None
    return items[0]["idempotency_key"], orjson.dumps(form)


def _encode(
    run: _Delivery,
    items: list[JSONDict],
    parts: list[bytes | memoryview],
    kept: list[JSONDict] | None,
) -> None:
    """Encode ``items``, the last of ``run``'s units and keys, in one call; add it to ``parts``.

    ``parts`` is the body to be: its opening, then the encoded runs of items
    (as views: they are copied once, when the parts are joined) and commas.
    The items encoded are added to ``kept``, for a sink that keeps them.
    The rare unit JSON cannot carry is set aside: its items leave ``items``
    (in place), and its entries ``run``'s units and keys; the rest are encoded.
    """
    try:
        _add(parts, orjson.dumps(items))
    except orjson.JSONEncodeError:
        _set_aside_unencodable(run, items)
        if items:
            _add(parts, orjson.dumps(items))
    if kept is not None:
        kept.extend(items)


def _set_aside_unencodable(run: _Delivery, items: list[JSONDict]) -> None:
    """Drop from ``items`` (the last of ``run``'s) the units JSON cannot carry, in place."""
    first = len(run.units) - len(items)
    units, keys, built = run.units[first:], run.keys[first:], items[:]
    del run.units[first:], run.keys[first:], items[:]
    start = 0
    while start < len(units):  # a unit's items are side by side
        end = start + 1
        while end < len(units) and units[end] is units[start]:
            end += 1
        if _encodable(units[start], built[start:end], run.batch, run.dropped):
            run.units.extend(units[start:end])
            run.keys.extend(keys[start:end])
            items.extend(built[start:end])
        start = end


def _add(parts: list[bytes | memoryview], encoded: bytes) -> None:
    """Add a JSON array of items to ``parts``, without its brackets (a comma before it)."""
    if len(parts) > 1:
        parts.append(b",")
    parts.append(memoryview(encoded)[1:-1])


@dataclass(slots=True)
class _Delivery:
    """One batch on its way: what is still to send and what has been learnt so far.

    ``keys`` (each item's idempotency key) and ``units`` (the unit each item
    is of: a unit that carries several items is there once for each) run
    side by side. ``body`` is the request of every item, encoded once, while
    ``whole`` (no item left before the rest was sent again). ``items`` are
    the items themselves, side by side with the keys: kept as built for a
    sink that takes them (:attr:`BulkSink.keeps_items`), else ``None`` until
    a request must carry only part of them, and then decoded from ``body``.
    Items leave them only when refused before the rest is sent
    again; everything before the current position has been settled. ``batch``
    tells which records a unit carries; ``refused`` holds those already
    refused, so that a record refused for two of its items counts once.
    """

    batch: Coalesced
    units: list[Record] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    body: bytes = b'{"items":[]}'
    whole: bool = True
    items: list[JSONDict] | None = None
    rejected: list[Rejection] = field(default_factory=list)
    refused: set[int] = field(default_factory=set)
    dropped: list[Drop] = field(default_factory=list)
    terminations: dict[str, str | None] = field(default_factory=dict)

    def decoded(self) -> list[JSONDict]:
        """The items still to send, one per unit (decoded from the body the first time)."""
        if self.items is None:
            self.items = orjson.loads(self.body)["items"]
        return self.items

    def request(self, start: int, end: int) -> bytes:
        """The body of a request carrying items ``start`` to ``end``."""
        if self.whole and start == 0 and end == len(self.units):
            return self.body  # the usual request: the whole batch, as it was encoded
        return bulk_body(self.decoded()[start:end])

    def remove(self, index: int) -> None:
        """Take the item at ``index`` out of what is still to send."""
        items = self.decoded()
        del self.units[index], self.keys[index], items[index]
        self.whole = False

    def kind(self, index: int) -> str:
        """The ``_type`` of the item at ``index`` (a record may carry items of several kinds).

        Read only on the rare paths (a refusal, single endpoints): the items are decoded then.
        """
        return str(self.decoded()[index]["_type"])

    def result(self) -> ExportResult:
        return ExportResult(
            rejected=tuple(self.rejected),
            terminations=tuple(Termination(i, r) for i, r in self.terminations.items()),
            dropped=tuple(self.dropped),
        )


class BulkRequestError(PrefactorError):
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


class BulkUnsupportedError(PrefactorError):
    """The destination has no bulk endpoint (404 or 405): use the single endpoints."""


class BulkSink(ABC):
    """A sink that sends batches as bulk requests; subclasses provide the transport.

    Subclasses implement :meth:`_bulk` (one bulk request, given its body and
    its items' keys: the ``outputs`` map) and :meth:`_single` (one item
    through its single endpoint, answered as a bulk output). Both raise
    :class:`~prefactor._export.base.TransientExportError` for retryable failures.
    """

    # Bulk items name their own instance: one request may carry many instances.
    mixed_batches: ClassVar[bool] = True

    def __init__(self) -> None:
        self._single_types: set[str] = set()
        self._bulk_supported = True
        # Whether a batch keeps its items as built while it is sent, for a transport that
        # takes them rather than their encoding (the inline store): see _bulk.
        self.keeps_items = False

    @abstractmethod
    async def _bulk(
        self, body: bytes, keys: list[str], items: list[JSONDict] | None
    ) -> Mapping[str, Output]:
        """Send one bulk request: ``body`` (:func:`bulk_body`), whose items' keys are ``keys``.

        ``items`` are the same items, when the batch kept them (``keeps_items``).

        Returns:
            its ``outputs`` (idempotency key -> output).
        """

    @abstractmethod
    async def _single(self, item: JSONDict) -> Output:
        """Send one item through its single endpoint; answer like a bulk output."""

    @property
    def spool_destination(self) -> str | None:
        """The name undelivered records are spooled under (a URL); ``None``: never spooled."""
        return None

    def _remember_single(self, kind: str) -> None:
        """From now on send items of ``kind`` through their single endpoint."""
        self._single_types.add(kind)

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Coalesce and deliver ``batch``; see the module docstring.

        Raises:
            TransientExportError: with ``pending`` (the records not settled
                yet) and ``partial`` (the outcome of those that were).
        """
        run = self._delivery(coalesce(batch))
        start = 0
        try:
            while start < len(run.units):
                start = await self._send_from(run, start)
        except TransientExportError as exc:
            origin = run.batch.origin
            unsettled = {id(record) for unit in run.units[start:] for record in origin(unit)}
            raise TransientExportError(
                str(exc),
                exc.retry_after,
                pending=[record for record in batch if id(record) in unsettled],
                partial=run.result(),
            ) from None
        return run.result()

    def _delivery(self, batch: Coalesced) -> _Delivery:
        """The delivery of ``batch``: each unit's items built, all of them encoded in one body.

        Units whose items cannot be built or encoded are set aside.
        """
        run = _Delivery(batch)
        units, keys = run.units, run.keys
        kept: list[JSONDict] | None = [] if self.keeps_items else None
        parts: list[bytes | memoryview] = [b'{"items":[']
        items: list[JSONDict] = []  # built, not encoded yet: the last of units and keys
        for unit in batch.units:
            made = _built(unit, batch, run.dropped)
            if isinstance(made, dict):  # the usual record: one item
                units.append(unit)
                keys.append(made["idempotency_key"])
                items.append(made)
            elif made is not None:
                for item in made:
                    units.append(unit)
                    keys.append(item["idempotency_key"])
                items.extend(made)
            if len(items) >= _ENCODE_EVERY:
                _encode(run, items, parts, kept)
                items = []
        if items:
            _encode(run, items, parts, kept)
        run.items = kept
        parts.append(b"]}")
        run.body = b"".join(parts)
        return run

    async def _send_from(self, run: _Delivery, start: int) -> int:
        """Send the next request (or single item) from ``start``; where the next one starts."""
        if not self._bulk_supported or (
            self._single_types and run.kind(start) in self._single_types
        ):
            output = await self._single(run.decoded()[start])
            self._settle(run, start, output, single=True)
            return start + 1
        return await self._send_run(run, start, self._request_end(run, start))

    def _request_end(self, run: _Delivery, start: int) -> int:
        """End of the next bulk request: before a single-endpoint type or a repeated key."""
        if not self._single_types:  # the usual case: the rest, unless a key repeats
            rest = run.keys[start:]
            if len(set(rest)) == len(rest):
                return len(run.keys)
        keys: set[str] = set()
        end = start
        while end < len(run.units) and run.kind(end) not in self._single_types:
            key = run.keys[end]
            if key in keys:
                break
            keys.add(key)
            end += 1
        return end

    async def _send_run(self, run: _Delivery, start: int, end: int) -> int:
        """Send ``items[start:end]`` in one request; return where the next request starts."""
        try:
            items = None if run.items is None else run.items[start:end]
            outputs = await self._bulk(run.request(start, end), run.keys[start:end], items)
        except BulkUnsupportedError:
            self._bulk_supported = False
            return start
        except BulkRequestError as exc:
            if exc.status == 413 and end - start > 1:
                # Too large: send the first half now, the rest next time round.
                return await self._send_run(run, start, start + (end - start) // 2)
            culprits = sorted(
                {
                    start + int(m.group(1))
                    for key in exc.errors
                    if (m := _ITEM_INDEX.match(key)) is not None and int(m.group(1)) < end - start
                }
            )
            if not culprits:
                for index in range(start, end):
                    self._reject(run, index, exc.code, exc.message)
                return end
            # Nothing of the request was applied: refuse the culprits, send the rest again.
            for index in reversed(culprits):
                self._reject(run, index, exc.code, exc.message)
                run.remove(index)
            return start
        # An output settled as a plain success (no control): a transport that shares one
        # object for all of those (the HTTP client does) settles the rest by identity.
        plain: object = _NEXT  # no output is this object: a missing one is never skipped
        keys = run.keys
        for index in range(start, end):
            output = outputs.get(keys[index])
            if output is plain:
                continue
            if output is None:
                if index == start:
                    raise TransientExportError("the bulk answer has no output for its first item")
                return index  # nothing failed before it, yet no answer: resend from here
            step = self._settle(run, index, output, single=False)
            if step is not _NEXT:
                return index + 1 if step is _STOPPED else index
            if output.get("control") is None:
                plain = output
        return end

    def _settle(self, run: _Delivery, index: int, output: Output, *, single: bool) -> object:
        """Account for one item's output.

        Returns:
            ``_NEXT`` (it succeeded), ``_STOPPED`` (it failed, bulk stopped
            after it) or ``_AGAIN`` (send it again, through its single endpoint).
        """
        if output.get("status") == "success":
            control = output.get("control")
            # None first: most answers carry no control, and an ABC check costs per item.
            if control is not None and isinstance(control, Mapping) and control.get("terminate"):
                reason = control.get("reason")
                instance_id = run.units[index].instance_id
                run.terminations[instance_id] = reason if isinstance(reason, str) else None
            return _NEXT
        code = str(output.get("code", "unknown"))
        kind = run.kind(index)
        if (kind, code) in _ALREADY_DONE:
            return _STOPPED
        if code == "unsupported_type" and not single:
            self._remember_single(kind)
            return _AGAIN
        self._reject(run, index, code, str(output.get("message", "")))
        return _STOPPED

    @staticmethod
    def _reject(run: _Delivery, index: int, code: str, message: str) -> None:
        unit = run.units[index]
        if id(unit) in run.refused:  # another of its items was refused first: counted then
            return
        run.refused.add(id(unit))
        origin = run.batch.origin(unit)
        run.rejected.extend(Rejection(record, code, message) for record in origin)
