"""Frozen operation records: what tracing hands to the exporter.

Tracing makes one small record per user-visible event and appends it to the
queue; the background exporter batches records and a sink turns them into
wire items. A sink never sees a live span. Each record knows its own wire form
(:meth:`to_bulk_item`, the item of ``POST /api/v1/bulk``), so no dispatcher
switches on a type tag.

Timestamps are integer nanoseconds since the epoch, taken on the caller's path
for the price of one clock read, and formatted as ISO-8601 only here, in the
background. Idempotency keys derive from the record's resource id and its
operation, so a retried batch repeats exactly the same keys.

A span payload may be a :class:`Lazy`: a frozen recipe (for ``@traced``,
the function's binder and the already-snapshotted arguments) that the
exporter resolves off the caller's path.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, ClassVar, Literal, Protocol, TypeAlias, TypeVar, cast, dataclass_transform

__all__ = [
    "PLAIN_SUCCESS",
    "CreateSpan",
    "FinishInstance",
    "FinishSpan",
    "Lazy",
    "Record",
    "RecordQuality",
    "RegisterInstance",
    "StartInstance",
    "Violation",
    "bulk_form",
    "create_key",
    "finish_item",
    "iso_from_ns",
    "items_of",
    "register_item",
    "span_create_item",
    "start_item",
    "wire_items",
]

FinishStatus: TypeAlias = Literal["complete", "failed", "cancelled"]
SpanCreateStatus: TypeAlias = Literal["active", "pending", "complete", "failed", "cancelled"]
JSONDict: TypeAlias = dict[str, Any]

PLAIN_SUCCESS: Mapping[str, Any] = MappingProxyType({"status": "success"})
"""A bulk item's output when it plainly succeeded, without ``control``: one shared object,
so that the bulk sink settles a run of them by identity."""


_C = TypeVar("_C", bound=type)


@dataclass_transform(frozen_default=True)
def record(cls: _C) -> _C:
    """Make ``cls`` a slotted dataclass that the type checker treats as frozen.

    A frozen dataclass pays ``object.__setattr__`` per field at construction
    (about 3 µs for a span record here, against 0.5 µs): too much for a
    per-call hot path. Immutability is enforced statically instead: mypy
    rejects any assignment to a record's field, and nothing in the package
    mutates one.
    """
    return cast(_C, dataclass(slots=True)(cls))


@functools.lru_cache(maxsize=1024)
def _iso_seconds(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


# The latest millisecond formatted, up to its last digit: a span's two timestamps, and
# most of a batch's, share it.
_last_milli: tuple[int, str] = (-1, "")
# "000" .. "999": the milliseconds as one table lookup, cheaper than "%03d".
_THREE_DIGITS = tuple(f"{n:03d}" for n in range(1000))
# The microseconds within a millisecond and the offset, "000+00:00" .. "999+00:00".
_MICROS_TAIL = tuple(f"{digits}+00:00" for digits in _THREE_DIGITS)


def iso_from_ns(ns: int) -> str:
    """Format epoch nanoseconds as fixed-width ISO-8601 UTC: ``2026-02-09T00:00:00.000000+00:00``.

    Everything up to the millisecond is cached (the latest one; its seconds
    in a small memo), so a call usually costs one division, one lookup and
    one concatenation: a fraction of ``datetime.isoformat()`` on the export
    path. The fixed width is the form servers parse fastest.
    """
    global _last_milli  # noqa: PLW0603 (a one-entry cache; a racing thread stores a correct one)
    milli, rest = divmod(ns, 1_000_000)
    last = _last_milli
    if last[0] != milli:
        seconds, digits = divmod(milli, 1000)
        last = _last_milli = (milli, f"{_iso_seconds(seconds)}.{_THREE_DIGITS[digits]}")
    return last[1] + _MICROS_TAIL[rest // 1000]


def create_key(span_id: str) -> str:
    """The idempotency key of a span's create: derived from its id, the same on every retry."""
    return f"{span_id}-create"


@record
class Violation:
    """One schema violation found on a span: which side, where, and why."""

    side: Literal["params", "result"]
    path: str
    reason: str

    def to_wire(self) -> JSONDict:
        return {"side": self.side, "path": self.path, "reason": self.reason}


class Lazy:
    """A payload computed in the background: ``resolve()`` returns ``(payload, violations)``.

    Whatever a subclass holds must already be safe to read from another
    thread (immutable, or snapshotted at call time).
    """

    __slots__ = ()

    def resolve(self) -> tuple[JSONDict, tuple[Violation, ...]]:
        raise NotImplementedError


Payload: TypeAlias = "Mapping[str, Any] | Lazy | None"


def _resolve(payload: Payload) -> tuple[JSONDict | None, tuple[Violation, ...]]:
    if payload is None:
        return None, ()
    if isinstance(payload, Lazy):
        return payload.resolve()
    return dict(payload), ()


