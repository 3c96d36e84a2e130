"""``AgentInstanceHandle`` and ``AgentInstanceManager``: one agent instance of a core client.

Both keep prefactor-core's names and signatures; every call only queues a
record with the client's tracer.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prefactor._records import FinishStatus
from prefactor._tracing.span_context import SpanContext, to_ns
from prefactor._tracing.state import InstanceState

if TYPE_CHECKING:
    from prefactor._client import PrefactorCoreClient

__all__ = ["AgentInstanceHandle", "AgentInstanceManager"]


class AgentInstanceHandle:
    """One agent instance: start it, open spans in it, finish it.

    ``terminated`` turns true (and ``termination_reason`` is set) when the
    platform terminates the instance; from then on starting a span raises
    :class:`PrefactorTerminatedError`.

    Args:
        instance_id: the instance (its id, as in prefactor-core; an id this
            client did not create refers to an instance it does not validate).
        client: the initialized client it belongs to.
    """

    def __init__(self, instance_id: str | InstanceState, client: PrefactorCoreClient) -> None:
        self._state = (
            instance_id
            if isinstance(instance_id, InstanceState)
            else client.tracer.instance(instance_id)
        )
        self._client = client

    @property
    def id(self) -> str:
        """The instance's id (a PFID made on the client)."""
        return self._state.id

    @property
    def terminated(self) -> bool:
        """Whether the platform terminated this instance."""
        return self._state.terminated

    @property
    def termination_reason(self) -> str | None:
        """The reason the platform gave for terminating, if it did."""
        return self._state.termination_reason

    def __repr__(self) -> str:
        return f"<AgentInstanceHandle {self.id}>"

    async def start(self, timestamp: datetime | None = None) -> None:
        """Mark the instance ``active``; a second call is ignored."""
        self._state.tracer.start_instance(self._state, to_ns(timestamp))

    async def finish(
        self, status: FinishStatus = "complete", timestamp: datetime | None = None
    ) -> None:
        """Finish the instance with ``status``; a second call is ignored."""
        self._state.tracer.finish_instance(self._state, status, to_ns(timestamp))

    async def record_quality(self, name: str, payload: Mapping[str, Any] | None = None) -> None:
        """Record the quality payload ``name`` (``None`` removes it)."""
        self._state.tracer.record_quality(self._state, name, payload)

    async def create_span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Start a span without a context manager; finish it with :meth:`finish_span`."""
        return self._client._create_span(
            self._state, schema_name, parent_span_id, payload, started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Finish a span made by :meth:`create_span` ``complete``."""
        self._client._finish_span(span_id, result_payload, timestamp)

    def span(
        self,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> SpanContext:
        """An ``async with`` span in this instance (see :class:`SpanContext`).

        Without ``parent_span_id``, the span open in this context (if it is
        of this instance) becomes the parent when the block is entered.
        """
        return SpanContext(self._state, schema_name, parent_span_id=parent_span_id, payload=payload)


class AgentInstanceManager:
    """prefactor-core's ``client.instance_manager``: instance calls by instance id.

    The ``*_with_idempotency_key`` methods accept a key and do not need it:
    every record here carries a key derived from its own id, so a retried item
    is never applied twice.
    """

    def __init__(self, client: PrefactorCoreClient) -> None:
        self._client = client

    async def register(  # noqa: PLR0917 (prefactor-core's signature)
        self,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None,
        agent_id: str | None = None,
        instance_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        external_identifier: str | None = None,
    ) -> str:
        """Queue a new instance's registration; its id at once."""
        handle = await self._client.create_agent_instance(
            agent_version,
            agent_schema_version,
            agent_id=agent_id,
            instance_id=instance_id,
            environment_id=environment_id,
            purpose=purpose,
            external_identifier=external_identifier,
        )
        return handle.id

    async def start(self, instance_id: str, timestamp: datetime | None = None) -> None:
        """Queue the instance's start."""
        await AgentInstanceHandle(instance_id, self._client).start(timestamp)

    async def start_with_idempotency_key(
        self, instance_id: str, idempotency_key: str, timestamp: datetime | None = None
    ) -> None:
        """Queue the instance's start (the key is not needed; see the class)."""
        await self.start(instance_id, timestamp)

    async def finish(
        self,
        instance_id: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the instance's finish with ``status``."""
        await AgentInstanceHandle(instance_id, self._client).finish(status, timestamp)

    async def finish_with_idempotency_key(
        self,
        instance_id: str,
        idempotency_key: str,
        status: FinishStatus = "complete",
        timestamp: datetime | None = None,
    ) -> None:
        """Queue the instance's finish (the key is not needed; see the class)."""
        await self.finish(instance_id, status, timestamp)

    async def record_quality(
        self, instance_id: str, name: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Queue a quality payload for the instance (``None`` removes it)."""
        await self._client.record_quality(instance_id, name, payload)
