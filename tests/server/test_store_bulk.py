"""Store: bulk requests: every item type, stop at the first error, one transaction."""

from __future__ import annotations

from typing import Any

import pytest
from server_helpers import SCHEMA_VERSION, Register
from server_helpers import span_item as _span_item

from prefactor._ids import generate_pfid
from prefactor.server.store import ApiProblem, Store


def test_bulk_runs_a_whole_instance_lifecycle(store: Store) -> None:
    instance_id, span_id = generate_pfid(), generate_pfid()
    items = [
        {
            "_type": "agent_instances/register",
            "idempotency_key": "reg-0001",
            "id": instance_id,
            "agent_schema_version": SCHEMA_VERSION,
        },
        {
            "_type": "agent_instances/start",
            "idempotency_key": "start-001",
            "agent_instance_id": instance_id,
        },
        _span_item(instance_id, "span-0001", id=span_id),
        {
            "_type": "agent_spans/finish",
            "idempotency_key": "span-fin1",
            "agent_span_id": span_id,
            "status": "complete",
            "result_payload": {"text": "ok"},
        },
        {
            "_type": "agent_instances/record_quality",
            "idempotency_key": "quality-1",
            "agent_instance_id": instance_id,
            "name": "accuracy",
            "payload": {"score": 1},
        },
        {
            "_type": "agent_instances/finish",
            "idempotency_key": "finish-01",
            "agent_instance_id": instance_id,
            "status": "complete",
        },
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert list(outputs) == [i["idempotency_key"] for i in items]
    assert {o["status"] for o in outputs.values()} == {"success"}
    details = store.get_instance(instance_id)["details"]
    assert (details["status"], details["span_counts"]["complete"]) == ("complete", 1)


def test_bulk_accepts_flat_span_create_items(store: Store, register: Register) -> None:
    instance_id = register()
    item = {
        "_type": "agent_spans/create",
        "idempotency_key": "flat-0001",
        "agent_instance_id": instance_id,
        "schema_name": "agent:tool",
        "status": "active",
        "payload": {},
    }
    output = store.bulk({"items": [item]})["outputs"]["flat-0001"]
    assert output["details"]["schema_name"] == "agent:tool"


def test_bulk_stops_at_the_first_error_and_keeps_earlier_effects(
    store: Store, register: Register
) -> None:
    instance_id = register()
    items = [
        _span_item(instance_id, "good-0001"),
        _span_item(instance_id, "bad-00001", parent_span_id=generate_pfid()),
        _span_item(instance_id, "never-001"),
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert list(outputs) == ["good-0001", "bad-00001"]
    assert (outputs["bad-00001"]["status"], outputs["bad-00001"]["code"]) == (
        "error",
        "validation_error",
    )
    assert list(outputs["bad-00001"]["errors"]) == ["parent_span_id"]
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 1


def test_a_failing_non_span_item_rolls_back_only_itself(store: Store, register: Register) -> None:
    instance_id = register()
    items = [
        _span_item(instance_id, "good-0001"),
        {
            "_type": "agent_instances/register",
            "idempotency_key": "reg-00001",
            "agent_id": "agent-1",
            "agent_schema_version": {**SCHEMA_VERSION, "span_schemas": {"x": {}}},
        },
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert outputs["reg-00001"]["code"] == "conflict"
    assert store.list_instances()["pagination"]["item_count"] == 1
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 1


def test_bulk_unknown_type_answers_an_unsupported_type_item_error(store: Store) -> None:
    outputs = store.bulk({"items": [{"_type": "agents/list", "idempotency_key": "list-0001"}]})
    assert outputs["outputs"]["list-0001"]["code"] == "unsupported_type"


def test_bulk_item_without_its_path_param_answers_an_item_error(store: Store) -> None:
    item = {"_type": "agent_instances/start", "idempotency_key": "start-001"}
    output = store.bulk({"items": [item]})["outputs"]["start-001"]
    assert output["errors"] == {"agent_instance_id": ["required string"]}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        pytest.param({"items": []}, "items", id="no-items"),
        pytest.param({}, "items", id="missing-items"),
        pytest.param({"items": [{"_type": "x"}]}, "items[0].idempotency_key", id="missing-key"),
        pytest.param(
            {"items": [{"_type": "x", "idempotency_key": "short"}]},
            "items[0].idempotency_key",
            id="short-key",
        ),
        pytest.param(
            {"items": [{"_type": "x", "idempotency_key": "k" * 65}]},
            "items[0].idempotency_key",
            id="long-key",
        ),
        pytest.param(
            {
                "items": [
                    {"_type": "x", "idempotency_key": "k" * 8},
                    {"_type": "y", "idempotency_key": "k" * 8},
                ]
            },
            "items[1].idempotency_key",
            id="duplicate-key",
        ),
        pytest.param({"items": [{"idempotency_key": "k" * 8}]}, "items[0]._type", id="no-type"),
    ],
)
def test_request_level_bulk_problems_answer_422(
    store: Store, body: dict[str, Any], field: str
) -> None:
    with pytest.raises(ApiProblem) as caught:
        store.bulk(body)
    assert caught.value.status == 422 and field in (caught.value.errors or {})


def test_bulk_of_1000_items_commits_once(store: Store, register: Register) -> None:
    instance_id = register()
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    items = [_span_item(instance_id, f"span-{i:05d}") for i in range(999)]
    items.append(
        {
            "_type": "agent_instances/finish",
            "idempotency_key": "finish-01",
            "agent_instance_id": instance_id,
        }
    )
    outputs = store.bulk({"items": items})["outputs"]
    store.set_trace_callback(None)
    assert len(outputs) == 1000 and outputs["finish-01"]["status"] == "success"
    assert [s for s in statements if s.strip().upper() == "COMMIT"] == ["COMMIT"]
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 999


@pytest.mark.parametrize(
    "details", [pytest.param(True, id="full"), pytest.param(False, id="minimal")]
)
def test_bulk_replay_answers_the_same_outputs_and_adds_nothing(
    store: Store, register: Register, details: bool
) -> None:
    instance_id = register()
    body = {"items": [_span_item(instance_id, f"span-{i:05d}") for i in range(3)]}
    first = store.bulk(body, details=details)
    assert store.bulk(body, details=details) == first
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 3


def test_bulk_span_items_of_a_terminated_instance_carry_control(
    store: Store, register: Register
) -> None:
    instance_id = register()
    items = [
        {
            "_type": "agent_instances/terminate",
            "idempotency_key": "term-0001",
            "agent_instance_id": instance_id,
            "reason": "stop now",
        },
        _span_item(instance_id, "span-00001"),
    ]
    output = store.bulk({"items": items})["outputs"]["span-00001"]
    assert output["control"] == {"terminate": True, "reason": "stop now"}


def test_bulk_child_may_reference_a_parent_created_earlier_in_the_batch(
    store: Store, register: Register
) -> None:
    instance_id, parent = register(), generate_pfid()
    items = [
        _span_item(instance_id, "parent-01", id=parent),
        _span_item(instance_id, "child-001", parent_span_id=parent),
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert outputs["child-001"]["details"]["parent_span_id"] == parent


def test_bulk_finish_of_a_span_created_earlier_in_the_batch_succeeds(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    items = [
        _span_item(instance_id, "create-01", id=span_id),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-01", "agent_span_id": span_id},
    ]
    assert store.bulk({"items": items})["outputs"]["finish-01"]["details"]["status"] == "complete"


def test_bulk_duplicate_span_ids_in_one_batch_stop_at_the_second(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    items = [
        _span_item(instance_id, "create-01", id=span_id),
        _span_item(instance_id, "create-02", id=span_id),
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert outputs["create-02"]["code"] == "conflict"
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 1


def test_bulk_stores_spans_that_break_their_schema_and_goes_on(
    store: Store, register: Register
) -> None:
    instance_id = register()
    items = [
        _span_item(instance_id, "flagged-1", payload={"model": 1}),
        _span_item(instance_id, "unknown-1", schema_name="agent:nope"),
        _span_item(instance_id, "healthy-1"),
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert [o["status"] for o in outputs.values()] == ["success"] * 3
    stored = {s["id"]: s for s in store.list_spans(agent_instance_id=instance_id)["summaries"]}
    flags = [
        [v["path"] for v in stored[o["details"]["id"]]["schema_violations"] or ()]
        for o in outputs.values()
    ]
    assert flags == [["$", "$.model"], ["$"], []]
