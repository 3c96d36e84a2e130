"""Store: span lifecycles, parents, schema validation, the violations extension, control."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import GOOD_PAYLOAD, Register, span_body

from prefactor._ids import generate_pfid
from prefactor.server.store import ApiProblem, Store

BAD_ROLE = {"model": "m", "messages": [{"role": "bot", "content": "c"}]}


def _create(store: Store, instance_id: str, **details: Any) -> dict[str, Any]:
    response: dict[str, Any] = store.create_span(span_body(instance_id, **details))
    return response


def _problem(call: Any, *args: Any) -> ApiProblem:
    with pytest.raises(ApiProblem) as caught:
        call(*args)
    return caught.value


def test_create_active_span_echoes_what_was_sent(store: Store, register: Register) -> None:
    instance_id = register()
    details = _create(store, instance_id)["details"]
    assert (details["status"], details["payload"], details["finished_at"]) == (
        "active",
        GOOD_PAYLOAD,
        None,
    )
    assert (details["schema_title"], details["summary"]) == ("LLM call", "gpt-4o call")


def test_finish_active_span_stores_status_and_result(store: Store, register: Register) -> None:
    span_id = _create(store, register())["details"]["id"]
    body = {
        "status": "failed",
        "result_payload": {"text": "x"},
        "timestamp": "2026-02-09T00:00:01.000Z",
    }
    details = store.finish_span(span_id, body)["details"]
    assert (details["status"], details["result_payload"], details["finished_at"]) == (
        "failed",
        {"text": "x"},
        "2026-02-09T00:00:01.000000Z",
    )


def test_pending_span_may_be_cancelled(store: Store, register: Register) -> None:
    span_id = _create(store, register(), status="pending")["details"]["id"]
    assert store.finish_span(span_id, {"status": "cancelled"})["details"]["status"] == "cancelled"


@pytest.mark.parametrize("status", ["complete", "failed"])
def test_finishing_a_pending_span_other_than_cancelled_answers_409_invalid_action(
    store: Store, register: Register, status: str
) -> None:
    span_id = _create(store, register(), status="pending")["details"]["id"]
    problem = _problem(store.finish_span, span_id, {"status": status})
    assert (problem.status, problem.code) == (409, "invalid_action")


def test_finish_on_finished_span_answers_409_invalid_action(
    store: Store, register: Register
) -> None:
    span_id = _create(store, register())["details"]["id"]
    store.finish_span(span_id, {})
    problem = _problem(store.finish_span, span_id, {"status": "cancelled"})
    assert (problem.status, problem.code) == (409, "invalid_action")


@pytest.mark.parametrize("status", ["complete", "failed", "cancelled"])
def test_span_created_terminal_gets_a_finished_at(
    store: Store, register: Register, status: str
) -> None:
    details = _create(store, register(), status=status, result_payload={"text": "t"})["details"]
    assert details["status"] == status and details["finished_at"] is not None


def test_finish_of_an_unknown_span_answers_404(store: Store) -> None:
    assert _problem(store.finish_span, generate_pfid(), {}).status == 404


def test_span_on_an_unknown_instance_answers_404(store: Store) -> None:
    assert _problem(store.create_span, span_body(generate_pfid())).code == "not_found"


def test_span_may_be_created_on_a_pending_instance(store: Store, register: Register) -> None:
    assert _create(store, register(start=False))["details"]["status"] == "active"


def test_child_span_records_its_parent(store: Store, register: Register) -> None:
    instance_id = register()
    parent = _create(store, instance_id)["details"]["id"]
    assert _create(store, instance_id, parent_span_id=parent)["details"]["parent_span_id"] == parent


def test_unknown_parent_answers_422_naming_parent_span_id(store: Store, register: Register) -> None:
    problem = _problem(store.create_span, span_body(register(), parent_span_id=generate_pfid()))
    assert (problem.status, list(problem.errors or {})) == (422, ["parent_span_id"])


def test_parent_in_another_instance_answers_422(store: Store, register: Register) -> None:
    other_parent = _create(store, register())["details"]["id"]
    problem = _problem(store.create_span, span_body(register(), parent_span_id=other_parent))
    assert list(problem.errors or {}) == ["parent_span_id"]


def test_caller_chosen_span_id_must_be_a_pfid(store: Store, register: Register) -> None:
    problem = _problem(store.create_span, span_body(register(), id="span-1"))
    assert list(problem.errors or {}) == ["id"]


def test_reusing_a_span_id_answers_409(store: Store, register: Register) -> None:
    instance_id, span_id = register(), generate_pfid()
    _create(store, instance_id, id=span_id)
    assert _problem(store.create_span, span_body(instance_id, id=span_id)).status == 409


def test_unknown_schema_name_is_stored_with_a_violation_naming_it(
    store: Store, register: Register
) -> None:
    details = _create(store, register(), schema_name="agent:nope")["details"]
    assert (details["schema_name"], details["schema_title"]) == ("agent:nope", "agent:nope")
    assert details["schema_violations"] == [
        {
            "side": "params",
            "path": "$",
            "reason": "'agent:nope' is not a span type of this schema version",
        }
    ]


def test_invalid_payload_is_stored_with_violations_at_their_json_paths(
    store: Store, register: Register
) -> None:
    instance_id = register()
    created = _create(store, instance_id, payload=BAD_ROLE)["details"]
    (stored,) = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert stored == created
    assert (stored["payload"], stored["schema_violations"]) == (
        BAD_ROLE,
        [
            {
                "side": "params",
                "path": "$.messages[0].role",
                "reason": "'bot' is not one of ['user', 'assistant', 'system']",
            }
        ],
    )


def test_invalid_result_on_finish_is_stored_with_its_violations(
    store: Store, register: Register
) -> None:
    span_id = _create(store, register())["details"]["id"]
    details = store.finish_span(span_id, {"result_payload": {"text": 1}})["details"]
    assert (details["status"], details["result_payload"]) == ("complete", {"text": 1})
    assert details["schema_violations"] == [
        {"side": "result", "path": "$.text", "reason": "1 is not of type 'string'"}
    ]


def test_invalid_result_on_a_complete_create_is_stored_flagged(
    store: Store, register: Register
) -> None:
    details = _create(store, register(), status="complete", result_payload={})["details"]
    assert details["schema_violations"] == [
        {"side": "result", "path": "$", "reason": "'text' is a required property"}
    ]


ERROR_RECORD = {"error": {"type": "ValueError", "message": "boom"}}


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_the_result_of_a_span_created_failed_or_cancelled_is_never_checked(
    store: Store, register: Register, status: str
) -> None:
    details = _create(store, register(), status=status, result_payload=ERROR_RECORD)["details"]
    assert (details["status"], details["result_payload"]) == (status, ERROR_RECORD)
    assert details["schema_violations"] is None


@pytest.mark.parametrize("status", ["failed", "cancelled"])
def test_the_result_of_a_span_finished_failed_or_cancelled_is_never_checked(
    store: Store, register: Register, status: str
) -> None:
    instance_id = register()
    span_id = _create(store, instance_id)["details"]["id"]
    store.finish_span(span_id, {"status": status, "result_payload": ERROR_RECORD})
    (stored,) = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert (stored["status"], stored["result_payload"]) == (status, ERROR_RECORD)
    assert stored["schema_violations"] is None


def test_the_params_of_a_failed_span_are_still_checked(store: Store, register: Register) -> None:
    body = {"status": "failed", "payload": BAD_ROLE, "result_payload": ERROR_RECORD}
    details = _create(store, register(), **body)["details"]
    assert [(v["side"], v["path"]) for v in details["schema_violations"]] == [
        ("params", "$.messages[0].role")
    ]


def test_a_flagged_create_keeps_its_violations_when_finished_with_a_bad_result(
    store: Store, register: Register
) -> None:
    span_id = _create(store, register(), payload=BAD_ROLE)["details"]["id"]
    details = store.finish_span(span_id, {"result_payload": {}})["details"]
    assert [(v["side"], v["path"]) for v in details["schema_violations"]] == [
        ("params", "$.messages[0].role"),
        ("result", "$"),
    ]


def test_children_of_a_failed_parent_are_stored_under_it(store: Store, register: Register) -> None:
    instance_id = register()
    parent = _create(store, instance_id, status="failed", result_payload=ERROR_RECORD)["details"]
    child = _create(store, instance_id, parent_span_id=parent["id"])["details"]
    store.finish_span(child["id"], {"result_payload": {"text": "t"}})
    stored = {s["id"]: s for s in store.list_spans(agent_instance_id=instance_id)["summaries"]}
    assert (stored[child["id"]]["parent_span_id"], stored[child["id"]]["status"]) == (
        parent["id"],
        "complete",
    )


def test_open_schema_version_accepts_any_span_type_unvalidated(
    store: Store, register: Register
) -> None:
    details = _create(store, register(schema=None), schema_name="x:y", payload={"a": 1})["details"]
    assert (details["schema_name"], details["schema_violations"]) == ("x:y", None)


def test_declared_violations_store_the_span_with_the_stores_own_findings(
    store: Store, register: Register
) -> None:
    declared = [{"side": "params", "path": "$.whatever", "reason": "client says"}]
    details = _create(store, register(), payload=BAD_ROLE, schema_violations=declared)["details"]
    assert details["schema_violations"] == [
        {
            "side": "params",
            "path": "$.messages[0].role",
            "reason": "'bot' is not one of ['user', 'assistant', 'system']",
        }
    ]


def test_declared_violations_are_kept_when_the_store_finds_none(
    store: Store, register: Register
) -> None:
    declared = [{"side": "params", "path": "$.x", "reason": "truncated"}]
    assert (
        _create(store, register(), schema_violations=declared)["details"]["schema_violations"]
        == declared
    )


def test_declared_violations_allow_an_unknown_schema_name(store: Store, register: Register) -> None:
    body = span_body(register(), schema_name="agent:new", schema_violations=[])
    violations = store.create_span(body)["details"]["schema_violations"]
    assert [v["side"] for v in violations] == ["params"]


def test_declared_violations_on_finish_store_a_bad_result(store: Store, register: Register) -> None:
    span_id = _create(store, register())["details"]["id"]
    details = store.finish_span(span_id, {"result_payload": {"text": 1}, "schema_violations": []})
    assert [v["path"] for v in details["details"]["schema_violations"]] == ["$.text"]


def test_span_writes_after_terminate_carry_control(store: Store, register: Register) -> None:
    instance_id = register()
    open_span = _create(store, instance_id)["details"]["id"]
    store.terminate_instance(instance_id, {"reason": "over budget"})
    expected = {"terminate": True, "reason": "over budget"}
    assert _create(store, instance_id)["control"] == expected
    assert store.finish_span(open_span, {})["control"] == expected


def test_span_writes_before_terminate_carry_no_control(store: Store, register: Register) -> None:
    assert "control" not in _create(store, register())


def test_span_counts_follow_every_status(store: Store, register: Register) -> None:
    instance_id = register()
    _create(store, instance_id)
    _create(store, instance_id, status="pending")
    done = _create(store, instance_id)["details"]["id"]
    store.finish_span(done, {"status": "failed"})
    _create(store, instance_id, status="cancelled")
    _create(store, instance_id, status="complete", result_payload={"text": "t"})
    counts = store.get_instance(instance_id)["details"]["span_counts"]
    assert counts == {
        "total": 5,
        "pending": 1,
        "active": 1,
        "complete": 1,
        "failed": 1,
        "cancelled": 1,
        "finished": 3,
    }


def test_list_spans_orders_by_started_at(store: Store, register: Register) -> None:
    instance_id = register()
    late = _create(store, instance_id, started_at="2026-01-01T00:00:02Z")["details"]["id"]
    early = _create(store, instance_id, started_at="2026-01-01T00:00:01Z")["details"]["id"]
    listed = store.list_spans(agent_instance_id=instance_id)
    assert [s["id"] for s in listed["summaries"]] == [early, late]
    assert listed["pagination"]["item_count"] == 2


def test_list_spans_reads_back_finished_spans(store: Store, register: Register) -> None:
    instance_id = register()
    span_id = _create(store, instance_id)["details"]["id"]
    finished = store.finish_span(span_id, {"result_payload": {"text": "r"}})["details"]
    assert store.list_spans(agent_instance_id=instance_id)["summaries"] == [finished]


def test_list_spans_of_an_unknown_instance_answers_404(store: Store) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.list_spans(agent_instance_id="nope")
    assert caught.value.status == 404
