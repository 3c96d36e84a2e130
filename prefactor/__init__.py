"""prefactor: observability for AI agents.

Decorate the agent's entry function with :func:`agent`, its tools with
:func:`tool` and anything else with :func:`traced`; or drive instances and
spans explicitly with :class:`PrefactorCoreClient`, the API of the earlier
``prefactor-core`` package. Either way, nothing waits for the network: records
are queued and shipped in the background.

``__all__`` is what those two kinds of users need. The rest of what
``prefactor_core`` exported (``Queue``, ``TaskExecutor``, ``Operation``, ...)
lives in :mod:`prefactor.compat` and is still importable from here.

Every name but the errors and ``__version__`` is imported when first used
(PEP 562), so that ``import prefactor`` costs a few milliseconds: the REST
client (httpx), the embedded store, python-jsonschema and pydantic load only
when something needs them (see ``docs/performance.md``).
"""

from typing import TYPE_CHECKING

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
from prefactor._lazy import exports, name_publicly
from prefactor._tracing.slot import TRACER as _TRACER
from prefactor._version import __version__

if TYPE_CHECKING:  # the names of _EXPORTS, for type checkers (tests/core/test_lazy_imports.py)
    from prefactor._api.client import PrefactorApiClient
    from prefactor._client import PrefactorCoreClient
    from prefactor._config import HttpClientConfig, PrefactorCoreConfig, QueueConfig
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
    from prefactor._tracing.tracer import Tracer

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

# Each module, with the public names it defines; imported on first access. Public names
# say where users import them from (``prefactor.traced``, not the private module that
# defines it): in reprs, tracebacks and pickles alike.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "prefactor._api.client": ("PrefactorApiClient",),
    "prefactor._client": ("PrefactorCoreClient",),
    "prefactor._config": ("HttpClientConfig", "PrefactorCoreConfig", "QueueConfig"),
    "prefactor._export.exporter": ("Exporter",),
    "prefactor._export.sinks": ("HttpSink", "LocalSink", "MemorySink"),
    "prefactor._export.stats": ("ExportStats",),
    "prefactor._handles": ("AgentInstanceHandle",),
    "prefactor._ids": (
        "generate_idempotency_key",
        "generate_pfid",
        "is_pfid",
        "validate_idempotency_key",
    ),
    "prefactor._runtime": ("configure", "flush", "get_tracer", "shutdown", "stats"),
    "prefactor._schemas.registry": ("SchemaRegistry", "default_registry"),
    "prefactor._tracing.agents": ("agent", "instrument_tools", "tool"),
    "prefactor._tracing.capture": ("Capturer",),
    "prefactor._tracing.context": (
        "ContextThreadPoolExecutor",
        "current_instance",
        "current_span",
        "in_context",
    ),
    "prefactor._tracing.decorator": ("traced",),
    "prefactor._tracing.span_context": ("SpanContext",),
}

# prefactor-core's leftovers (``from prefactor import Queue``) come from prefactor.compat.
__getattr__, __dir__ = exports(__name__, _EXPORTS, rename=True, fallback="prefactor.compat")


# The errors are imported at once (they cost nothing and are raised from deep inside
# the SDK): named ``prefactor.SchemaValidationError`` in every traceback from the start.
for _name in __all__:
    if _name in globals():
        name_publicly(__name__, globals()[_name])
del _name


def _default_tracer() -> "Tracer":
    # The first traced call outside any span (not the import) loads the runtime: its
    # exporter, its sinks, the configuration. Importing it installs its own factory.
    from prefactor._runtime import _default

    return _default()


_TRACER.set_default(_default_tracer)
