"""The live state of an agent instance and of an open span.

Both are owned by the code that opened them; the exporter only ever sees the
frozen records made from them. ``SpanState`` is immutable once made, so it can
sit in a ``ContextVar`` and be read from any task or thread.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor.schemas.registry import SchemaRegistry
    from prefactor.tracing.tracer import Tracer

__all__ = ["InstanceState", "SpanState"]


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

    __slots__ = ("id", "instance", "owner", "span_type")

    def __init__(
        self, span_id: str, instance: InstanceState, span_type: str, owner: Any = None
    ) -> None:
        self.id = span_id
        self.instance = instance
        self.span_type = span_type
        # The SpanContext driving this span, when it is an explicit one: a child may
        # have to start it, since a child must never reach the server before its parent.
        self.owner = owner

    def __repr__(self) -> str:
        return f"<SpanState {self.id} {self.span_type}>"
