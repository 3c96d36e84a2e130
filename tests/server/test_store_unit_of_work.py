"""Store: a bulk request's unit of work (prefetched rows, rows inserted at commit) keeps every rule.

Each test runs on SQLite and on PostgreSQL and reads its results back from the store.
"""

from __future__ import annotations

from typing import Any

from server_helpers import SCHEMA_VERSION
from server_helpers import span_item as _span_item

from prefactor._ids import generate_pfid
from prefactor.server.store import ApiProblem, Store


def _root_call(instance_id: str, span_id: str, agent_id: str = "agent-1") -> list[dict[str, Any]]:
    """The items of one root call: register, start, an active span, its finish, finish."""
    return [
        {
            "_type": "agent_instances/register",
            "idempotency_key": f"{instance_id}-register",
            "id": instance_id,
            "agent_id": agent_id,
            "agent_version": {"external_identifier": "v1", "name": "A"},
            "agent_schema_version": SCHEMA_VERSION,
        },
        {
            "_type": "agent_instances/start",
            "idempotency_key": f"{instance_id}-start",
            "agent_instance_id": instance_id,
        },
        _span_item(instance_id, f"{span_id}-create", id=span_id),
        {
            "_type": "agent_spans/finish",
            "idempotency_key": f"{span_id}-finish",
            "agent_span_id": span_id,
            "result_payload": {"text": "ok"},
        },
        {
            "_type": "agent_instances/finish",
            "idempotency_key": f"{instance_id}-finish",
            "agent_instance_id": instance_id,
            "status": "failed",
        },
    ]


