"""The live state of an agent instance and of an open span.

Both are owned by the code that opened them; the exporter only ever sees the
frozen records made from them.

A span does not send its create record when it starts. It keeps the
record's fields and sends one create, already in its final state, when it
finishes: a leaf span costs one record instead of two. A child that starts
while its parent is still pending sends the parent's create first
(:func:`emit_pending`), so the server never sees a child before its parent.

This is the begin/end protocol every span follows, ``@traced`` call or
explicit :class:`~prefactor.SpanContext` alike: refuse to open in a terminated
instance, send a pending parent's create first (:func:`emit_pending`), hold the
create's fields, finish once (:func:`emit_finish`), a failure recorded as
:func:`error_result`. A side
(params or result) checked in the caller is a finished payload; otherwise it
is a :class:`Deferred`, captured if need be and checked in the exporter's
thread.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from prefactor._ids import pfid_at
from prefactor._records import CreateSpan, FinishSpan, FinishStatus, Lazy, Violation, create_key

if TYPE_CHECKING:
    from prefactor._schemas.registry import SchemaRegistry, Side
    from prefactor._tracing.capture import Capturer
    from prefactor._tracing.tracer import Tracer

__all__ = [
    "Deferred",
    "InstanceState",
    "SpanState",
    "check_side",
    "emit_finish",
    "emit_pending",
    "error_result",
]


class InstanceState:
    """An agent instance as this process knows it.

    ``terminated`` and ``termination_reason`` are set from the exporter's
    thread when the platform answers with ``control.terminate``; they only ever
    go from unset to set, so readers need no lock.

    The instance of a ``@traced`` call outside any span is not sent when it
    is made (:meth:`~prefactor._tracing.tracer.Tracer.deferred_instance`):
    ``deferred`` is the claim ``{"register": True}`` on sending it, with
    ``version`` (its schema version) and ``opened_at`` (its start). Whoever
    pops the key first sends it: the root span, carrying it when it is the
    first thing of the instance sent (:class:`~prefactor._tracing.call.RootCall`),
    or :meth:`~prefactor._tracing.tracer.Tracer.announce`, ahead of anything
    else. ``deferred`` is ``None`` once it is sent, and for every other instance.
    """

    __slots__ = (
        "__weakref__",
        "agent_id",
        "deferred",
        "finished",
        "id",
        "opened_at",
        "partition",
        "registry",
        "started",
        "terminated",
        "termination_reason",
        "tracer",
        "version",
    )

    def __init__(
        self,
        tracer: Tracer,
        instance_id: str,
        agent_id: str,
        partition: int,
        registry: SchemaRegistry | None,
    ) -> None:
        self.tracer = tracer
        self.id = instance_id
        self.agent_id = agent_id
        self.partition = partition
        # None: the instance declared no schemas, so spans are not validated.
        self.registry = registry
        self.started = False
        self.finished = False
        self.terminated = False
        self.termination_reason: str | None = None
        self.deferred: dict[str, bool] | None = None
        self.version: Mapping[str, Any] | None = None
        self.opened_at = 0

    def claim_registration(self) -> bool:
        """Take the deferred registration to send it; ``False`` when sent or taken already."""
        claim = self.deferred
        if not (claim and claim.pop("register", False)):
            return False
        self.deferred = None
        return True

    def __repr__(self) -> str:
        return f"<InstanceState {self.id} agent={self.agent_id!r}>"


class SpanState:
    """An open span: what children need to know about their parent; finished, its own record.

    While its create is pending, the span also holds that create's fields
    (``started``, ``params``, ``violations``, ``parent``) and the ``pending``
    claim, ``{"create": True}``. Whoever pops the key first (the span
    finishing, or a child starting, maybe in another thread:
    ``dict.pop(key, default)`` is one atomic step) sends the create. A dict of
    a string and a bool is not tracked by the garbage collector, which matters
    on a path that runs once per call, and popping it raises nothing. The
    winner then drops the emptied dict (``pending`` becomes ``None``), so a
    queued span does not keep it alive: a reader sees an empty dict or ``None``,
    and either means "sent".

    A span that finishes with its create still pending (a leaf) takes its
    final ``status``, ``result`` and ``finished`` time and is queued itself,
    as one create in its final state: no record is copied out of it. Nothing
    writes to it after that; children only read its id.

    The id may be given, or left to be made from a sequence number
    (:data:`prefactor._ids.SEQUENCE`) and a clock reading ``id_ns`` when first
    read: the caller's path then takes a number and never encodes a string.
    The encoding is a pure function of the two, so threads that race to read
    the id agree. ``parent`` is the parent's id, or the parent's state itself
    (its id is read only when needed, for the same reason).
    """

    __slots__ = (
        "_id",
        "finished",
        "id_ns",
        "instance",
        "instance_id",
        "owner",
        "params",
        "parent",
        "pending",
        "result",
        "seq",
        "span_type",
        "started",
        "status",
        "violations",
    )

    kind: ClassVar[str] = "agent_spans/create"
    # The instance's id, kept beside it: the exporter groups every record by it, so a
    # plain attribute spares a property call per span there.
    instance_id: str
    # Set when the span is queued as its own create (emit_finish), not before.
    status: FinishStatus
    result: Any
    finished: int

    def __init__(  # noqa: PLR0917 (built once per call: positional is cheapest)
        self,
        span_id: str,
        instance: InstanceState,
        span_type: str,
        started: int = 0,
        params: Any = None,
        violations: tuple[Violation, ...] = (),
        parent: SpanState | str | None = None,
        pending: dict[str, bool] | None = None,
    ) -> None:
        # An id given up front; subclasses that name their spans late set _id to
        # None and seq to a number of prefactor._ids.SEQUENCE instead.
        self._id: str | None = span_id
        self.seq = 0
        self.id_ns = started
        self.instance = instance
        self.instance_id = instance.id
        self.span_type = span_type
        # The SpanContext driving this span, when it is an explicit one: a child may
        # have to start it, since a child must never reach the server before its parent.
        self.owner: Any = None
        self.started = started
        self.params = params
        self.violations = violations
        self.parent = parent
        # The claim on the create not sent yet (see above); empty once sent.
        self.pending = pending

    @property
    def id(self) -> str:
        """The span's PFID (made from its sequence number on first read)."""
        span_id = self._id
        if span_id is None:
            span_id = self._id = pfid_at(self.instance.partition, self.id_ns, self.seq)
        return span_id

    @property
    def parent_id(self) -> str | None:
        return SpanState.parent_of(self.parent)

    @staticmethod
    def parent_of(parent: SpanState | str | None) -> str | None:
        """The id a parent reference stands for."""
        return parent if parent is None or isinstance(parent, str) else parent.id

    def hold(
        self,
        started: int,
        params: Any,
        violations: tuple[Violation, ...],
        parent: SpanState | str | None,
    ) -> None:
        """Keep the create's fields and make it pending (an explicit span's start)."""
        self.started = started
        self.params = params
        self.violations = violations
        self.parent = parent
        self.pending = {"create": True}

    def create_params(self) -> Any:
        """The params payload of this span's create (a subclass may build it late)."""
        return self.params

    def carry_instance(self) -> bool:
        """Claim the instance's deferred registration, to be sent with this span's create.

        Only the root span of a ``@traced`` call does
        (:class:`~prefactor._tracing.call.RootCall`); any other span never.
        """
        return False

    def payload_of(self, result: Any) -> Any:
        """The result payload that ``result``, as given to :func:`emit_finish`, stands for.

        Here the result itself; a subclass that keeps a raw result (to capture
        and check it in the exporter's thread) wraps it in a ``Lazy``.
        """
        return result

    # --- the record (once queued by emit_finish) -------------------------------------------

    @property
    def idempotency_key(self) -> str:
        return create_key(self.id)

    def to_bulk_item(self) -> dict[str, Any]:
        return CreateSpan(
            self.id,
            self.instance.id,
            self.span_type,
            self.status,
            self.started,
            self.create_params(),
            self.parent_id,
            self.finished,
            self.payload_of(self.result),
            self.violations,
        ).to_bulk_item()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id} {self.span_type}>"


