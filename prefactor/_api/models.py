"""Wire models of the Prefactor REST API: one source of truth for the server and the client.

Response models ignore unknown keys, so a newer server may add fields freely.
Request models forbid unknown keys where the contract is closed (the finish,
start and terminate bodies) and stay open where clients are known to send
extras (register, span create), so a typo gives a precise 422 while a newer
client still gets through.

Timestamps are accepted as ``2025-01-02T03:04:05.123456+00:00``,
``2026-02-09T00:00:00.000Z`` or a naive ISO string, which is read as UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Generic, Literal, TypeAlias, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

__all__ = [
    "AgentInstance",
    "AgentInstanceSpanCounts",
    "AgentSchemaVersionForRegister",
    "AgentSpan",
    "AgentStatus",
    "AgentVersionForRegister",
    "ApiError",
    "ApiResponse",
    "BulkItem",
    "BulkOutput",
    "BulkRequest",
    "BulkResponse",
    "Control",
    "CreateSpanRequest",
    "FinishInstanceRequest",
    "FinishSpanRequest",
    "FinishStatus",
    "InstancePurpose",
    "IsoTimestamp",
    "ListResponse",
    "PaginationOutput",
    "QualitySchemaForCreate",
    "QualityViolation",
    "RecordQualityRequest",
    "RegisterInstanceRequest",
    "SchemaViolation",
    "Sorting",
    "SpanCreateStatus",
    "SpanDetailsForCreate",
    "SpanResponse",
    "SpanTypeSchemaForCreate",
    "StartInstanceRequest",
    "TerminateInstanceRequest",
    "Timestamp",
    "normalize_timestamp",
]

AgentStatus: TypeAlias = Literal[
    "pending", "active", "complete", "failed", "cancelled", "terminated"
]
SpanStatus: TypeAlias = Literal["pending", "active", "complete", "failed", "cancelled"]
SpanCreateStatus: TypeAlias = Literal["active", "pending", "complete", "failed", "cancelled"]
FinishStatus: TypeAlias = Literal["complete", "failed", "cancelled"]
InstancePurpose: TypeAlias = Literal["live", "smoke_test", "eval"]
JSONObject: TypeAlias = dict[str, Any]


_ZERO = timedelta(0)


def _as_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01T00:00:00+01:00 is a year before the first one
        raise ValueError("the time is out of range once converted to UTC") from None


Timestamp = Annotated[datetime, AfterValidator(_as_utc)]
"""A datetime that is always timezone-aware UTC (naive input is read as UTC)."""


def normalize_timestamp(value: object) -> str:
    """An ISO-8601 timestamp (or datetime) as fixed-width UTC text: ``...T00:00:00.000000Z``.

    Fixed width makes string order time order. The forms the SDKs send are
    rewritten by slicing once a parse has validated them; formatting a
    datetime costs ten times more on the bulk path.

    Raises:
        ValueError: not an ISO-8601 timestamp, or not representable in UTC.
    """
    if type(value) is str:
        n = len(value)
        # A calendar date and a time with seconds and a '.' fraction, in the output's
        # layout (fromisoformat also takes week dates and any date/time separator).
        if n >= 24 and value[19] == "." and value[10] == "T" and value[7] == "-":
            if n == 32 and value[26:] == "+00:00":  # what this SDK sends
                _parse_iso(value)
                return value[:26] + "Z"
            if n == 27 and value[26] == "Z":
                _parse_iso(value)
                return value
            if n == 24 and value[23] == "Z":  # milliseconds, as TypeScript writes them
                _parse_iso(value)
                return value[:23] + "000Z"
        parsed = _parse_iso(value)
    elif isinstance(value, datetime):
        parsed = value
    else:
        raise ValueError("must be an ISO-8601 timestamp string")
    return _as_utc(parsed).isoformat(timespec="microseconds")[:-6] + "Z"


_parse_iso = datetime.fromisoformat


IsoTimestamp = Annotated[str, BeforeValidator(normalize_timestamp)]
"""A timestamp in a request, normalised by :func:`normalize_timestamp`."""

IdempotencyKey = Annotated[str, Field(min_length=1, max_length=64)]


class _Response(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class _OpenRequest(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class _ClosedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- resources ----------------------------------------------------------------------------


class AgentInstanceSpanCounts(_Response):
    """How many spans an instance has in each status; ``finished`` = the three terminal ones."""

    total: int = 0
    pending: int = 0
    active: int = 0
    complete: int = 0
    failed: int = 0
    cancelled: int = 0
    finished: int = 0


class QualityViolation(_Response):
    """A schema failure recorded on a quality payload (our extension): JSON path, reason."""

    path: str
    reason: str


class AgentInstance(_Response):
    """One run of an agent."""

    type: Literal["agent_instance"] = "agent_instance"
    id: str
    account_id: str
    agent_id: str
    agent_version_id: str
    environment_id: str
    agent_deployment_id: str
    status: AgentStatus
    inserted_at: Timestamp
    updated_at: Timestamp
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    termination_reason: str | None = None
    span_counts: AgentInstanceSpanCounts | None = None
    purpose: InstancePurpose | None = None
    quality_payloads: dict[str, JSONObject] | None = None
    quality_summaries: dict[str, str] | None = None
    quality_violations: dict[str, list[QualityViolation]] | None = None
    external_identifier: str | None = None


class SchemaViolation(_Response):
    """A schema failure recorded on a span (our extension): side, JSON path, reason."""

    side: Literal["params", "result"]
    path: str
    reason: str


class AgentSpan(_Response):
    """One unit of agent work."""

    type: Literal["agent_span"] = "agent_span"
    id: str
    agent_instance_id: str
    schema_name: str
    status: SpanStatus
    payload: JSONObject = Field(default_factory=dict)
    result_payload: JSONObject | None = None
    account_id: str | None = None
    agent_id: str | None = None
    parent_span_id: str | None = None
    schema_title: str | None = None
    summary: str | None = None
    started_at: Timestamp | None = None
    finished_at: Timestamp | None = None
    inserted_at: Timestamp | None = None
    updated_at: Timestamp | None = None
    schema_violations: list[SchemaViolation] | None = None


class Control(_Response):
    """The platform's instruction riding on a span response: stop the agent run."""

    terminate: bool = False
    reason: str | None = None