# An instance operation's idempotency key, from the instance's id: the same on every retry.
_REGISTER_KEY = "{}-register".format
_START_KEY = "{}-start".format
_FINISH_KEY = "{}-finish".format


def register_item(instance_id: str, fields: JSONDict) -> JSONDict:
    """The ``agent_instances/register`` bulk item of ``instance_id``, with its other ``fields``.

    ``fields`` are :meth:`RegisterInstance.fields`. The item holds their
    values, not copies: the fields of a tracer's root calls are made once
    and shared by their items (an item, once built, is only read).
    """
    return {
        "_type": RegisterInstance.kind,
        "idempotency_key": _REGISTER_KEY(instance_id),
        "id": instance_id,
        **fields,
    }


def start_item(instance_id: str, timestamp: str) -> JSONDict:
    """The ``agent_instances/start`` bulk item, at ``timestamp`` (:func:`iso_from_ns`)."""
    return {
        "_type": StartInstance.kind,
        "idempotency_key": _START_KEY(instance_id),
        "agent_instance_id": instance_id,
        "timestamp": timestamp,
    }


def finish_item(instance_id: str, status: FinishStatus, timestamp: str) -> JSONDict:
    """The ``agent_instances/finish`` bulk item, at ``timestamp`` (:func:`iso_from_ns`).

    A root call's instance finishes when its span does: its item takes the
    span's ``finished_at`` as it is, formatted once.
    """
    return {
        "_type": FinishInstance.kind,
        "idempotency_key": _FINISH_KEY(instance_id),
        "agent_instance_id": instance_id,
        "status": status,
        "timestamp": timestamp,
    }


@record
class RegisterInstance:
    """Register an agent instance (and its agent, version and schema version)."""

    kind: ClassVar[str] = "agent_instances/register"
    instance_id: str
    agent_id: str | None
    agent_version: Mapping[str, Any]
    agent_schema_version: Mapping[str, Any] | None = None
    environment_id: str | None = None
    purpose: str | None = None
    external_identifier: str | None = None
    update_current_version: bool = True

    @property
    def idempotency_key(self) -> str:
        return _REGISTER_KEY(self.instance_id)

    def fields(self) -> JSONDict:
        """Every field of its wire item but the operation and the instance's id and key."""
        fields: JSONDict = {"agent_version": dict(self.agent_version)}
        if self.agent_schema_version is not None:
            fields["agent_schema_version"] = dict(self.agent_schema_version)
        fields["update_current_version"] = self.update_current_version
        if self.agent_id is not None:
            fields["agent_id"] = self.agent_id
        if self.environment_id is not None:
            fields["environment_id"] = self.environment_id
        if self.purpose is not None:
            fields["purpose"] = self.purpose
        if self.external_identifier is not None:
            fields["external_identifier"] = self.external_identifier
        return fields

    def to_bulk_item(self) -> JSONDict:
        return register_item(self.instance_id, self.fields())


@record
class StartInstance:
    """Move an instance from ``pending`` to ``active``."""

    kind: ClassVar[str] = "agent_instances/start"
    instance_id: str
    timestamp_ns: int

    @property
    def idempotency_key(self) -> str:
        return _START_KEY(self.instance_id)

    def to_bulk_item(self) -> JSONDict:
        return start_item(self.instance_id, iso_from_ns(self.timestamp_ns))


@record
class FinishInstance:
    """Finish an instance with a terminal status."""

    kind: ClassVar[str] = "agent_instances/finish"
    instance_id: str
    status: FinishStatus
    timestamp_ns: int

    @property
    def idempotency_key(self) -> str:
        return _FINISH_KEY(self.instance_id)

    def to_bulk_item(self) -> JSONDict:
        return finish_item(self.instance_id, self.status, iso_from_ns(self.timestamp_ns))


@record
class RecordQuality:
    """Record (or, with ``payload=None``, remove) a named quality payload."""

    kind: ClassVar[str] = "agent_instances/record_quality"
    instance_id: str
    name: str
    payload: Mapping[str, Any] | None
    key: str

    @property
    def idempotency_key(self) -> str:
        return self.key

    def to_bulk_item(self) -> JSONDict:
        return {
            "_type": self.kind,
            "idempotency_key": self.idempotency_key,
            "agent_instance_id": self.instance_id,
            "name": self.name,
            "payload": dict(self.payload) if self.payload is not None else None,
        }


