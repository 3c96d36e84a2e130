"""The Prefactor REST API: its wire models and an async client."""

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
