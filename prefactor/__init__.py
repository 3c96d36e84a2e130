"""prefactor: observability for AI agents.

Decorate the agent's entry function with :func:`agent`, its tools with
:func:`tool` and anything else with :func:`traced`; or drive instances and
spans explicitly with :class:`PrefactorCoreClient`, the API of the earlier
``prefactor-core`` package. Either way, nothing waits for the network: records
are queued and shipped in the background.

``__all__`` is what those two kinds of users need. The rest of what
``prefactor_core`` exported (``Queue``, ``TaskExecutor``, ``Operation``, ...)
lives in :mod:`prefactor.compat` and is still importable from here.
"""

from typing import Any

from prefactor import compat as _compat
from prefactor._api.client import PrefactorApiClient
from prefactor._client import PrefactorCoreClient
from prefactor._config import HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor._errors import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    InstanceNotFoundError,
    OperationError,
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorConfigError,
    PrefactorCoreError,
    PrefactorError,
    PrefactorHttpError,
    PrefactorNotFoundError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorTelemetryFailureError,
    PrefactorTerminatedError,
    PrefactorValidationError,
    SchemaValidationError,
    SpanNotFoundError,
)
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink, LocalSink, MemorySink
from prefactor._export.stats import ExportStats
from prefactor._handles import AgentInstanceHandle
from prefactor._ids import (
    generate_idempotency_key,
    generate_pfid,
    is_pfid,
    validate_idempotency_key,
)
from prefactor._runtime import configure, flush, get_tracer, shutdown, stats
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._tracing.agents import agent, instrument_tools, tool
from prefactor._tracing.capture import Capturer
from prefactor._tracing.context import (
    ContextThreadPoolExecutor,
    current_instance,
    current_span,
    in_context,
)
from prefactor._tracing.decorator import traced
from prefactor._tracing.span_context import SpanContext
from prefactor._version import __version__

__all__ = [
    "AgentInstanceHandle",
    "Capturer",
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "ContextThreadPoolExecutor",
    "ExportStats",
    "Exporter",
    "HttpClientConfig",
    "HttpSink",
    "InstanceNotFoundError",
    "LocalSink",
    "MemorySink",
    "OperationError",
    "PrefactorApiClient",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorConfigError",
    "PrefactorCoreClient",
    "PrefactorCoreConfig",
    "PrefactorCoreError",
    "PrefactorError",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "PrefactorValidationError",
    "QueueConfig",
    "SchemaRegistry",
    "SchemaValidationError",
    "SpanContext",
    "SpanNotFoundError",
    "__version__",
    "agent",
    "configure",
    "current_instance",
    "current_span",
    "default_registry",
    "flush",
    "generate_idempotency_key",
    "generate_pfid",
    "get_tracer",
    "in_context",
    "instrument_tools",
    "is_pfid",
    "shutdown",
    "stats",
    "tool",
    "traced",
    "validate_idempotency_key",
]

# Public names say where users import them from (``prefactor.traced``, not the private
# module that defines it): in reprs, tracebacks and pickles alike.
for _name in __all__:
    if not _name.startswith("__"):
        _obj = globals()[_name]
        if getattr(_obj, "__module__", "").startswith("prefactor."):
            _obj.__module__ = "prefactor"
del _name, _obj


def __getattr__(name: str) -> Any:
    # prefactor-core's leftovers, for ``from prefactor import Queue`` (PEP 562).
    if name in _compat.__all__:
        return getattr(_compat, name)
    raise AttributeError(f"module 'prefactor' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_compat.__all__})