# --- envelopes ----------------------------------------------------------------------------

T = TypeVar("T")


class ApiResponse(_Response, Generic[T]):
    """``{"status": "success", "details": ...}``."""

    status: Literal["success"]
    details: T


class SpanResponse(_Response):
    """A span create/finish answer: the span and, after a terminate, the ``control`` signal."""

    status: Literal["success"]
    details: AgentSpan
    control: Control | None = None


class ApiError(_Response):
    """The error envelope: ``{"status": "error", "code", "message", "errors"?}``."""

    status: Literal["error"]
    code: str = "unknown"
    message: str = ""
    errors: dict[str, Any] | None = None


class PaginationOutput(_Response):
    """Where a page sits in a list; offsets 0-based, item and page indexes 1-based."""

    item_count: int
    item_end: int
    item_start: int
    next_page_offset: int | None
    page_count: int
    page_index: int
    page_offset: int
    page_size: int
    previous_page_offset: int | None


class Sorting(_Response):
    """The order of a list."""

    field: str
    direction: Literal["asc", "desc"]


class ListResponse(_Response, Generic[T]):
    """``{"status", "summaries", "pagination", "sorting"}``; the last two keys must be present."""

    status: Literal["success"]
    summaries: list[T]
    pagination: PaginationOutput | None
    sorting: Sorting | None


# --- register -----------------------------------------------------------------------------


class AgentVersionForRegister(_OpenRequest):
    """The agent's version; reused by ``external_identifier``. Extra keys (e.g. runtime) kept."""

    name: str | None = None
    external_identifier: str | None = None
    description: str | None = None


class SpanTypeSchemaForCreate(_OpenRequest):
    """One span type of a schema version."""

    name: str = Field(min_length=1)
    params_schema: JSONObject
    result_schema: JSONObject | None = None
    title: str | None = None
    description: str | None = None
    template: str | None = None
    result_template: str | None = None
    data_risk: JSONObject | None = None


class QualitySchemaForCreate(_OpenRequest):
    """One named quality evaluation of a schema version (the JSON key is ``schema``)."""

    name: str = Field(min_length=1)
    schema_: JSONObject = Field(alias="schema")
    title: str | None = None
    description: str | None = None
    template: str | None = None
    data_risk: JSONObject | None = None


class AgentSchemaVersionForRegister(_OpenRequest):
    """Span and quality schemas; ``external_identifier`` names the version."""

    external_identifier: str | None = None
    span_schemas: dict[str, JSONObject] | None = None
    span_result_schemas: dict[str, JSONObject] | None = None
    span_type_schemas: list[SpanTypeSchemaForCreate] | None = None
    quality_schemas: list[QualitySchemaForCreate] | None = None

    @field_validator("span_type_schemas", "quality_schemas")
    @classmethod
    def _unique_names(cls, value: list[Any] | None) -> list[Any] | None:
        if value is not None:
            names = [entry.name for entry in value]
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"duplicate names: {', '.join(dupes)}")
        return value