@record
class CreateSpan:
    """Create a span: ``active`` (normal), ``pending`` (only cancellable) or terminal.

    A span created and finished within one batch may be sent as one create in
    its final state; :meth:`merged_with` builds that record.
    """

    kind: ClassVar[str] = "agent_spans/create"
    span_id: str
    instance_id: str
    schema_name: str
    status: SpanCreateStatus
    started_at_ns: int
    payload: Payload = None
    parent_span_id: str | None = None
    finished_at_ns: int | None = None
    result_payload: Payload = None
    violations: tuple[Violation, ...] = ()

    @property
    def idempotency_key(self) -> str:
        return create_key(self.span_id)

    def merged_with(self, finish: FinishSpan) -> CreateSpan:
        """This create, carrying ``finish``'s final state (the pair becomes one item)."""
        # Built directly: dataclasses.replace costs four times as much, per span.
        return CreateSpan(
            span_id=self.span_id,
            instance_id=self.instance_id,
            schema_name=self.schema_name,
            status=finish.status,
            started_at_ns=self.started_at_ns,
            payload=self.payload,
            parent_span_id=self.parent_span_id,
            finished_at_ns=finish.timestamp_ns,
            result_payload=finish.result_payload,
            violations=self.violations + finish.violations,
        )

    def to_bulk_item(self) -> JSONDict:
        payload, params_violations = _resolve(self.payload)
        result, result_violations = _resolve(self.result_payload)
        return span_create_item(
            self.span_id,
            self.instance_id,
            self.schema_name,
            self.status,
            self.started_at_ns,
            payload,
            self.parent_span_id,
            self.finished_at_ns,
            result,
            self.violations + params_violations + result_violations,
        )


def span_create_item(  # noqa: PLR0917 (once per span: positional is cheapest)
    span_id: str,
    instance_id: str,
    schema_name: str,
    status: str,
    started_at_ns: int,
    payload: JSONDict | None,
    parent_span_id: str | None,
    finished_at_ns: int | None,
    result: JSONDict | None,
    violations: tuple[Violation, ...],
) -> JSONDict:
    """The ``agent_spans/create`` bulk item of a span whose payloads are resolved."""
    details: JSONDict = {
        "id": span_id,
        "agent_instance_id": instance_id,
        "schema_name": schema_name,
        "status": status,
        "payload": payload if payload is not None else {},
        "parent_span_id": parent_span_id,
        "started_at": iso_from_ns(started_at_ns),
    }
    if finished_at_ns is not None:
        details["finished_at"] = iso_from_ns(finished_at_ns)
    if result is not None:
        details["result_payload"] = result
    if violations:
        details["schema_violations"] = [v.to_wire() for v in violations]
    return {
        "_type": CreateSpan.kind,
        "idempotency_key": create_key(span_id),
        "details": details,
    }


@record
class FinishSpan:
    """Finish an open span with a terminal status and its result."""

    kind: ClassVar[str] = "agent_spans/finish"
    span_id: str
    instance_id: str
    status: FinishStatus
    timestamp_ns: int
    result_payload: Payload = None
    violations: tuple[Violation, ...] = ()

    @property
    def idempotency_key(self) -> str:
        return f"{self.span_id}-finish"

    def to_bulk_item(self) -> JSONDict:
        result, result_violations = _resolve(self.result_payload)
        item: JSONDict = {
            "_type": self.kind,
            "idempotency_key": self.idempotency_key,
            "agent_span_id": self.span_id,
            "status": self.status,
            "timestamp": iso_from_ns(self.timestamp_ns),
        }
        if result is not None:
            item["result_payload"] = result
        violations = self.violations + result_violations
        if violations:
            item["schema_violations"] = [v.to_wire() for v in violations]
        return item


class Record(Protocol):
    """What the exporter needs of a record: its wire form and what to group and key it by.

    The dataclasses above are records; so is the span of a ``@traced`` call once
    it has finished (:class:`prefactor._tracing.call.CallSpan`), which is
    queued as it is rather than copied into a :class:`CreateSpan`.

    A record may stand for several wire items: one that has a
    ``to_bulk_items()`` method makes them with it (see :func:`wire_items`);
    its ``kind`` and ``idempotency_key`` then name it in logs, not each item.
    The root span of a ``@traced`` call outside any span is one such record
    when nothing else of its instance was sent before it: it carries its
    instance's registration, start and finish too
    (:class:`prefactor._tracing.call.RootCall`). It still counts as one record.
    """

    @property
    def kind(self) -> str:
        """The bulk ``_type`` of the record's wire item."""
        ...

    @property
    def instance_id(self) -> str: ...

    @property
    def idempotency_key(self) -> str: ...

    def to_bulk_item(self) -> JSONDict: ...


def bulk_form(record: Record) -> JSONDict | list[JSONDict]:
    """``record``'s wire item, or the list of its items when it carries several (in order)."""
    many = getattr(record, "to_bulk_items", None)
    return record.to_bulk_item() if many is None else list(many())


def items_of(form: JSONDict | list[JSONDict]) -> list[JSONDict]:
    """The items a :func:`bulk_form` stands for, as a list."""
    return [form] if isinstance(form, dict) else form


def wire_items(record: Record) -> list[JSONDict]:
    """The wire items ``record`` stands for, in order (see :func:`bulk_form`)."""
    return items_of(bulk_form(record))
