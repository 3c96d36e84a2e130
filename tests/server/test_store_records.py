"""The exporter's op records, as bulk items, run against the store unchanged."""

from __future__ import annotations

import time

from server_helpers import GOOD_PAYLOAD, SCHEMA_VERSION

from prefactor._ids import generate_pfid
from prefactor._records import (
    CreateSpan,
    FinishInstance,
    FinishSpan,
    RecordQuality,
    RegisterInstance,
    StartInstance,
    Violation,
)
from prefactor.server.store import Store


def test_every_record_kind_is_accepted_as_a_bulk_item(store: Store) -> None:
    now = time.time_ns()
    instance_id, parent, child, flagged = (generate_pfid() for _ in range(4))
    records = [
        RegisterInstance(
            instance_id=instance_id,
            agent_id="agent-r",
            agent_version={"external_identifier": "v1"},
            agent_schema_version=SCHEMA_VERSION,
            purpose="eval",
        ),
        StartInstance(instance_id=instance_id, timestamp_ns=now),
        CreateSpan(
            span_id=parent,
            instance_id=instance_id,
            schema_name="agent:llm",
            status="active",
            started_at_ns=now,
            payload=GOOD_PAYLOAD,
        ),
        CreateSpan(
            span_id=child,
            instance_id=instance_id,
            schema_name="agent:llm",
            status="active",
            started_at_ns=now,
            payload=GOOD_PAYLOAD,
            parent_span_id=parent,
        ).merged_with(
            FinishSpan(
                span_id=child,
                instance_id=instance_id,
                status="complete",
                timestamp_ns=now + 1000,
                result_payload={"text": "ok"},
            )
        ),
        CreateSpan(
            span_id=flagged,
            instance_id=instance_id,
            schema_name="agent:llm",
            status="active",
            started_at_ns=now,
            payload={"model": 1, "messages": []},
            violations=(Violation("params", "$.model", "1 is not a string"),),
        ),
        FinishSpan(
            span_id=parent,
            instance_id=instance_id,
            status="failed",
            timestamp_ns=now + 2000,
            result_payload={"text": "boom"},
        ),
        RecordQuality(
            instance_id=instance_id, name="accuracy", payload={"score": 1}, key=f"{instance_id}-q1"
        ),
        FinishInstance(instance_id=instance_id, status="complete", timestamp_ns=now + 3000),
    ]
    outputs = store.bulk({"items": [r.to_bulk_item() for r in records]})["outputs"]
    assert [o["status"] for o in outputs.values()] == ["success"] * len(records)
    spans = {s["id"]: s for s in store.list_spans(agent_instance_id=instance_id)["summaries"]}
    assert (spans[child]["status"], spans[child]["parent_span_id"]) == ("complete", parent)
    assert spans[parent]["status"] == "failed"
    assert [v["path"] for v in spans[flagged]["schema_violations"]] == ["$.model"]
    assert store.get_instance(instance_id)["details"]["status"] == "complete"
