"""Store: bulk asked for minimal answers stores the same and answers status and control only."""

from __future__ import annotations

from server_helpers import GOOD_PAYLOAD, Register
from server_helpers import span_item as _span_item

from prefactor._ids import generate_pfid
from prefactor.server.store import Store


def test_minimal_bulk_answers_each_success_with_its_status_alone(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    items = [
        {
            "_type": "agent_instances/start",
            "idempotency_key": "start-01",
            "agent_instance_id": instance_id,
        },
        _span_item(instance_id, "create-01", id=span_id),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-01", "agent_span_id": span_id},
    ]
    outputs = store.bulk({"items": items}, details=False)["outputs"]
    assert outputs == {key: {"status": "success"} for key in ("start-01", "create-01", "finish-01")}


def test_minimal_bulk_stores_every_field_the_full_answer_would_echo(
    store: Store, register: Register
) -> None:
    instance_id, parent, child = register(), generate_pfid(), generate_pfid()
    started, finished = "2026-02-09T00:00:01.000000Z", "2026-02-09T00:00:02.500000Z"
    items = [
        _span_item(instance_id, "parent-01", id=parent),
        _span_item(
            instance_id,
            "child-001",
            id=child,
            parent_span_id=parent,
            status="complete",
            result_payload={"text": "ok"},
            started_at=started,
            finished_at=finished,
        ),
    ]
    store.bulk({"items": items}, details=False)
    stored = {s["id"]: s for s in store.list_spans(agent_instance_id=instance_id)["summaries"]}
    assert stored[child]["parent_span_id"] == parent
    assert (stored[child]["status"], stored[child]["result_payload"]) == (
        "complete",
        {"text": "ok"},
    )
    assert (stored[child]["started_at"], stored[child]["finished_at"]) == (started, finished)
    assert (stored[child]["payload"], stored[child]["summary"]) == (GOOD_PAYLOAD, "gpt-4o call")
    assert stored[parent]["status"] == "active"


def test_minimal_bulk_still_flags_a_span_that_breaks_its_schema(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    store.bulk(
        {"items": [_span_item(instance_id, "bad-00001", id=span_id, payload={})]}, details=False
    )
    (span,) = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert [v["side"] for v in span["schema_violations"]] == ["params", "params"]


def test_minimal_bulk_of_a_terminated_instance_carries_control(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    store.terminate_instance(instance_id, {"reason": "stop now"})
    items = [
        _span_item(instance_id, "create-01", id=span_id),
        {"_type": "agent_spans/finish", "idempotency_key": "finish-01", "agent_span_id": span_id},
    ]
    outputs = store.bulk({"items": items}, details=False)["outputs"]
    control = {"terminate": True, "reason": "stop now"}
    assert outputs == {
        "create-01": {"status": "success", "control": control},
        "finish-01": {"status": "success", "control": control},
    }


def test_minimal_bulk_answers_errors_in_full_and_stops_there(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    items = [
        _span_item(instance_id, "create-01", id=span_id),
        _span_item(instance_id, "create-02", id=span_id),
        _span_item(instance_id, "create-03"),
    ]
    outputs = store.bulk({"items": items}, details=False)["outputs"]
    assert list(outputs) == ["create-01", "create-02"]
    assert outputs["create-02"]["code"] == "conflict"
    assert outputs["create-02"]["message"] == f"agent span {span_id!r} already exists"
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 1


def test_a_full_replay_of_a_minimal_create_echoes_the_stored_span(
    store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    body = {"items": [_span_item(instance_id, "create-01", id=span_id)]}
    store.bulk(body, details=False)
    replayed = store.bulk(body)["outputs"]["create-01"]
    assert (replayed["details"]["id"], replayed["details"]["payload"]) == (span_id, GOOD_PAYLOAD)


def test_minimal_bulk_replay_with_another_body_is_an_idempotency_conflict(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.bulk({"items": [_span_item(instance_id, "create-01")]}, details=False)
    changed = _span_item(instance_id, "create-01", schema_name="agent:tool")
    output = store.bulk({"items": [changed]}, details=False)["outputs"]["create-01"]
    assert output["code"] == "idempotency_conflict"


def test_a_bulk_of_many_spans_stores_each_with_its_own_fields(
    store: Store, register: Register
) -> None:
    # 300 rows: several multi-row statements of spans and of keys, and a remainder.
    instance_id = register()
    ids = [generate_pfid() for _ in range(300)]
    items = [
        _span_item(
            instance_id,
            f"span-{i:05d}",
            id=span_id,
            payload={**GOOD_PAYLOAD, "model": f"m{i}"},
            started_at=f"2026-02-09T00:{i // 60:02d}:{i % 60:02d}.000000Z",
        )
        for i, span_id in enumerate(ids)
    ]
    store.bulk({"items": items}, details=False)
    spans = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert [(s["id"], s["payload"]["model"]) for s in spans] == [
        (span_id, f"m{i}") for i, span_id in enumerate(ids)
    ]
    assert store.bulk({"items": items}, details=False)["outputs"] == {
        item["idempotency_key"]: {"status": "success"} for item in items
    }
    assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 300