def _rows(store: Store, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    return store._read(lambda: [tuple(r) for r in store._conn.execute(sql, params).fetchall()])


def test_root_calls_in_one_bulk_answer_what_the_store_reads_back(store: Store) -> None:
    calls = [(generate_pfid(), generate_pfid()) for _ in range(3)]
    items = [item for instance_id, span_id in calls for item in _root_call(instance_id, span_id)]
    outputs = store.bulk({"items": items})["outputs"]
    for instance_id, span_id in calls:
        registered = outputs[f"{instance_id}-register"]["details"]
        assert (registered["status"], registered["span_counts"]["total"]) == ("pending", 0)
        started = outputs[f"{instance_id}-start"]["details"]
        assert (started["status"], started["started_at"] is not None) == ("active", True)
        finished = outputs[f"{instance_id}-finish"]["details"]
        assert finished == store.get_instance(instance_id)["details"]
        assert (finished["status"], finished["span_counts"]["complete"]) == ("failed", 1)
        span = store.list_spans(agent_instance_id=instance_id)["summaries"][0]
        assert span == outputs[f"{span_id}-finish"]["details"]


def test_a_replayed_root_call_bulk_answers_its_first_answers_and_adds_nothing(
    store: Store,
) -> None:
    items = _root_call(generate_pfid(), generate_pfid())
    first = store.bulk({"items": items})
    assert store.bulk({"items": items}) == first
    assert store.list_instances()["pagination"]["item_count"] == 1


def test_a_batch_keeps_the_items_before_a_conflicting_key_and_stops_there(store: Store) -> None:
    earlier, later, never = generate_pfid(), generate_pfid(), generate_pfid()
    first = store.bulk({"items": _root_call(earlier, generate_pfid())})["outputs"]
    replayed = _root_call(earlier, generate_pfid())[0]
    conflicting = {
        "_type": "agent_instances/start",
        "idempotency_key": f"{earlier}-start",
        "agent_instance_id": later,  # the key was used for another instance
    }
    items = [
        replayed,
        *_root_call(later, generate_pfid())[:3],
        conflicting,
        *_root_call(never, generate_pfid()),
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert outputs[replayed["idempotency_key"]] == first[replayed["idempotency_key"]]
    assert outputs[f"{earlier}-start"]["code"] == "idempotency_conflict"
    assert len(outputs) == 5  # nothing after the conflict ran
    kept = store.get_instance(later)["details"]
    assert (kept["status"], kept["span_counts"]["active"]) == ("active", 1)
    assert store.list_instances()["pagination"]["item_count"] == 2
    try:
        store.get_instance(never)
    except ApiProblem as problem:
        assert problem.status == 404
    else:
        raise AssertionError("an item after the failing one was applied")


def test_a_register_refused_in_a_batch_leaves_none_of_its_rows(store: Store) -> None:
    taken = {
        "_type": "agent_instances/register",
        "idempotency_key": "taken-0001",
        "agent_id": "agent-t",
        "external_identifier": "run-1",
    }
    refused = {
        "_type": "agent_instances/register",
        "idempotency_key": "refused-01",
        "agent_id": "agent-t",
        "external_identifier": "run-1",
        "environment_id": generate_pfid(),
        "agent_version": {"external_identifier": "v-new"},
        "agent_schema_version": {**SCHEMA_VERSION, "external_identifier": "schemas-new"},
    }
    outputs = store.bulk({"items": [taken, refused]})["outputs"]
    assert outputs["taken-0001"]["status"] == "success"
    assert outputs["refused-01"]["code"] == "conflict"
    assert _rows(store, "SELECT id FROM agent_versions WHERE external_identifier = 'v-new'") == []
    assert _rows(store, "SELECT id FROM schema_versions WHERE agent_id = 'agent-t'") == []
    assert (
        _rows(
            store, "SELECT id FROM deployments WHERE environment_id = ?", refused["environment_id"]
        )
        == []
    )


def test_an_external_identifier_registered_earlier_in_the_batch_is_taken(store: Store) -> None:
    items = [
        {
            "_type": "agent_instances/register",
            "idempotency_key": f"register-{n}",
            "agent_id": "agent-1",
            "external_identifier": "run-1",
        }
        for n in range(2)
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert outputs["register-0"]["status"] == "success"
    assert outputs["register-1"]["code"] == "conflict"
    assert store.list_instances()["pagination"]["item_count"] == 1


def test_a_bulk_of_root_calls_costs_a_few_statements_not_a_few_per_call(store: Store) -> None:
    store.bulk({"items": _root_call(generate_pfid(), generate_pfid())})  # the agent is known now
    items = []
    for _ in range(100):
        instance_id = generate_pfid()
        root = _root_call(instance_id, generate_pfid())
        items += [root[0], root[1], {**root[2], "details": {**root[2]["details"]}}, root[4]]
        items[-2]["details"]["status"] = "complete"
        items[-2]["details"]["result_payload"] = {"text": "ok"}
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    outputs = store.bulk({"items": items}, details=False)["outputs"]
    store.set_trace_callback(None)
    assert {o["status"] for o in outputs.values()} == {"success"}
    # Before the unit of work: about 33 statements per root call, 30 of them SELECT, UPDATE
    # or SAVEPOINT; now a handful of reads per request, and the rows go in at commit (on
    # SQLite the rows that do not fill a multi-row INSERT are traced one by one).
    others = [s for s in statements if not s.startswith(("INSERT INTO", "COPY "))]
    assert len(others) < 10, others
    assert store.list_instances(page_size=200)["pagination"]["item_count"] == 101


def test_a_root_call_reads_the_keys_of_its_four_scopes_in_one_query(store: Store) -> None:
    store.bulk({"items": _root_call(generate_pfid(), generate_pfid())})  # the agent is known now
    statements: list[str] = []
    store.set_trace_callback(statements.append)
    outputs = store.bulk({"items": _root_call(generate_pfid(), generate_pfid())}, details=False)
    store.set_trace_callback(None)
    assert [o["status"] for o in outputs["outputs"].values()] == ["success"] * 5
    assert len([s for s in statements if "FROM idempotency" in s]) == 1, statements


def test_a_key_stored_in_one_scope_is_no_replay_in_another(store: Store) -> None:
    instance_id, span_id = generate_pfid(), generate_pfid()
    first, second = _root_call(instance_id, span_id)[:2]
    store.bulk({"items": [first]})
    # The start reuses the register's key: a new request in its scope, not a replay.
    outputs = store.bulk({"items": [{**second, "idempotency_key": first["idempotency_key"]}]})
    started = outputs["outputs"][first["idempotency_key"]]
    assert (started["status"], started["details"]["status"]) == ("success", "active")
    assert _rows(store, "SELECT status FROM instances WHERE id = ?", instance_id) == [("active",)]
