"""Store: idempotency keys: replays answer the original, changed bodies conflict."""

from __future__ import annotations

import pytest
from server_helpers import Register, span_body

from prefactor.server.store import ApiProblem, Store


def test_register_replay_returns_the_original_instance_and_creates_nothing(store: Store) -> None:
    body = {"agent_id": "a", "idempotency_key": "register-1"}
    first = store.register_instance(body)
    assert store.register_instance(body) == first
    assert store.list_instances()["pagination"]["item_count"] == 1


def test_register_replay_with_a_different_body_answers_409_idempotency_conflict(
    store: Store,
) -> None:
    store.register_instance({"agent_id": "a", "idempotency_key": "register-1"})
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"agent_id": "b", "idempotency_key": "register-1"})
    assert (caught.value.status, caught.value.code) == (409, "idempotency_conflict")


def test_finish_replay_answers_the_original_even_though_now_terminal(
    store: Store, register: Register
) -> None:
    instance_id = register()
    body = {"status": "failed", "idempotency_key": "finish-1"}
    first = store.finish_instance(instance_id, body)
    assert store.finish_instance(instance_id, body) == first


def test_same_key_on_another_instance_is_a_different_request(
    store: Store, register: Register
) -> None:
    store.start_instance(register(start=False), {"idempotency_key": "start-1"})
    with pytest.raises(ApiProblem) as caught:
        store.start_instance(register(start=False), {"idempotency_key": "start-1"})
    assert caught.value.code == "idempotency_conflict"


def test_keys_are_scoped_per_operation(store: Store, register: Register) -> None:
    instance_id = register(start=False)
    store.start_instance(instance_id, {"idempotency_key": "shared-key"})
    assert (
        store.finish_instance(instance_id, {"idempotency_key": "shared-key"})["details"]["status"]
        == "complete"
    )


def test_span_create_replay_returns_the_original_span(store: Store, register: Register) -> None:
    body = span_body(register(), idempotency_key="create-1")
    first = store.create_span(body)
    assert store.create_span(body) == first


def test_span_create_key_inside_details_and_top_level_share_one_scope(
    store: Store, register: Register
) -> None:
    body = span_body(register(), idempotency_key="create-1")
    first = store.create_span(body)
    details = {k: v for k, v in body["details"].items() if k != "idempotency_key"}
    assert store.create_span({"details": details, "idempotency_key": "create-1"}) == first


def test_span_create_top_level_key_wins_over_the_details_key(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.create_span(span_body(instance_id, idempotency_key="inner-1"))
    body = span_body(instance_id, idempotency_key="inner-1")
    body["idempotency_key"] = "outer-1"
    assert (
        store.create_span(body)["details"]["id"]
        != store.create_span(span_body(instance_id, idempotency_key="inner-1"))["details"]["id"]
    )


def test_span_finish_replay_after_finish_answers_the_original(
    store: Store, register: Register
) -> None:
    span_id = store.create_span(span_body(register()))["details"]["id"]
    body = {"status": "complete", "idempotency_key": "finish-s"}
    first = store.finish_span(span_id, body)
    assert store.finish_span(span_id, body) == first


def test_a_failed_request_does_not_consume_its_key(store: Store, register: Register) -> None:
    instance_id = register()
    with pytest.raises(ApiProblem):
        store.record_quality(
            instance_id, {"name": "", "payload": {"score": 1}, "idempotency_key": "quality-1"}
        )
    fixed = {"name": "accuracy", "payload": {"score": 1}, "idempotency_key": "quality-1"}
    assert store.record_quality(instance_id, fixed)["status"] == "success"


@pytest.mark.parametrize(
    "key", [pytest.param("k" * 65, id="too-long"), pytest.param("", id="empty")]
)
def test_a_key_outside_1_to_64_characters_answers_422(store: Store, key: str) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"idempotency_key": key})
    assert list(caught.value.errors or {}) == ["idempotency_key"]


def test_a_bulk_create_and_the_rest_route_share_the_key_scope(
    store: Store, register: Register
) -> None:
    body = span_body(register())
    item = {"_type": "agent_spans/create", "idempotency_key": "create-bulk-1", **body}
    output = store.bulk({"items": [item]})["outputs"]["create-bulk-1"]
    assert store.create_span({**body, "idempotency_key": "create-bulk-1"}) == output


def test_span_create_replay_after_finish_answers_the_span_as_created(
    store: Store, register: Register
) -> None:
    declared = [{"side": "params", "path": "$.x", "reason": "cut"}]
    body = span_body(register(), idempotency_key="create-1", schema_violations=declared)
    first = store.create_span(body)
    store.finish_span(
        first["details"]["id"], {"result_payload": {"text": 1}, "schema_violations": []}
    )
    assert store.create_span(body) == first


def test_span_create_replay_keeps_the_original_control(store: Store, register: Register) -> None:
    instance_id = register()
    store.terminate_instance(instance_id, {"reason": "halt"})
    body = span_body(
        instance_id, status="complete", result_payload={"text": "t"}, idempotency_key="create-1"
    )
    first = store.create_span(body)
    assert first["control"] == {"terminate": True, "reason": "halt"}
    assert store.create_span(body) == first
