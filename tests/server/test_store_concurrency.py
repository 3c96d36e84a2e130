"""Store: one store shared by threads, and two stores sharing one database (on each backend)."""

from __future__ import annotations

import threading

from server_helpers import SCHEMA_VERSION, span_body

from prefactor.server.store import Store


def _bulk_spans(store: Store, instance_id: str, prefix: str, count: int) -> None:
    items = [
        {
            "_type": "agent_spans/create",
            "idempotency_key": f"{prefix}-{i:06d}",
            **span_body(instance_id),
        }
        for i in range(count)
    ]
    outputs = store.bulk({"items": items})["outputs"]
    assert all(o["status"] == "success" for o in outputs.values())


def test_threads_sharing_a_store_lose_no_span(db_target: str) -> None:
    store = Store(db_target)
    try:
        instance_id = store.register_instance({"agent_schema_version": SCHEMA_VERSION})["details"][
            "id"
        ]
        threads = [
            threading.Thread(target=_bulk_spans, args=(store, instance_id, f"t{n}", 50))
            for n in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert store.get_instance(instance_id)["details"]["span_counts"]["total"] == 200
    finally:
        store.close()


def test_two_stores_on_one_database_share_ids_and_see_each_others_writes(db_target: str) -> None:
    writer, reader = Store(db_target), Store(db_target)
    try:
        assert writer.account_id == reader.account_id
        instance_id = writer.register_instance({"agent_schema_version": SCHEMA_VERSION})["details"][
            "id"
        ]
        _bulk_spans(reader, instance_id, "r", 3)  # the schema version is read from the database
        _bulk_spans(writer, instance_id, "w", 2)
        assert reader.get_instance(instance_id)["details"]["span_counts"]["total"] == 5
    finally:
        writer.close()
        reader.close()
