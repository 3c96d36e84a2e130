"""Store: registering instances, their state machine, quality, listing and persistence."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from server_helpers import SCHEMA_VERSION, Register

from prefactor import PrefactorError
from prefactor._api.models import AgentSchemaVersionForRegister
from prefactor._ids import generate_pfid, is_pfid
from prefactor.server.store import ApiProblem, Store
from prefactor.server.store_schemas import SchemaProblems, SchemaSet


def test_register_creates_a_pending_instance_with_every_id(store: Store) -> None:
    details = store.register_instance({"agent_id": "agent-1", "agent_version": {}})["details"]
    assert details["status"] == "pending"
    ids = ("id", "account_id", "agent_version_id", "environment_id", "agent_deployment_id")
    assert all(is_pfid(details[k]) for k in ids)
    assert details["agent_id"] == "agent-1"
    assert details["purpose"] == "live"


def test_register_without_agent_id_uses_the_default_agent(store: Store) -> None:
    assert store.register_instance({})["details"]["agent_id"] == "default-agent"


def test_register_keeps_a_caller_chosen_pfid(store: Store) -> None:
    chosen = generate_pfid()
    assert store.register_instance({"id": chosen})["details"]["id"] == chosen


def test_register_with_an_id_that_is_not_a_pfid_answers_422(store: Store) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"id": "inst-1"})
    assert (caught.value.status, list(caught.value.errors or {})) == (422, ["id"])


def test_register_reuses_the_agent_version_by_external_identifier(store: Store) -> None:
    body = {"agent_id": "a", "agent_version": {"external_identifier": "v1"}}
    first = store.register_instance(body)["details"]["agent_version_id"]
    assert store.register_instance(body)["details"]["agent_version_id"] == first


def test_register_uses_the_given_environment(store: Store) -> None:
    assert store.register_instance({"environment_id": "env-x"})["details"]["environment_id"] == (
        "env-x"
    )


def test_reregistering_a_schema_identifier_with_other_content_answers_409(
    store: Store,
) -> None:
    store.register_instance({"agent_schema_version": SCHEMA_VERSION})
    changed = {**SCHEMA_VERSION, "span_schemas": {"other": {"type": "object"}}}
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"agent_schema_version": changed})
    assert (caught.value.status, caught.value.code) == (409, "conflict")
    assert "schemas-v1" in caught.value.message


def test_reregistering_a_schema_identifier_with_the_same_content_succeeds(store: Store) -> None:
    store.register_instance({"agent_schema_version": SCHEMA_VERSION})
    assert store.register_instance({"agent_schema_version": SCHEMA_VERSION})["status"] == "success"


def test_register_with_a_malformed_schema_answers_422_naming_it(store: Store) -> None:
    bad = {"span_type_schemas": [{"name": "x", "params_schema": {"type": "nope"}}]}
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"agent_schema_version": bad})
    assert caught.value.status == 422
    assert list(caught.value.errors or {}) == [
        "agent_schema_version.span_type_schemas.x.params_schema"
    ]


def test_register_with_a_wrongly_typed_field_answers_422_with_its_path(store: Store) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.register_instance({"purpose": "fun"})
    assert (caught.value.code, list(caught.value.errors or {})) == ("validation_error", ["purpose"])


def _drive(store: Store, instance_id: str, steps: list[tuple[str, dict[str, Any]]]) -> None:
    for action, body in steps:
        getattr(store, f"{action}_instance")(instance_id, body)


START = ("start", {})
FINISH = ("finish", {})
TERMINATE = ("terminate", {"reason": "stop"})


@pytest.mark.parametrize(
    ("before", "action", "status"),
    [
        pytest.param([], START, "active", id="start-pending"),
        pytest.param([START], START, "active", id="start-active-is-noop"),
        pytest.param([START, FINISH], START, "complete", id="start-complete-is-noop"),
        pytest.param([FINISH], START, "complete", id="start-finished-pending-is-noop"),
        pytest.param([TERMINATE], START, "terminated", id="start-terminated-is-noop"),
        pytest.param([], FINISH, "complete", id="finish-pending"),
        pytest.param([START], FINISH, "complete", id="finish-default-complete"),
        pytest.param([START], ("finish", {"status": "failed"}), "failed", id="finish-failed"),
        pytest.param([START], ("finish", {"status": "cancelled"}), "cancelled", id="cancel"),
        pytest.param([], TERMINATE, "terminated", id="terminate-pending"),
        pytest.param([START], TERMINATE, "terminated", id="terminate-active"),
    ],
)
def test_legal_instance_transitions_reach_their_status(
    store: Store, register: Register, before: list[Any], action: Any, status: str
) -> None:
    instance_id = register(start=False)
    _drive(store, instance_id, before)
    name, body = action
    assert getattr(store, f"{name}_instance")(instance_id, body)["details"]["status"] == status


def test_a_start_after_the_finish_answers_the_instance_as_it_is(
    store: Store, register: Register
) -> None:
    instance_id = register(start=False)
    finished = store.finish_instance(instance_id, {"status": "failed"})["details"]
    late = store.start_instance(instance_id, {"timestamp": "2026-01-01T00:00:00Z"})["details"]
    assert late == finished


@pytest.mark.parametrize(
    ("before", "action"),
    [
        pytest.param([START, FINISH], FINISH, id="finish-complete"),
        pytest.param([TERMINATE], FINISH, id="finish-terminated"),
        pytest.param([FINISH], TERMINATE, id="terminate-complete"),
        pytest.param([TERMINATE], TERMINATE, id="terminate-terminated"),
    ],
)
def test_illegal_instance_transitions_answer_409_conflict(
    store: Store, register: Register, before: list[Any], action: Any
) -> None:
    instance_id = register(start=False)
    _drive(store, instance_id, before)
    with pytest.raises(ApiProblem) as caught:
        _drive(store, instance_id, [action])
    assert (caught.value.status, caught.value.code) == (409, "conflict")


def test_start_uses_the_given_timestamp(store: Store, register: Register) -> None:
    instance_id = register(start=False)
    details = store.start_instance(instance_id, {"timestamp": "2026-02-09T00:00:00.000Z"})
    assert details["details"]["started_at"] == "2026-02-09T00:00:00.000000Z"


def test_terminate_records_the_reason(store: Store, register: Register) -> None:
    instance_id = register()
    details = store.terminate_instance(instance_id, {"reason": "budget"})["details"]
    assert details["termination_reason"] == "budget"


@pytest.mark.parametrize(
    ("method", "body"),
    [
        pytest.param("start_instance", {}, id="start"),
        pytest.param("finish_instance", {}, id="finish"),
        pytest.param("terminate_instance", {"reason": "x"}, id="terminate"),
        pytest.param("record_quality", {"name": "accuracy", "payload": None}, id="quality"),
    ],
)
def test_writes_on_an_unknown_instance_answer_404(
    store: Store, method: str, body: dict[str, Any]
) -> None:
    with pytest.raises(ApiProblem) as caught:
        getattr(store, method)(generate_pfid(), body)
    assert (caught.value.status, caught.value.code) == (404, "not_found")


def test_get_of_an_unknown_instance_answers_404(store: Store) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.get_instance("nope")
    assert caught.value.status == 404


def test_record_quality_stores_the_payload_and_its_summary(
    store: Store, register: Register
) -> None:
    instance_id = register()
    details = store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.5}})
    assert details["details"]["quality_payloads"] == {"accuracy": {"score": 0.5}}
    assert details["details"]["quality_summaries"] == {"accuracy": "score 0.5"}


def test_record_quality_with_null_payload_removes_it(store: Store, register: Register) -> None:
    instance_id = register()
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.5}})
    details = store.record_quality(instance_id, {"name": "accuracy", "payload": None})["details"]
    assert (details["quality_payloads"], details["quality_summaries"]) == ({}, {})


def test_record_quality_of_an_unknown_name_is_stored_and_flagged(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.record_quality(instance_id, {"name": "speed", "payload": {"s": 1}})
    details = store.get_instance(instance_id)["details"]
    assert details["quality_payloads"] == {"speed": {"s": 1}}
    assert details["quality_violations"] == {
        "speed": [{"path": "$", "reason": "'speed' is not a quality schema of this version"}]
    }


def test_record_quality_with_an_invalid_payload_is_stored_with_its_violations(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 3}})
    details = store.get_instance(instance_id)["details"]
    assert details["quality_payloads"] == {"accuracy": {"score": 3}}
    assert details["quality_violations"] == {
        "accuracy": [{"path": "$.score", "reason": "3 is greater than the maximum of 1"}]
    }


def test_a_valid_quality_payload_clears_the_flags_of_the_one_it_replaces(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 3}})
    details = store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 1}})
    assert (details["details"]["quality_payloads"], details["details"]["quality_violations"]) == (
        {"accuracy": {"score": 1}},
        {},
    )


def test_record_quality_on_an_open_schema_accepts_any_name(
    store: Store, register: Register
) -> None:
    instance_id = register(schema=None)
    details = store.record_quality(instance_id, {"name": "anything", "payload": {"x": 1}})
    assert details["details"]["quality_payloads"] == {"anything": {"x": 1}}


def test_list_instances_is_newest_first_and_filters_by_agent(store: Store) -> None:
    first = store.register_instance({"agent_id": "a"})["details"]["id"]
    second = store.register_instance({"agent_id": "a"})["details"]["id"]
    store.register_instance({"agent_id": "b"})
    listed = store.list_instances(agent_id="a")
    assert [s["id"] for s in listed["summaries"]] == [second, first]
    assert listed["sorting"] == {"field": "inserted_at", "direction": "desc"}


def test_list_instances_paginates(store: Store) -> None:
    for _ in range(5):
        store.register_instance({})
    page = store.list_instances(offset=2, page_size=2)
    assert len(page["summaries"]) == 2
    assert page["pagination"] == {
        "item_count": 5,
        "item_start": 3,
        "item_end": 4,
        "next_page_offset": 4,
        "previous_page_offset": 0,
        "page_count": 3,
        "page_index": 2,
        "page_offset": 2,
        "page_size": 2,
    }


def test_list_instances_with_a_bad_page_size_answers_422(store: Store) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.list_instances(page_size=0)
    assert list(caught.value.errors or {}) == ["pagination[page_size]"]


def test_a_file_store_keeps_instances_and_schemas_across_a_reopen(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "traces.db"
    first = Store(path)
    instance_id = first.register_instance({"agent_schema_version": SCHEMA_VERSION})["details"]["id"]
    first.close()
    reopened = Store(path)
    try:
        assert reopened.get_instance(instance_id)["details"]["id"] == instance_id
        details = {"agent_instance_id": instance_id, "schema_name": "nope", "status": "active"}
        created = reopened.create_span({"details": details})  # its schema version came from disk
        assert [v["path"] for v in created["details"]["schema_violations"]] == ["$"]
    finally:
        reopened.close()


def test_a_file_store_uses_the_wal_journal(tmp_path: Path) -> None:
    Store(tmp_path / "t.db").close()
    assert (tmp_path / "t.db").exists()
    with sqlite3.connect(tmp_path / "t.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_closed_store_refuses_calls(store: Store) -> None:
    store.close()
    with pytest.raises(RuntimeError):
        store.register_instance({})


def test_store_problems_are_prefactor_errors(store: Store) -> None:
    with pytest.raises(PrefactorError) as caught:
        store.get_instance("nope")
    assert (type(caught.value), caught.value.status) == (ApiProblem, 404)


def test_schema_problems_are_prefactor_errors() -> None:
    bad = AgentSchemaVersionForRegister.model_validate({"span_schemas": {"t:x": {"type": 5}}})
    with pytest.raises(PrefactorError) as caught:
        SchemaSet.from_definition(bad)
    assert (type(caught.value), list(caught.value.errors)) == (
        SchemaProblems,
        ["agent_schema_version.span_schemas.t:x"],
    )
