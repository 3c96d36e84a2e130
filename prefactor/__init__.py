"""prefactor: observability for AI agents.

Decorate the agent's entry function with :func:`agent`, its tools with
:func:`tool` and anything else with :func:`traced`; or drive instances and
spans explicitly with :class:`PrefactorCoreClient`, the API of the earlier
``prefactor-core`` package. Either way, nothing waits for the network: records
are queued and shipped in the background.
"""

from prefactor._version import __version__
from prefactor.client import AgentInstanceHandle, PrefactorCoreClient
from prefactor.compat import (
    AgentInstance,
    InMemoryQueue,
    Operation,
    OperationType,
    Queue,
    Span,
    SpanContextStack,
    TaskExecutor,
)
from prefactor.config import HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor.errors import (
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
    QueueClosedError,
    SchemaValidationError,
    SpanNotFoundError,
)
from prefactor.export.exporter import Exporter
from prefactor.export.sinks import HttpSink, LocalSink, MemorySink
from prefactor.export.stats import ExportStats
from prefactor.ids import generate_idempotency_key, validate_idempotency_key
from prefactor.runtime import configure, flush, get_tracer, shutdown, stats
from prefactor.schemas.registry import SchemaRegistry, default_registry
from prefactor.tracing.agents import agent, instrument_tools, tool
from prefactor.tracing.capture import Capturer
from prefactor.tracing.context import (
    ContextThreadPoolExecutor,
    current_instance,
    current_span,
    in_context,
)
from prefactor.tracing.decorator import traced
from prefactor.tracing.span_context import SpanContext

__all__ = [
    "AgentInstance",
    "AgentInstanceHandle",
    "Capturer",
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "ContextThreadPoolExecutor",
    "ExportStats",
    "Exporter",
    "HttpClientConfig",
    "HttpSink",
    "InMemoryQueue",
    "InstanceNotFoundError",
    "LocalSink",
    "MemorySink",
    "Operation",
    "OperationError",
    "OperationType",
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
    "Queue",
    "QueueClosedError",
    "QueueConfig",
    "SchemaRegistry",
    "SchemaValidationError",
    "Span",
    "SpanContext",
    "SpanContextStack",
    "SpanNotFoundError",
    "TaskExecutor",
    "__version__",
    "agent",
    "configure",
    "current_instance",
    "current_span",
    "default_registry",
    "flush",
    "generate_idempotency_key",
    "get_tracer",
    "in_context",
    "instrument_tools",
    "shutdown",
    "stats",
    "tool",
    "traced",
    "validate_idempotency_key",
]
