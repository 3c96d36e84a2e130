"""``PrefactorCoreClient`` and ``AgentInstanceHandle``: the prefactor-core API, non-blocking.

The names and signatures are those of the earlier ``prefactor-core`` package,
so its users switch by changing an import. What changed underneath: no call
waits for the network (IDs are made here, every call only queues a record),
nothing about a span is kept after it is sent, ``flush()`` exists, order is
kept per instance, and a rejected item is logged and counted instead of
disabling the client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefactor._config import PrefactorCoreConfig
from prefactor._errors import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    SpanNotFoundError,
)
from prefactor._records import FinishStatus
from prefactor._runtime import build_tracer
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.span_context import SpanContext, to_ns
from prefactor._tracing.state import InstanceState
from prefactor._tracing.tracer import Tracer

__all__ = ["AgentInstanceHandle", "PrefactorCoreClient"]


class AgentInstanceHandle:
    """One agent instance: start it, open spans in it, finish it.

    ``terminated`` turns true (and ``termination_reason`` is set) when the
    platform terminates the instance; from then on starting a span raises
    :class:`PrefactorTerminatedError`.
    """

    def __init__(self, state: InstanceState, client: PrefactorCoreClient) -> None:
        self._state = state
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


class PrefactorCoreClient:
    """The explicit async API: instances, spans, quality, all queued in the background.

    Use as ``async with PrefactorCoreClient(config) as client`` or call
    :meth:`initialize` and :meth:`close`. ``initialize`` does not touch the
    network; a bad token shows in the logs and in :meth:`stats`.

    Args:
        config: where to send, how to queue, which schemas.
        queue: accepted for compatibility with prefactor-core and ignored; the
            exporter's bounded queue is configured through ``config.queue_config``.
        sdk_header_entry: an integration's ``name@version``, sent first in the
            ``X-Prefactor-SDK`` header.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig | None = None,
        queue: Any = None,
        sdk_header_entry: str | None = None,
    ) -> None:
        self._config = config if config is not None else PrefactorCoreConfig()
        self._sdk_header_entry = sdk_header_entry
        self._tracer: Tracer | None = None
        self._closed = False
        self._open_spans: dict[str, SpanContext] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> PrefactorCoreClient:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def initialize(self) -> None:
        """Build the exporter and its sink; never waits for the network.

        Raises:
            ClientAlreadyInitializedError: called twice.
        """
        if self._tracer is not None:
            raise ClientAlreadyInitializedError("PrefactorCoreClient is already initialized")
        self._tracer = build_tracer(self._config, sdk_header_entry=self._sdk_header_entry)
        self._closed = False

    async def close(self, timeout: float | None = None) -> None:
        """Flush (bounded by ``shutdown_timeout``) and stop; safe to call twice.

        The client can be initialized again afterwards.
        """
        tracer, self._tracer = self._tracer, None
        if tracer is not None:
            await asyncio.to_thread(tracer.close, timeout)

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far is sent; ``False`` if ``timeout`` passed first."""
        return await asyncio.to_thread(self.tracer.flush, timeout)

    def stats(self) -> dict[str, Any]:
        """Counters: queued, sent, retried, dropped by reason, rejected, schema violations."""
        return self.tracer.stats()

    @property
    def tracer(self) -> Tracer:
        """The synchronous core behind this client.

        Raises:
            ClientNotInitializedError: before ``initialize()`` or after ``close()``.
        """
        if self._tracer is None:
            raise ClientNotInitializedError("call initialize() (or use 'async with') first")
        return self._tracer

    @property
    def schema_registry(self) -> SchemaRegistry:
        """The registry new instances take their schemas from."""
        return self.tracer.registry

    # --- instances ------------------------------------------------------------------------

    async def create_agent_instance(  # noqa: PLR0917 (prefactor-core's signature)
        self,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None = None,
        agent_id: str | None = None,
        instance_id: str | None = None,
        external_schema_version_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        external_identifier: str | None = None,
    ) -> AgentInstanceHandle:
        """Make an agent instance (``pending``) and queue its registration.

        The schemas come from ``agent_schema_version`` if given; else, with
        ``external_schema_version_id``, the schema version of that identifier
        already on the server; else the config's ``schema_registry`` under a
        content-hash identifier; else none (spans are not validated).

        Raises:
            ValueError: ``instance_id`` is given and is not a PFID.
        """
        tracer = self.tracer
        registry = self._config.schema_registry
        reference_only = agent_schema_version is None and external_schema_version_id is not None
        state = tracer.new_instance(
            agent_version=agent_version,
            agent_schema_version=(
                {"external_identifier": external_schema_version_id}
                if reference_only
                else agent_schema_version
            ),
            use_registry=registry is not None,
            agent_id=agent_id,
            instance_id=instance_id,
            environment_id=environment_id,
            purpose=purpose,
            external_identifier=external_identifier,
        )
        if reference_only:
            # The schemas live on the server; check locally only against a registry we have.
            state.registry = registry if isinstance(registry, SchemaRegistry) else None
        return AgentInstanceHandle(state, self)

    async def record_quality(
        self, instance_id: str, name: str, payload: Mapping[str, Any] | None = None
    ) -> None:
        """Record a quality payload on an instance (``None`` removes it)."""
        tracer = self.tracer
        tracer.record_quality(tracer.instance(instance_id), name, payload)

    # --- spans ----------------------------------------------------------------------------

    def span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> SpanContext:
        """An ``async with`` span in the instance ``instance_id``."""
        return SpanContext(
            self.tracer.instance(instance_id),
            schema_name,
            parent_span_id=parent_span_id,
            payload=payload,
        )

    async def create_span(
        self,
        instance_id: str,
        schema_name: str,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
        started_at: datetime | None = None,
    ) -> str:
        """Start a span without a context manager; returns its id.

        Unlike prefactor-core this does not make the span the parent of later
        spans in the task: pass ``parent_span_id`` explicitly.
        """
        return self._create_span(
            self.tracer.instance(instance_id), schema_name, parent_span_id, payload, started_at
        )

    async def finish_span(
        self,
        span_id: str,
        result_payload: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Finish a span made by :meth:`create_span` ``complete``.

        Raises:
            SpanNotFoundError: no open span with that id was made by this client.
        """
        self._finish_span(span_id, result_payload, timestamp)

    def _create_span(
        self,
        state: InstanceState,
        schema_name: str,
        parent_span_id: str | None,
        payload: Mapping[str, Any] | None,
        started_at: datetime | None,
    ) -> str:
        ctx = SpanContext(state, schema_name, parent_span_id=parent_span_id, payload=payload)
        ctx.start_now(None, started_at)
        self._open_spans[ctx.id] = ctx
        return ctx.id

    def _finish_span(
        self, span_id: str, result_payload: Mapping[str, Any] | None, timestamp: datetime | None
    ) -> None:
        ctx = self._open_spans.pop(span_id, None)
        if ctx is None:
            raise SpanNotFoundError(span_id)
        ctx.finish_now("complete", result_payload, timestamp)
