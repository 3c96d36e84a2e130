"""The hand-written span details check gives the model's verdict on every shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from prefactor._api.models import SpanDetailsForCreate
from prefactor.server.store import ApiProblem
from prefactor.server.store_spans import SpanFields, check_span_details

BASE: dict[str, Any] = {"agent_instance_id": "i", "schema_name": "a:b", "status": "active"}

CASES = [
    pytest.param({}, id="minimal"),
    pytest.param({"payload": {"x": 1}, "id": "s", "parent_span_id": "p"}, id="full-open"),
    pytest.param(
        {"status": "complete", "result_payload": {}, "finished_at": "2026-01-01T00:00:00Z"},
        id="terminal",
    ),
    pytest.param({"started_at": "2026-01-01T00:00:00.123+00:00"}, id="ts-offset"),
    pytest.param({"started_at": "2026-01-01T00:00:00"}, id="ts-naive"),
    pytest.param({"started_at": datetime(2026, 1, 1, tzinfo=UTC)}, id="ts-datetime"),
    pytest.param({"started_at": "later"}, id="ts-bad"),
    pytest.param({"started_at": 5}, id="ts-int"),
    pytest.param({"status": "done"}, id="bad-status"),
    pytest.param({"status": "terminated"}, id="terminated-status"),
    pytest.param({"schema_name": ""}, id="empty-name"),
    pytest.param({"schema_name": 3}, id="int-name"),
    pytest.param({"agent_instance_id": None}, id="null-instance"),
    pytest.param({"payload": [1]}, id="list-payload"),
    pytest.param({"payload": None}, id="null-payload"),
    pytest.param({"result_payload": {}}, id="result-on-active"),
    pytest.param({"finished_at": "2026-01-01T00:00:00Z"}, id="finished-on-active"),
    pytest.param({"idempotency_key": "k" * 64}, id="key-64"),
    pytest.param({"idempotency_key": "k" * 65}, id="key-65"),
    pytest.param({"idempotency_key": ""}, id="key-empty"),
    pytest.param({"id": 7}, id="int-id"),
    pytest.param(
        {"schema_violations": [{"side": "params", "path": "$", "reason": "r"}]}, id="violations"
    ),
    pytest.param(
        {"schema_violations": [{"side": "elsewhere", "path": "$", "reason": "r"}]},
        id="bad-violation",
    ),
    pytest.param({"sensitive_encoding": True}, id="extra-key"),
]


@pytest.mark.parametrize("extra", CASES)
def test_fast_check_and_model_agree(extra: dict[str, Any]) -> None:
    details = {**BASE, **extra}
    try:
        model = SpanDetailsForCreate.model_validate(details)
    except ValidationError:
        with pytest.raises(ApiProblem):
            check_span_details(details)
        return
    violations = model.schema_violations
    expected = SpanFields(
        model.agent_instance_id,
        model.schema_name,
        model.status,
        model.payload,
        model.result_payload,
        model.id,
        model.parent_span_id,
        model.started_at,
        model.finished_at,
        model.idempotency_key,
        None if violations is None else [v.model_dump() for v in violations],
    )
    assert check_span_details(details) == expected


def test_missing_fields_answer_the_models_errors() -> None:
    with pytest.raises(ApiProblem) as caught:
        check_span_details({"status": "active"})
    assert set(caught.value.errors or {}) == {"agent_instance_id", "schema_name"}