class RegisterInstanceRequest(_OpenRequest):
    """``POST /api/v1/agent_instance/register``."""

    agent_version: AgentVersionForRegister = Field(default_factory=AgentVersionForRegister)
    agent_schema_version: AgentSchemaVersionForRegister | None = None
    update_current_version: bool = True
    agent_id: str | None = Field(None, min_length=1)
    environment_id: str | None = Field(None, min_length=1)
    id: str | None = None
    idempotency_key: IdempotencyKey | None = None
    purpose: InstancePurpose | None = None
    external_identifier: str | None = None


# --- lifecycle ----------------------------------------------------------------------------


class StartInstanceRequest(_ClosedRequest):
    """``POST /api/v1/agent_instance/{id}/start``."""

    timestamp: IsoTimestamp | None = None
    idempotency_key: IdempotencyKey | None = None


class FinishInstanceRequest(_ClosedRequest):
    """``POST /api/v1/agent_instance/{id}/finish``."""

    status: FinishStatus | None = None
    timestamp: IsoTimestamp | None = None
    idempotency_key: IdempotencyKey | None = None


class RecordQualityRequest(_ClosedRequest):
    """``POST /api/v1/agent_instance/{id}/record_quality``; ``payload: null`` removes it."""

    name: str = Field(min_length=1)
    payload: JSONObject | None
    idempotency_key: IdempotencyKey | None = None


class TerminateInstanceRequest(_ClosedRequest):
    """``POST /api/v1/agent_instance/{id}/terminate``."""

    reason: str | None = None
    idempotency_key: IdempotencyKey | None = None


class _ViolationIn(_ClosedRequest):
    side: Literal["params", "result"]
    path: str
    reason: str


class SpanDetailsForCreate(_OpenRequest):
    """The ``details`` of ``POST /api/v1/agent_spans``.

    ``schema_violations`` is our extension: a lenient client declaring that it
    knowingly sends data that breaks the schema, so the server stores and
    flags the span instead of rejecting it.
    """

    agent_instance_id: str
    schema_name: str = Field(min_length=1)
    status: SpanCreateStatus
    payload: JSONObject | None = None
    result_payload: JSONObject | None = None
    id: str | None = None
    parent_span_id: str | None = None
    started_at: IsoTimestamp | None = None
    finished_at: IsoTimestamp | None = None
    idempotency_key: IdempotencyKey | None = None
    schema_violations: list[_ViolationIn] | None = None

    @model_validator(mode="after")
    def _terminal_fields(self) -> SpanDetailsForCreate:
        if self.status in ("active", "pending"):
            if self.finished_at is not None:
                raise ValueError("finished_at is only allowed with a terminal status")
            if self.result_payload is not None:
                raise ValueError("result_payload is only allowed with a terminal status")
        return self


class CreateSpanRequest(_ClosedRequest):
    """``POST /api/v1/agent_spans``: ``{"details": {...}, "idempotency_key"?}``."""

    details: SpanDetailsForCreate
    idempotency_key: IdempotencyKey | None = None


class FinishSpanRequest(_ClosedRequest):
    """``POST /api/v1/agent_spans/{id}/finish``."""

    status: FinishStatus | None = None
    result_payload: JSONObject | None = None
    timestamp: IsoTimestamp | None = None
    idempotency_key: IdempotencyKey | None = None
    sensitive_encoding: bool | None = None
    schema_violations: list[_ViolationIn] | None = None


# --- bulk ---------------------------------------------------------------------------------


class BulkItem(_OpenRequest):
    """One bulk item: ``_type``, ``idempotency_key`` and the operation's params, flat."""

    type: str = Field(alias="_type", min_length=1)
    idempotency_key: str = Field(min_length=8, max_length=64)


class BulkRequest(_ClosedRequest):
    """``POST /api/v1/bulk``: at least one item, keys unique within the request."""

    items: list[BulkItem] = Field(min_length=1)

    @field_validator("items")
    @classmethod
    def _unique_keys(cls, items: list[BulkItem]) -> list[BulkItem]:
        seen: set[str] = set()
        for item in items:
            if item.idempotency_key in seen:
                raise ValueError(f"duplicate idempotency_key {item.idempotency_key!r}")
            seen.add(item.idempotency_key)
        return items


class BulkOutput(_Response):
    """One item's outcome: ``success`` with ``details`` (and ``control``), or an error."""

    model_config = ConfigDict(extra="allow")

    status: Literal["success", "error"]
    details: Any = None
    control: Control | None = None
    code: str | None = None
    message: str | None = None
    errors: dict[str, Any] | None = None


class BulkResponse(_Response):
    """``{"status": "success", "outputs": {idempotency_key: BulkOutput}}``."""

    status: Literal["success"]
    outputs: dict[str, BulkOutput]
