"""The Prefactor REST API: its wire models and an async client.

Both are imported when first asked for (PEP 562): the client needs httpx, and
code that needs only the models must not pay for it.
"""

from typing import TYPE_CHECKING

from prefactor._lazy import exports

if TYPE_CHECKING:  # the names of _EXPORTS, for type checkers
    from prefactor._api.client import PrefactorApiClient, parse_retry_after
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

_EXPORTS = {
    "prefactor._api.client": ("PrefactorApiClient", "parse_retry_after"),
    "prefactor._api.models": (
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
        "SchemaViolation",
        "Sorting",
        "SpanResponse",
    ),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS)
