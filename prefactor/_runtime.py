"""The process-wide tracer behind ``@traced``, and how any tracer is assembled.

Decorators are applied at import time, before any configuration, so they look
the tracer up when called: the innermost open span's tracer first, then the
one :func:`configure` installed, then a default built on first use from the
environment (the API when ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN`` are
set, else the embedded SQLite store).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from prefactor._config import DEFAULT_AGENT_ID, HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor._errors import PrefactorConfigError
from prefactor._export.base import Sink
from prefactor._export.exporter import Exporter
from prefactor._options import require
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._tracing.capture import Capturer
from prefactor._tracing.slot import TRACER
from prefactor._tracing.tracer import Tracer

logger = logging.getLogger("prefactor.export")

__all__ = ["build_tracer", "configure", "flush", "get_tracer", "shutdown", "stats", "swap"]


def build_sink(
    config: PrefactorCoreConfig, *, sdk_header_entry: str | None = None
) -> Sink | Sequence[Sink]:
    """The sink(s) a config describes: its own, else the API, else the embedded store.

    With ``otlp`` on (``PREFACTOR_OTLP``), an OTLP sink configured by the standard
    ``OTEL_EXPORTER_OTLP_*`` variables is added beside the API or the store: the
    exporter fans every record out to both.
    """
    if config.sink is not None:
        return config.sink
    # Only the sink in use is imported: HttpSink needs httpx, LocalSink the server's store.
    http = config.resolved_http_config()
    sink: Sink
    if http is not None:
        from prefactor._export.sinks.http import HttpSink

        sink = HttpSink(http, sdk_header_entry=sdk_header_entry)
    else:
        from prefactor._export.sinks.local import LocalSink

        sink = LocalSink(config.resolved_db_path(), writer=config.resolved_embedded_writer())
    if config.resolved_otlp():
        otlp = _otlp_sink()
        if otlp is not None:
            return (sink, otlp)
    return sink


def _otlp_sink() -> Sink | None:
    """An OTLP sink from the environment, or ``None`` (logged) when it cannot be made."""
    try:
        # Imported only when asked for: the OTLP sink needs the optional ``otel`` extra.
        from prefactor._otel.sink import OtlpSink

        return OtlpSink()
    except ImportError:
        logger.error(
            "prefactor: otlp is on but the otel extra is missing: pip install 'prefactor[otel]'"
        )
    except ValueError as exc:
        logger.error("prefactor: otlp is on but the OTLP settings are invalid: %s", exc)
    return None


def build_tracer(
    config: PrefactorCoreConfig,
    *,
    sdk_header_entry: str | None = None,
    agent_id: str | None = None,
    environment_id: str | None = None,
    capturer: Capturer | None = None,
) -> Tracer:
    """Assemble sink, exporter and tracer from a config (reading the environment for gaps).

    ``agent_id`` and ``environment_id``, when given, win over the config's.

    Raises:
        PrefactorConfigError: the config's ``schema_registry`` is not a ``SchemaRegistry``.
    """
    registry = config.schema_registry
    require("schema_registry", registry, SchemaRegistry)
    sink = build_sink(config, sdk_header_entry=sdk_header_entry)
    holder: list[Tracer] = []

    def on_terminate(instance_id: str, reason: str | None) -> None:
        if holder:
            holder[0].terminate(instance_id, reason)

    # A copy: the config object may be changed later; this exporter keeps what it was given.
    exporter = Exporter(sink, config.queue_config.model_copy(), on_terminate=on_terminate)
    tracer = Tracer(
        exporter,
        registry if isinstance(registry, SchemaRegistry) else default_registry(),
        strict=config.resolved_strict(),
        validate=config.validation,
        agent_id=agent_id or config.resolved_agent_id() or DEFAULT_AGENT_ID,
        environment_id=environment_id or config.resolved_environment_id(),
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
    embedded_writer: Literal["process", "inline"] | None = None,
    sink: Sink | None = None,
    sinks: Sequence[Sink] | None = None,
    registry: SchemaRegistry | None = None,
    queue: QueueConfig | None = None,
    capturer: Capturer | None = None,
    on_full: Literal["drop", "block"] | None = None,
    otlp: bool | None = None,
) -> Tracer:
    """Install the process-wide tracer that ``@traced`` and ``@agent`` use.

    Every argument is optional; what is not given comes from the environment
    (see :mod:`prefactor._config`). Calling it again replaces the tracer,
    flushing and closing the previous one. Every value is checked as the
    config objects check it, before anything is replaced.

    Args:
        api_url: the Prefactor API (with ``api_token``); else the embedded store.
        api_token: the bearer token; never logged.
        agent_id: the agent of instances made by ``@traced`` roots and ``@agent``
            without one.
        environment_id: sent on register.
        strict: raise on schema violations (tests want this).
        validation: check payloads against schemas at all (default on).
        db_path: the embedded store's file.
        embedded_writer: ``"process"`` (the default) applies the embedded
            store's batches in a writer process of its own, ``"inline"`` in the
            exporter's thread (``PREFACTOR_EMBEDDED_WRITER``).
        sink: send records here instead (e.g. a ``MemorySink``).
        sinks: send every record to each of these sinks instead (fan-out, e.g.
            an ``HttpSink`` and an OTLP sink); not together with ``sink``.
        registry: the schema registry (default: the process-wide one).
        queue: exporter settings.
        capturer: how values are captured (size caps, redaction).
        on_full: shortcut for ``queue.on_full``.
        otlp: also send every record over OTLP (``PREFACTOR_OTLP``) to the
            endpoint of the ``OTEL_EXPORTER_OTLP_*`` variables, beside the API or
            the embedded store; needs the ``otel`` extra.

    Raises:
        PrefactorConfigError: a value does not fit its option (the message names
            the option and what it accepts); a ``ValueError``.
    """
    require("queue", queue, QueueConfig)
    require("registry", registry, SchemaRegistry)
    require("capturer", capturer, Capturer)
    if sink is not None and sinks is not None:
        raise PrefactorConfigError("give sink or sinks, not both", "sinks")
    http = None
    if api_url is not None or api_token is not None:
        if api_url is None or api_token is None:
            raise PrefactorConfigError(
                "api_url and api_token must be given together (or both left to the environment)",
                "api_token" if api_token is None else "api_url",
            )
        http = HttpClientConfig(api_url=api_url, api_token=api_token)
    config = PrefactorCoreConfig(
        http_config=http,
        queue_config=queue if queue is not None else QueueConfig(),
        schema_registry=registry,
        db_path=db_path,
        embedded_writer=embedded_writer,
        strict=strict,
        validation=validation,
        sink=tuple(sinks) if sinks is not None else sink,
        agent_id=agent_id,
        environment_id=environment_id,
        otlp=otlp,
    )
    if on_full is not None:
        config.queue_config = config.queue_config.model_copy()
        config.queue_config.on_full = on_full
    tracer = build_tracer(config, capturer=capturer)
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
