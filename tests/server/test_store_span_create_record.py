"""A span create whose key is derived from its id (``{id}-create``, what the SDK sends).

On SQLite the span's own row records that key (one B-tree fewer per span); on
PostgreSQL the idempotency table keeps it, as it keeps every other key. Either
way the key answers exactly as any other: replays give the answer first given,
another body is a conflict, and keys stored by an earlier layout still replay.
"""

from __future__ import annotations

import runpy
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_helpers import in_schema
from server_helpers import GOOD_PAYLOAD, Register

from prefactor._ids import generate_pfid
from prefactor.server.store import Store

LAYOUT_4 = Path(__file__).resolve().parents[1] / "data" / "store-4.db"
LAYOUT_4_MAKER = LAYOUT_4.with_name("make_store_4.py")


def _item(instance_id: str, span_id: str, key: str | None = None, **extra: Any) -> dict[str, Any]:
    """A bulk span create item, flat as the SDK sends it, keyed ``{span_id}-create`` by default."""
    return {
        "_type": "agent_spans/create",
        "idempotency_key": key or f"{span_id}-create",
        "id": span_id,
        "agent_instance_id": instance_id,
        "schema_name": "agent:llm",
        "status": "active",
        "payload": GOOD_PAYLOAD,
        **extra,
    }


def _one(store: Store, item: dict[str, Any], *, details: bool = True) -> dict[str, Any]:
    output: dict[str, Any] = store.bulk({"items": [item]}, details=details)["outputs"][
        item["idempotency_key"]
    ]
    return output


def _rows(target: str, backend: str, sql: str) -> list[tuple[Any, ...]]:
    if backend == "sqlite":
        with sqlite3.connect(target) as conn:
            return conn.execute(sql).fetchall()
    with psycopg.connect(target) as pg:
        return pg.execute(sql).fetchall()


def test_a_replay_after_the_span_finished_answers_the_span_as_created(
    store: Store, register: Register
) -> None:
    item = _item(register(), generate_pfid())
    first = _one(store, item)
    store.finish_span(item["id"], {"status": "complete", "result_payload": {"text": "done"}})
    assert _one(store, item) == first
    assert first["details"]["status"] == "active"


def test_a_replay_keeps_the_control_the_create_answered(store: Store, register: Register) -> None:
    instance_id = register()
    store.terminate_instance(instance_id, {"reason": "halt"})
    item = _item(instance_id, generate_pfid(), status="complete", result_payload={"text": "t"})
    first = _one(store, item, details=False)
    assert first == {"status": "success", "control": {"terminate": True, "reason": "halt"}}
    assert _one(store, item, details=False) == first


def test_the_same_key_with_another_body_is_an_idempotency_conflict(
    store: Store, register: Register
) -> None:
    item = _item(register(), generate_pfid())
    _one(store, item)
    changed = _one(store, {**item, "payload": {**GOOD_PAYLOAD, "model": "other"}})
    assert (changed["status"], changed["code"]) == ("error", "idempotency_conflict")


def test_a_span_ids_key_taken_by_another_span_stays_that_spans_key(
    store: Store, register: Register
) -> None:
    instance_id = register()
    span_id, other = generate_pfid(), generate_pfid()
    taken = _item(instance_id, other, key=f"{span_id}-create")
    first = _one(store, taken)
    refused = _one(store, _item(instance_id, span_id))
    assert (refused["status"], refused["code"]) == ("error", "idempotency_conflict")
    assert _one(store, taken) == first
    listed = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert [s["id"] for s in listed] == [other]


def test_a_key_not_derived_from_the_id_is_kept_apart_from_the_span(
    store: Store, register: Register
) -> None:
    instance_id = register()
    span_id = generate_pfid()
    first = _one(store, _item(instance_id, span_id, key="my-own-key-1"))
    # The span's derived key was never used: a create under it finds the span taken.
    taken = _one(store, _item(instance_id, span_id))
    assert (taken["status"], taken["code"]) == ("error", "conflict")
    assert _one(store, _item(instance_id, span_id, key="my-own-key-1")) == first


def _started(store: Store) -> str:
    instance_id: str = store.register_instance({"agent_id": "agent-1"})["details"]["id"]
    store.start_instance(instance_id, {})
    return instance_id


def _created_both_ways(store: Store) -> tuple[str, str]:
    """Create a span under its derived key and one under a key of its own; their ids."""
    instance_id = _started(store)
    derived, own = generate_pfid(), generate_pfid()
    _one(store, _item(instance_id, derived))
    _one(store, _item(instance_id, own, key="my-own-key-1"))
    return derived, own


def test_on_sqlite_the_span_row_is_the_only_record_of_its_derived_key(tmp_path: Path) -> None:
    target = str(tmp_path / "traces.db")
    store = Store(target)
    try:
        derived, _ = _created_both_ways(store)
    finally:
        store.close()
    keys = _rows(target, "sqlite", "SELECT key FROM idempotency WHERE scope = 'agent_spans/create'")
    recorded = _rows(target, "sqlite", "SELECT id FROM spans WHERE create_digest IS NOT NULL")
    assert keys == [("my-own-key-1",)]
    assert recorded == [(derived,)]


def test_on_postgresql_every_key_keeps_its_idempotency_row(pg_url: str) -> None:
    target = in_schema(pg_url, "span_create_record")
    store = Store(target)
    try:
        derived, _ = _created_both_ways(store)
    finally:
        store.close()
    keys = _rows(
        target, "postgresql", "SELECT key FROM idempotency WHERE scope = 'agent_spans/create'"
    )
    recorded = _rows(target, "postgresql", "SELECT id FROM spans WHERE create_digest IS NOT NULL")
    assert sorted(keys) == sorted([(f"{derived}-create",), ("my-own-key-1",)])
    assert recorded == []


@pytest.fixture
def layout_4_file(tmp_path: Path) -> Path:
    copy = tmp_path / "traces.db"
    shutil.copyfile(LAYOUT_4, copy)
    return copy


def test_a_layout_4_file_replays_the_derived_keys_it_stored(layout_4_file: Path) -> None:
    maker = runpy.run_path(str(LAYOUT_4_MAKER))
    items = maker["items"]()
    store = Store(layout_4_file)
    try:
        outputs = store.bulk({"items": items})["outputs"]
        spans = store.list_spans(agent_instance_id=maker["INSTANCE"])["summaries"]
    finally:
        store.close()
    answered = [
        (
            outputs[i["idempotency_key"]]["details"]["id"],
            outputs[i["idempotency_key"]]["details"]["status"],
        )
        for i in items
    ]
    # Answered as created: the second span was finished since, and is still one span.
    assert answered == [(maker["DONE_SPAN"], "complete"), (maker["OPEN_SPAN"], "active")]
    assert [(s["id"], s["status"]) for s in spans] == [
        (maker["DONE_SPAN"], "complete"),
        (maker["OPEN_SPAN"], "complete"),
    ]
