"""The wire models: timestamps, envelopes and request validation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from prefactor._api.models import (
    AgentInstance,
    BulkRequest,
    FinishInstanceRequest,
    ListResponse,
    QualitySchemaForCreate,
    SpanDetailsForCreate,
    SpanResponse,
    normalize_timestamp,
)

INSTANCE = {
    "type": "agent_instance",
    "id": "i",
    "account_id": "a",
    "agent_id": "g",
    "agent_version_id": "v",
    "environment_id": "e",
    "agent_deployment_id": "d",
    "status": "active",
    "inserted_at": "2024-01-01T00:00:00Z",
    "updated_at": "2024-01-01T00:00:00Z",
}


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        pytest.param(
            "2025-01-02T03:04:05.123456+00:00", "2025-01-02T03:04:05.123456Z", id="python"
        ),
        pytest.param("2026-02-09T00:00:00.000Z", "2026-02-09T00:00:00.000000Z", id="typescript"),
        pytest.param("2025-01-02T03:04:05", "2025-01-02T03:04:05.000000Z", id="naive-is-utc"),
        pytest.param("2025-01-02T05:04:05+02:00", "2025-01-02T03:04:05.000000Z", id="offset"),
        pytest.param(
            datetime(2025, 1, 2, 3, 4, 5, 7, tzinfo=UTC), "2025-01-02T03:04:05.000007Z", id="dt"
        ),
        pytest.param(
            "2025-01-02 03:04:05.123456+00:00", "2025-01-02T03:04:05.123456Z", id="space-separator"
        ),
        pytest.param("2025-01-02 03:04:05.123Z", "2025-01-02T03:04:05.123000Z", id="space-ms-z"),
        pytest.param(
            "2026-W06-1T00:00:00.123456+00:00", "2026-02-02T00:00:00.123456Z", id="week-date-sdk"
        ),
        pytest.param(
            "2026-W06-1T00:00:00.123456Z", "2026-02-02T00:00:00.123456Z", id="week-date-z"
        ),
        pytest.param("2026-W06-1T00:00:00.123Z", "2026-02-02T00:00:00.123000Z", id="week-date-ms"),
    ],
)
def test_request_timestamps_normalise_to_fixed_width_utc(given: object, expected: str) -> None:
    assert normalize_timestamp(given) == expected


def test_request_timestamp_that_is_not_iso_is_refused() -> None:
    with pytest.raises(ValidationError):
        FinishInstanceRequest.model_validate({"timestamp": "yesterday"})


@pytest.mark.parametrize(
    "bad",
    ["2025-13-02T03:04:05.123456+00:00", "2025-02-30T03:04:05.123456+00:00", "x" * 26 + "+00:00"],
)
def test_a_fixed_width_timestamp_is_still_parsed_before_it_is_sliced(bad: str) -> None:
    with pytest.raises(ValueError):
        normalize_timestamp(bad)


def test_agent_instance_ignores_unknown_keys_and_reads_naive_times_as_utc() -> None:
    parsed = AgentInstance.model_validate(
        {**INSTANCE, "brand_new_field": 1, "started_at": "2024-01-01T00:00:00"}
    )
    assert parsed.started_at == datetime(2024, 1, 1, tzinfo=UTC)


def test_agent_instance_without_a_required_id_field_is_refused() -> None:
    body = {k: v for k, v in INSTANCE.items() if k != "agent_deployment_id"}
    with pytest.raises(ValidationError):
        AgentInstance.model_validate(body)


def test_list_response_requires_pagination_and_sorting_keys_present() -> None:
    with pytest.raises(ValidationError):
        ListResponse[AgentInstance].model_validate({"status": "success", "summaries": []})


def test_span_response_exposes_control() -> None:
    parsed = SpanResponse.model_validate(
        {
            "status": "success",
            "details": {
                "type": "agent_span",
                "id": "s",
                "agent_instance_id": "i",
                "schema_name": "x",
                "status": "active",
            },
            "control": {"terminate": True, "reason": "stop"},
        }
    )
    assert parsed.control is not None and parsed.control.reason == "stop"


def test_quality_schema_reads_the_schema_key() -> None:
    parsed = QualitySchemaForCreate.model_validate({"name": "q", "schema": {"type": "object"}})
    assert parsed.schema_ == {"type": "object"}


def test_active_span_with_finished_at_is_refused() -> None:
    with pytest.raises(ValidationError, match="finished_at"):
        SpanDetailsForCreate.model_validate(
            {
                "agent_instance_id": "i",
                "schema_name": "x",
                "status": "active",
                "finished_at": "2024-01-01T00:00:00Z",
            }
        )


@pytest.mark.parametrize(
    "items",
    [
        pytest.param([], id="empty"),
        pytest.param([{"_type": "x", "idempotency_key": "short"}], id="key-too-short"),
        pytest.param(
            [
                {"_type": "x", "idempotency_key": "k" * 8},
                {"_type": "y", "idempotency_key": "k" * 8},
            ],
            id="duplicate-keys",
        ),
    ],
)
def test_bulk_request_refuses_bad_item_lists(items: list[dict[str, str]]) -> None:
    with pytest.raises(ValidationError):
        BulkRequest.model_validate({"items": items})
