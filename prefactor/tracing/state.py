"""The live state of an agent instance and of an open span.

Both are owned by the code that opened them; the exporter only ever sees the
frozen records made from them.

A ``@traced`` span does not send its create record when it starts. It keeps
the record's fields in ``pending`` and sends one create, already in its final
state, when it finishes: a leaf span costs one record instead of two. A child
that starts while its parent is still pending sends the parent's create first
(:func:`emit_pending`), so the server never sees a child before its parent.
``pending`` is a list so that exactly one of the parent (finishing) and a
child (starting, maybe in another thread) takes the fields: ``list.pop`` is
atomic.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prefactor.export.records import CreateSpan, FinishSpan, FinishStatus, Violation

if TYPE_CHECKING:
    from prefactor.schemas.registry import SchemaRegistry
    from prefactor.tracing.tracer import Tracer

__all__ = ["InstanceState", "SpanState", "emit_finish", "emit_pending"]

# (started_at_ns, params payload, params violations, parent span id)
Pending = tuple[int, Any, tuple[Violation, ...], "str | None"]


class InstanceState:
    """An agent instance as this process knows it.

    ``terminated`` and ``termination_reason`` are set from the exporter's
    thread when the platform answers with ``control.terminate``; they only ever
    go from unset to set, so readers need no lock.
    """

    __slots__ = (
        "__weakref__",
        "agent_id",
        "finished",
        "id",
        "partition",
        "registry",
        "started",
        "terminated",
        "termination_reason",
        "tracer",
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

    def __repr__(self) -> str:
        return f"<InstanceState {self.id} agent={self.agent_id!r}>"


class SpanState:
    """An open span: what children need to know about their parent."""

    __slots__ = ("id", "instance", "owner", "pending", "span_type")

    def __init__(
        self,
        span_id: str,
        instance: InstanceState,
        span_type: str,
        owner: Any = None,
        pending: list[Pending] | None = None,
    ) -> None:
        self.id = span_id
        self.instance = instance
        self.span_type = span_type
        # The SpanContext driving this span, when it is an explicit one: a child may
        # have to start it, since a child must never reach the server before its parent.
        self.owner = owner
        # The create not sent yet (see the module docstring); empty once sent.
        self.pending = pending

    def __repr__(self) -> str:
        return f"<SpanState {self.id} {self.span_type}>"


def emit_pending(state: SpanState) -> None:
    """Send ``state``'s create as ``active`` now, if it is still pending."""
    pending = state.pending
    if not pending:
        return
    try:
        started, params, violations, parent_id = pending.pop()
    except IndexError:  # the span itself, or another child, just sent it
        return
    inst = state.instance
    inst.tracer.submit(
        CreateSpan(
            state.id,
            inst.id,
            state.span_type,
            "active",
            started,
            params,
            parent_id,
            violations=violations,
        )
    )


def emit_finish(
    state: SpanState,
    status: FinishStatus,
    result: Any,
    violations: tuple[Violation, ...] = (),
    now: int | None = None,
) -> None:
    """Send the span's end: one create in its final state, or a finish if it was sent."""
    inst = state.instance
    if now is None:
        now = time.time_ns()
    pending = state.pending
    try:
        started, params, params_violations, parent_id = pending.pop()  # type: ignore[union-attr]
    except (IndexError, AttributeError):
        inst.tracer.submit(FinishSpan(state.id, inst.id, status, now, result, violations))
        return
    inst.tracer.submit(
        CreateSpan(
            state.id,
            inst.id,
            state.span_type,
            status,
            started,
            params,
            parent_id,
            now,
            result,
            params_violations + violations,
        )
    )
