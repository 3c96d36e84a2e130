"""``PrefactorCoreClient``: the prefactor-core API, non-blocking.

The names and signatures are those of the earlier ``prefactor-core`` package,
so its users switch by changing an import. What changed underneath: no call
but ``initialize()`` waits for the network (IDs are made here, every call only
queues a record), nothing about a span is kept after it is sent, ``flush()``
exists, order is kept per instance, and a rejected item is logged and counted
instead of disabling the client.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from prefactor._api.client import PrefactorApiClient
from prefactor._config import PrefactorCoreConfig
from prefactor._errors import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    PrefactorAuthError,
    SpanNotFoundError,
)
from prefactor._handles import AgentInstanceHandle, AgentInstanceManager
from prefactor._runtime import build_tracer
from prefactor._schemas.registry import SchemaRegistry
from prefactor._sdk import build_runtime_environment, sdk_header
from prefactor._tracing.span_context import SpanContext
from prefactor._tracing.state import InstanceState
from prefactor._tracing.tracer import Tracer

__all__ = ["PrefactorCoreClient"]

logger = logging.getLogger("prefactor.client")


class PrefactorCoreClient:
    """The explicit async API: instances, spans, quality, all queued in the background.

    Use as ``async with PrefactorCoreClient(config) as client`` or call
    :meth:`initialize` and :meth:`close`. Only ``initialize`` touches the
    network: it checks the token once, as prefactor-core did.

    Args:
        config: where to send, how to queue, which schemas.
        queue: accepted for compatibility with prefactor-core and ignored; the
            exporter's bounded queue is configured through ``config.queue_config``.
        sdk_header_entry: an integration's ``name@version``, sent first in the
            ``X-Prefactor-SDK`` header and listed as ``agent_sdk`` in the
            instances' ``runtime_environment``.
    """

    def __init__(
        self,
        config: PrefactorCoreConfig | None = None,
        queue: Any = None,
        sdk_header_entry: str | None = None,
    ) -> None:
        self._config = config if config is not None else PrefactorCoreConfig()
        self._sdk_header_entry = sdk_header_entry.strip() if sdk_header_entry else None
        self._tracer: Tracer | None = None
        self._manager: AgentInstanceManager | None = None
        self._agent_id: str | None = None
        self._use_registry = False
        self._open_spans: dict[str, SpanContext] = {}

    # --- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> PrefactorCoreClient:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def initialize(self) -> None:
        """Check the API token, then build the exporter and its sink.

        With an API configured (and no ``sink`` of the config's own), one
        ``GET /api/v1/ping`` checks the token, bounded by the HTTP timeouts and
        not retried. If the API cannot be reached, or answers anything but a
        refusal, a warning is logged and the client starts anyway: records are
        queued and sent once it answers.

        Raises:
            ClientAlreadyInitializedError: called twice.
            PrefactorAuthError: the API refused the token (401 or 403).
        """
        if self._tracer is not None:
            raise ClientAlreadyInitializedError("PrefactorCoreClient is already initialized")
        await self._check_token()
        self._tracer = build_tracer(self._config, sdk_header_entry=self._sdk_header_entry)
        # Read once, like the rest of the config: changes apply at the next initialize().
        self._agent_id = self._config.resolved_agent_id()
        self._use_registry = self._config.schema_registry is not None
        self._manager = AgentInstanceManager(self)

    async def _check_token(self) -> None:
        if self._config.sink is not None:
            return
        http = self._config.resolved_http_config()
        if http is None:
            return
        once = http.model_copy(update={"max_retries": 0})
        async with PrefactorApiClient(once, sdk_header=sdk_header(self._sdk_header_entry)) as api:
            try:
                await api.ping()
            except PrefactorAuthError as exc:
                refused = exc
            except Exception as exc:  # unreachable or odd: never a reason to stop the agent
                logger.warning(
                    "could not check the API token at %s (%s: %s); starting anyway",
                    http.api_url,
                    type(exc).__name__,
                    exc,
                )
                return
            else:
                return
        raise PrefactorAuthError(
            f"the Prefactor API at {http.api_url} refused the token: {refused.message}",
            refused.code,
            refused.status_code,
            refused.errors,
        )

    async def close(self, timeout: float | None = None) -> None:
        """Flush (bounded by ``shutdown_timeout``) and stop; safe to call twice.

        The client can be initialized again afterwards.
        """
        tracer, self._tracer = self._tracer, None
        self._manager = None
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

    @property
    def instance_manager(self) -> AgentInstanceManager | None:
        """prefactor-core's instance calls by id; ``None`` until :meth:`initialize`."""
        return self._manager

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

        The schemas come from ``agent_schema_version`` if given; else from the
        config's ``schema_registry``, registered under
        ``external_schema_version_id`` or else a content-hash identifier; else,
        with only ``external_schema_version_id``, from the schema version of
        that identifier already on the server; else there are none (spans are
        not validated).

        As in prefactor-core 0.5.3, ``agent_version`` gains a
        ``runtime_environment`` (SDKs, OS, Python) unless it has one; and with
        no ``agent_id`` here or in the configuration (``agent_id``,
        ``PREFACTOR_AGENT_ID``) the registration leaves the agent out, for a
        deployment-scoped token to name it.

        Raises:
            ValueError: ``instance_id`` is given and is not a PFID.
        """
        tracer = self.tracer
        if "runtime_environment" not in agent_version:
            agent_version = {
                **agent_version,
                "runtime_environment": build_runtime_environment(self._sdk_header_entry),
            }
        agent = agent_id if agent_id is not None else self._agent_id
        # With no registry, an identifier alone refers to a schema version already on the server.
        reference_only = (
            agent_schema_version is None
            and not self._use_registry
            and external_schema_version_id is not None
        )
        state = tracer.new_instance(
            agent_version=agent_version,
            agent_schema_version=(
                {"external_identifier": external_schema_version_id}
                if reference_only
                else agent_schema_version
            ),
            use_registry=self._use_registry,
            schema_version_id=external_schema_version_id,
            agent_id=agent,
            agent_from_token=agent is None,
            instance_id=instance_id,
            environment_id=environment_id,
            purpose=purpose,
            external_identifier=external_identifier,
        )
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