class Deferred(Lazy):
    """One side of a span, checked (and captured first, if need be) in the exporter's thread.

    ``data`` is the payload already captured; subclasses that keep something
    still to capture override :meth:`payload`. A ``None`` payload is checked
    as ``{}``.
    """

    __slots__ = ("data", "inst", "side", "span_type")

    def __init__(self, inst: InstanceState, span_type: str, side: Side, data: Any) -> None:
        self.inst = inst
        self.span_type = span_type
        self.side = side
        self.data = data

    def payload(self) -> Any:
        """The captured payload."""
        return self.data

    def resolve(self) -> tuple[Any, tuple[Violation, ...]]:
        payload = self.payload()
        return payload, check_side(self.inst, self.span_type, self.side, payload)


def check_side(
    inst: InstanceState, span_type: str, side: Side, payload: Any
) -> tuple[Violation, ...]:
    """The violations of one side's payload, checked off the caller's path (``None`` as ``{}``)."""
    return inst.tracer.check(inst, span_type, side, payload if payload is not None else {})


def error_result(capturer: Capturer, exc: BaseException) -> dict[str, Any]:
    """The result of a span that failed with ``exc``: the exception as captured.

    ``{"error": {"type": ..., "message": ...}}``, the message under the
    capturer's caps; an exception whose ``__str__`` raises is still recorded.
    """
    return {"error": capturer.capture(exc)}


def emit_pending(state: SpanState) -> None:
    """Send ``state``'s create as ``active`` now, if it is still pending.

    An explicit span that has not started yet (it is pending too) is started
    first, by its owner.
    """
    owner = state.owner
    if owner is not None:
        owner.start_for_child()
    pending = state.pending
    if not (pending and pending.pop("create", False)):
        return  # sent already, maybe by another thread
    state.pending = None  # claimed: the empty dict need not live as long as the span
    inst = state.instance
    if inst.deferred is not None:  # the instance goes first
        inst.tracer.announce(inst)
    inst.tracer.submit(
        CreateSpan(
            state.id,
            inst.id,
            state.span_type,
            "active",
            state.started,
            state.create_params(),
            state.parent_id,
            violations=state.violations,
        )
    )


def emit_finish(
    state: SpanState,
    status: FinishStatus,
    result: Any,
    violations: tuple[Violation, ...] = (),
    now: int | None = None,
) -> None:
    """Send the span's end: itself as its create in its final state, or a finish if sent."""
    inst = state.instance
    if now is None:
        now = time.time_ns()
    pending = state.pending
    if pending and pending.pop("create", False):  # this span's create is ours to send
        state.pending = None  # claimed: the empty dict need not live as long as the span
        state.status = status
        state.result = result
        if violations:
            state.violations += violations
        state.finished = now
        if inst.deferred is not None and not state.carry_instance():
            inst.tracer.announce(inst)  # the instance goes first
        inst.tracer.submit(state)
    else:
        if inst.deferred is not None:
            inst.tracer.announce(inst)
        inst.tracer.submit(
            FinishSpan(state.id, inst.id, status, now, state.payload_of(result), violations)
        )
