"""Store: an instance operation's replay answers as the operation did, whatever changed since.

The store keeps a small memo under an instance operation's key and rebuilds
the answer from it; answers stored whole (by earlier releases) replay as stored.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
from server_helpers import Register, span_body, span_item

from prefactor._ids import generate_pfid
from prefactor.server.store import ApiProblem, Store

START_AT = "2026-02-09T00:00:00.000000Z"
FINISH_AT = "2026-02-09T00:02:00.000000Z"


def _run_on(store: Store, instance_id: str) -> None:
    """Change everything about an instance that an answer shows: spans, quality, status."""
    span_id = store.create_span(span_body(instance_id))["details"]["id"]
    store.create_span(span_body(instance_id, status="pending"))
    store.finish_span(span_id, {"status": "failed", "result_payload": {"error": "x"}})
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 2}})
    store.start_instance(instance_id, {})  # a no-op unless it is pending
    if store.get_instance(instance_id)["details"]["finished_at"] is None:
        store.terminate_instance(instance_id, {"reason": "later"})


def test_register_replay_after_the_instance_ran_answers_it_as_registered(store: Store) -> None:
    body = {"agent_id": "a", "idempotency_key": "register-1"}
    first = store.register_instance(body)
    then = store.get_instance(first["details"]["id"])  # the instance as the answer must show it
    _run_on(store, first["details"]["id"])
    assert (first, store.register_instance(body)) == (then, then)


def test_start_replay_answers_the_spans_and_times_it_answered_then(
    store: Store, register: Register
) -> None:
    instance_id = register(start=False)
    store.create_span(span_body(instance_id))
    body = {"timestamp": START_AT, "idempotency_key": "start-1"}
    first = store.start_instance(instance_id, body)
    then = store.get_instance(instance_id)  # the instance as the answer must show it
    _run_on(store, instance_id)
    assert (first, store.start_instance(instance_id, body)) == (then, then)


def test_finish_replay_after_later_spans_and_quality_answers_it_as_finished(
    store: Store, register: Register
) -> None:
    instance_id = register()
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.5}})
    store.create_span(span_body(instance_id, status="complete", result_payload={"text": "t"}))
    body = {"status": "failed", "timestamp": FINISH_AT, "idempotency_key": "finish-1"}
    first = store.finish_instance(instance_id, body)
    then = store.get_instance(instance_id)  # the instance as the answer must show it
    store.create_span(span_body(instance_id))
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.9}})
    assert (first, store.finish_instance(instance_id, body)) == (then, then)


def test_record_quality_replay_answers_the_payloads_and_flags_it_set(
    store: Store, register: Register
) -> None:
    instance_id = register()
    body = {"name": "accuracy", "payload": {"score": 7}, "idempotency_key": "quality-1"}
    first = store.record_quality(instance_id, body)
    then = store.get_instance(instance_id)  # the instance as the answer must show it
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.1}})
    store.finish_instance(instance_id, {})
    assert (first, store.record_quality(instance_id, body)) == (then, then)


def test_terminate_replay_answers_the_reason_and_time_it_set(
    store: Store, register: Register
) -> None:
    instance_id = register()
    body = {"reason": "budget", "idempotency_key": "terminate-1"}
    first = store.terminate_instance(instance_id, body)
    then = store.get_instance(instance_id)  # the instance as the answer must show it
    store.create_span(span_body(instance_id))
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.3}})
    assert (first, store.terminate_instance(instance_id, body)) == (then, then)


def test_a_late_start_replays_the_finished_instance_it_answered(
    store: Store, register: Register
) -> None:
    instance_id = register(start=False)
    store.finish_instance(instance_id, {"timestamp": FINISH_AT})
    body = {"timestamp": START_AT, "idempotency_key": "start-late"}
    first = store.start_instance(instance_id, body)
    then = store.get_instance(instance_id)  # the instance as the answer must show it
    store.record_quality(instance_id, {"name": "accuracy", "payload": {"score": 0.3}})
    store.create_span(span_body(instance_id))
    assert (first, store.start_instance(instance_id, body)) == (then, then)


@pytest.mark.parametrize(
    ("operation", "body", "other"),
    [
        pytest.param("start", {"timestamp": START_AT}, {"timestamp": FINISH_AT}, id="start"),
        pytest.param("finish", {"status": "failed"}, {"status": "cancelled"}, id="finish"),
        pytest.param("terminate", {"reason": "a"}, {"reason": "b"}, id="terminate"),
        pytest.param(
            "record_quality",
            {"name": "accuracy", "payload": {"score": 0.1}},
            {"name": "accuracy", "payload": {"score": 0.2}},
            id="record_quality",
        ),
    ],
)
def test_an_instance_key_replayed_with_another_body_answers_idempotency_conflict(
    store: Store, register: Register, operation: str, body: dict[str, Any], other: dict[str, Any]
) -> None:
    instance_id = register(start=False)
    call = getattr(store, f"{operation}_instance" if operation != "record_quality" else operation)
    call(instance_id, {**body, "idempotency_key": "key-1"})
    with pytest.raises(ApiProblem) as caught:
        call(instance_id, {**other, "idempotency_key": "key-1"})
    assert (caught.value.status, caught.value.code) == (409, "idempotency_conflict")


def _root_call(instance_id: str) -> list[dict[str, Any]]:
    return [
        {
            "_type": "agent_instances/register",
            "idempotency_key": "root-register",
            "id": instance_id,
        },
        {
            "_type": "agent_instances/start",
            "idempotency_key": "root-start",
            "agent_instance_id": instance_id,
            "timestamp": START_AT,
        },
        span_item(instance_id, "root-span", status="complete", result_payload={"text": "t"}),
        {
            "_type": "agent_instances/finish",
            "idempotency_key": "root-finish",
            "agent_instance_id": instance_id,
            "timestamp": FINISH_AT,
        },
    ]


def test_a_full_replay_of_a_minimal_root_call_answers_each_step_as_it_was(store: Store) -> None:
    instance_id = generate_pfid()
    items = _root_call(instance_id)
    store.bulk({"items": items}, details=False)
    now = store.get_instance(instance_id)["details"]
    outputs = store.bulk({"items": items})["outputs"]
    steps = [outputs[k]["details"] for k in ("root-register", "root-start", "root-finish")]
    assert [
        (s["status"], s["started_at"], s["finished_at"], s["span_counts"]["complete"])
        for s in steps
    ] == [
        ("pending", None, None, 0),
        ("active", START_AT, None, 0),
        ("complete", START_AT, FINISH_AT, 1),
    ]
    assert [s["updated_at"] == s["inserted_at"] for s in steps] == [True, False, False]
    assert steps[2] == now


def _on_database(target: str, backend: str, sql: str, *params: str) -> Any:
    """Run one statement (``?`` placeholders) on the store's database itself; its first row."""
    if backend == "sqlite":
        with sqlite3.connect(target) as conn:
            return conn.execute(sql, params).fetchone()
    with psycopg.connect(target, autocommit=True) as pg:
        cursor = pg.execute(sql.replace("?", "%s"), params)
        return cursor.fetchone() if cursor.description else None


