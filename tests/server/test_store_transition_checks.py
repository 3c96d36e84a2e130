"""The hand-written start/finish check gives the models' verdict on every shape."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from prefactor._api.models import (
    FinishInstanceRequest,
    StartInstanceRequest,
    TerminateInstanceRequest,
)
from prefactor.server.store import ApiProblem
from prefactor.server.store_instances import Transition, check_transition

MODELS: dict[str, type[BaseModel]] = {
    "agent_instances/start": StartInstanceRequest,
    "agent_instances/finish": FinishInstanceRequest,
    "agent_instances/terminate": TerminateInstanceRequest,
}

BODIES = [
    pytest.param({}, id="empty"),
    pytest.param({"timestamp": "2026-01-01T00:00:00.123456+00:00"}, id="sdk-timestamp"),
    pytest.param({"timestamp": "2026-01-01T00:00:00.123Z", "idempotency_key": "k"}, id="ms-z"),
    pytest.param({"timestamp": "2026-01-01T02:00:00+02:00"}, id="offset"),
    pytest.param({"timestamp": "2026-01-01T00:00:00"}, id="naive"),
    pytest.param({"timestamp": datetime(2026, 1, 1, tzinfo=UTC)}, id="datetime"),
    pytest.param({"timestamp": "2026-13-01T00:00:00.123456+00:00"}, id="bad-month"),
    pytest.param({"timestamp": "later"}, id="not-a-time"),
    pytest.param({"timestamp": 5}, id="int-time"),
    pytest.param({"timestamp": None, "status": None, "idempotency_key": None}, id="nulls"),
    pytest.param({"status": "complete"}, id="complete"),
    pytest.param({"status": "failed", "timestamp": "2026-01-01T00:00:00Z"}, id="failed"),
    pytest.param({"status": "cancelled"}, id="cancelled"),
    pytest.param({"status": "terminated"}, id="terminated"),
    pytest.param({"status": "done"}, id="unknown-status"),
    pytest.param({"status": 1}, id="int-status"),
    pytest.param({"idempotency_key": "k" * 64}, id="key-64"),
    pytest.param({"idempotency_key": "k" * 65}, id="key-65"),
    pytest.param({"idempotency_key": ""}, id="key-empty"),
    pytest.param({"idempotency_key": 7}, id="key-int"),
    pytest.param({"reason": "stop"}, id="reason"),
    pytest.param({"reason": 3}, id="int-reason"),
    pytest.param({"agent_instance_id": "x"}, id="extra-key"),
]


def _from_model(model: BaseModel) -> Transition:
    got = model.model_dump()
    return Transition(
        got.get("timestamp"), got.get("status"), got.get("reason"), got["idempotency_key"]
    )


@pytest.mark.parametrize("scope", list(MODELS))
@pytest.mark.parametrize("body", BODIES)
def test_fast_transition_check_and_model_agree(scope: str, body: dict[str, Any]) -> None:
    try:
        model = MODELS[scope].model_validate(body)
    except ValidationError:
        with pytest.raises(ApiProblem) as caught:
            check_transition(scope, body)
        assert caught.value.status == 422
        return
    assert check_transition(scope, body) == _from_model(model)


def test_a_refused_start_answers_the_models_errors() -> None:
    with pytest.raises(ApiProblem) as caught:
        check_transition("agent_instances/start", {"timestamp": "later", "status": "complete"})
    assert set(caught.value.errors or {}) == {"timestamp", "status"}


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(ApiProblem) as caught:
        check_transition("agent_instances/finish", [])  # type: ignore[arg-type]
    assert caught.value.errors == {"body": ["must be a JSON object"]}
