"""The process-wide tracer behind ``@traced``, and how any tracer is assembled.

Decorators are applied at import time, before any configuration, so they look
the tracer up when called: the innermost open span's tracer first, then the
one :func:`configure` installed, then a default built on first use from the
environment (the API when ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN`` are
set, else the embedded SQLite store).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import SecretStr

from prefactor._config import DEFAULT_AGENT_ID, HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink, LocalSink
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._tracing.capture import Capturer
from prefactor._tracing.slot import TRACER
from prefactor._tracing.tracer import Tracer

__all__ = ["build_tracer", "configure", "flush", "get_tracer", "shutdown", "stats", "swap"]


def build_sink(config: PrefactorCoreConfig, *, sdk_header_entry: str | None = None) -> Any:
    """The sink a config describes: its own, else the API, else the embedded store."""
    if config.sink is not None:
        return config.sink
    http = config.resolved_http_config()
    if http is not None:
        return HttpSink(http, sdk_header_entry=sdk_header_entry)
    return LocalSink(config.resolved_db_path())


def build_tracer(
    config: PrefactorCoreConfig,
    *,
    sdk_header_entry: str | None = None,
    agent_id: str | None = None,
    environment_id: str | None = None,
    capturer: Capturer | None = None,
) -> Tracer:
    """Assemble sink, exporter and tracer from a config (reading the environment for gaps)."""
    sink = build_sink(config, sdk_header_entry=sdk_header_entry)
    holder: list[Tracer] = []

    def on_terminate(instance_id: str, reason: str | None) -> None:
        if holder:
            holder[0].terminate(instance_id, reason)

    exporter = Exporter(sink, config.queue_config, on_terminate=on_terminate)
    registry = config.schema_registry
    tracer = Tracer(
        exporter,
        registry if isinstance(registry, SchemaRegistry) else default_registry(),
        strict=config.resolved_strict(),
        validate=config.validation,
        agent_id=agent_id or os.environ.get("PREFACTOR_AGENT_ID") or DEFAULT_AGENT_ID,
        environment_id=environment_id or os.environ.get("PREFACTOR_ENVIRONMENT_ID") or None,
        capturer=capturer,
    )
    holder.append(tracer)
    return tracer


def configure(
    *,
    api_url: str | None = None,
    api_token: str | None = None,
    agent_id: str | None = None,
    environment_id: str | None = None,
    strict: bool | None = None,
    validation: bool = True,
    db_path: str | Path | None = None,
    sink: Any = None,
    registry: SchemaRegistry | None = None,
    queue: QueueConfig | None = None,
    capturer: Capturer | None = None,
    on_full: Literal["drop", "block"] | None = None,
) -> Tracer:
    """Install the process-wide tracer that ``@traced`` and ``@agent`` use.

    Every argument is optional; what is not given comes from the environment
    (see :mod:`prefactor._config`). Calling it again replaces the tracer,
    flushing and closing the previous one.

    Args:
        api_url: the Prefactor API (with ``api_token``); else the embedded store.
        api_token: the bearer token; never logged.
        agent_id: the agent of instances made by ``@traced`` roots and ``@agent``
            without one.
        environment_id: sent on register.
        strict: raise on schema violations (tests want this).
        validation: check payloads against schemas at all (default on).
        db_path: the embedded store's file.
        sink: send records here instead (e.g. a ``MemorySink``).
        registry: the schema registry (default: the process-wide one).
        queue: exporter settings.
        capturer: how values are captured (size caps, redaction).
        on_full: shortcut for ``queue.on_full``.
    """
    http = None
    if api_url or api_token:
        if not (api_url and api_token):
            raise ValueError("api_url and api_token must be given together")
        http = HttpClientConfig(api_url=api_url, api_token=SecretStr(api_token))
    queue_config = queue or QueueConfig()
    if on_full is not None:
        queue_config = queue_config.model_copy(update={"on_full": on_full})
    config = PrefactorCoreConfig(
        http_config=http,
        queue_config=queue_config,
        schema_registry=registry,
        db_path=Path(db_path) if db_path is not None else None,
        strict=strict,
        validation=validation,
        sink=sink,
    )
    tracer = build_tracer(
        config, agent_id=agent_id, environment_id=environment_id, capturer=capturer
    )
    old = swap(tracer)
    if old is not None:
        old.close()
    return tracer


def swap(tracer: Tracer | None) -> Tracer | None:
    """Install ``tracer`` process-wide without closing the one it replaces; return that one.

    For code that installs a tracer for a while and then puts the previous one
    back, as the pytest plugin does around each test.
    """
    return TRACER.swap(tracer)


def get_tracer() -> Tracer:
    """The process-wide tracer, built from the environment on first use."""
    return TRACER.get()


def _default() -> Tracer:
    return build_tracer(PrefactorCoreConfig())


TRACER.set_default(_default)


def flush(timeout: float | None = None) -> bool:
    """Wait until everything ``@traced`` queued so far is sent; ``False`` on timeout."""
    tracer = TRACER.tracer
    return True if tracer is None else tracer.flush(timeout)


def shutdown(timeout: float | None = None) -> bool:
    """Flush and close the process-wide tracer; the next ``@traced`` call makes a new one."""
    tracer = swap(None)
    return True if tracer is None else tracer.close(timeout)


def stats() -> dict[str, Any]:
    """The process-wide tracer's counters."""
    return get_tracer().stats()