def _store_whole_answer(target: str, backend: str, scope: str, key: str, answer: Any) -> None:
    """Store ``answer`` under a key as releases before the memo did: the whole answer's JSON."""
    text = orjson.dumps(answer).decode()
    sql = "UPDATE idempotency SET response = ? WHERE scope = ? AND key = ?"
    _on_database(target, backend, sql, text, scope, key)


@pytest.fixture
def file_store(db_target: str) -> Iterator[Store]:
    s = Store(db_target)
    yield s
    s.close()


@pytest.mark.parametrize(
    ("operation", "body"),
    [
        pytest.param("register", {"agent_id": "a"}, id="register"),
        pytest.param("start", {"timestamp": START_AT}, id="start"),
        pytest.param("finish", {"status": "failed"}, id="finish"),
        pytest.param("record_quality", {"name": "accuracy", "payload": {"score": 1}}, id="quality"),
    ],
)
def test_an_answer_stored_whole_by_an_earlier_release_replays_as_stored(
    file_store: Store, db_target: str, backend: str, operation: str, body: dict[str, Any]
) -> None:
    store = file_store
    instance_id = store.register_instance({})["details"]["id"]
    keyed = {**body, "idempotency_key": "old-key-1"}
    if operation == "register":
        first = store.register_instance(keyed)
        instance_id = first["details"]["id"]
        scope = "agent_instances/register"
    elif operation == "record_quality":
        first = store.record_quality(instance_id, keyed)
        scope = "agent_instances/record_quality"
    else:
        first = getattr(store, f"{operation}_instance")(instance_id, keyed)
        scope = f"agent_instances/{operation}"
    stored = {**first, "details": {**first["details"], "purpose": "as an old release stored it"}}
    _store_whole_answer(db_target, backend, scope, "old-key-1", stored)
    _run_on(store, instance_id)
    item = {"_type": scope, "idempotency_key": "old-key-1", **keyed}
    if operation != "register":
        item["agent_instance_id"] = instance_id
    assert store.bulk({"items": [item]})["outputs"]["old-key-1"] == stored


def test_a_minimal_replay_of_an_answer_stored_whole_answers_its_status_alone(
    file_store: Store, db_target: str, backend: str
) -> None:
    store = file_store
    first = store.register_instance({"idempotency_key": "old-key-1"})
    _store_whole_answer(db_target, backend, "agent_instances/register", "old-key-1", first)
    item = {"_type": "agent_instances/register", "idempotency_key": "old-key-1"}
    assert store.bulk({"items": [item]}, details=False)["outputs"]["old-key-1"] == {
        "status": "success"
    }


def test_an_instance_operation_stores_less_than_half_of_its_answer(
    file_store: Store, db_target: str, backend: str
) -> None:
    store = file_store
    answer = store.register_instance({"agent_id": "a", "idempotency_key": "size-1"})
    sql = "SELECT response FROM idempotency WHERE key = ?"
    (stored,) = _on_database(db_target, backend, sql, "size-1")
    assert len(stored) < len(orjson.dumps(answer)) / 2


RELEASE_FILE = Path(__file__).resolve().parents[1] / "data" / "store-0.1.0.db"


@pytest.mark.parametrize(
    ("scope", "key", "body"),
    [
        pytest.param(
            "agent_instances/start",
            "start-run-complete",
            {"timestamp": "2026-02-09T10:00:00Z"},
            id="start",
        ),
        pytest.param(
            "agent_instances/record_quality",
            "quality-run-complete",
            {"name": "accuracy", "payload": {"score": 0.9}},
            id="record_quality",
        ),
    ],
)
def test_a_release_0_1_0_file_replays_an_instance_key_with_the_answer_it_stored(
    tmp_path: Path, scope: str, key: str, body: dict[str, Any]
) -> None:
    copy = tmp_path / "traces.db"
    shutil.copyfile(RELEASE_FILE, copy)
    with sqlite3.connect(copy) as conn:
        (response,) = conn.execute(
            "SELECT response FROM idempotency WHERE scope = ? AND key = ?", (scope, key)
        ).fetchone()
    stored = orjson.loads(response)
    store = Store(copy)  # upgraded to the current layout as it opens
    try:
        item = {"_type": scope, "idempotency_key": key, **body}
        item["agent_instance_id"] = stored["details"]["id"]
        assert store.bulk({"items": [item]})["outputs"][key] == stored
    finally:
        store.close()
