"""The Prefactor REST API: its wire models and an async client.

The client is imported when first asked for (PEP 562): it needs httpx, and code
that needs only the models (the server's store) must not pay for it.
"""

from typing import TYPE_CHECKING

from prefactor._api.models import (
    AgentInstance,
    AgentInstanceSpanCounts,
    AgentSpan,
    ApiError,
    ApiResponse,
    BulkOutput,
    BulkResponse,
    Control,
    ListResponse,
    PaginationOutput,
    SchemaViolation,
    Sorting,
    SpanResponse,
)
from prefactor._lazy import exports

if TYPE_CHECKING:  # the names of _EXPORTS, for type checkers
    from prefactor._api.client import PrefactorApiClient, parse_retry_after

__all__ = [
    "AgentInstance",
    "AgentInstanceSpanCounts",
    "AgentSpan",
    "ApiError",
    "ApiResponse",
    "BulkOutput",
    "BulkResponse",
    "Control",
    "ListResponse",
    "PaginationOutput",
    "PrefactorApiClient",
    "SchemaViolation",
    "Sorting",
    "SpanResponse",
    "parse_retry_after",
]

_EXPORTS = {"prefactor._api.client": ("PrefactorApiClient", "parse_retry_after")}
__getattr__, __dir__ = exports(__name__, _EXPORTS)
