"""Write ``store-0.1.0.db``: a store file as prefactor 0.1.0 writes it, touching every table.

The committed file was made by running this script against the store of
release 0.1.0 (commit addb74e), before the store carried a version:

    python tests/data/make_store_0_1_0.py tests/data/store-0.1.0.db

It is kept to show what the file holds; running it with a later store writes
a file of that later version instead.
"""

import sys
from pathlib import Path

from prefactor.server.store import Store

SCHEMA = {
    "external_identifier": "release-schemas-v1",
    "span_type_schemas": [
        {
            "name": "agent:llm",
            "title": "LLM call",
            "params_schema": {
                "type": "object",
                "properties": {"model": {"type": "string"}},
                "required": ["model"],
            },
            "result_schema": {
                "type": "object",
                "properties": {"text": {"type": "string"}},
                "required": ["text"],
            },
            "template": "{{ model }} call",
        },
        {"name": "agent:tool", "params_schema": {"type": "object"}},
    ],
    "quality_schemas": [
        {
            "name": "accuracy",
            "schema": {"type": "object", "properties": {"score": {"type": "number"}}},
            "template": "score {{ score }}",
        }
    ],
}
VERSION = {"external_identifier": "1.0", "name": "Release agent"}
path = Path(sys.argv[1])
store = Store(path)


def register(ext, **extra):
    body = {
        "agent_id": "release-agent",
        "agent_version": VERSION,
        "agent_schema_version": SCHEMA,
        "external_identifier": ext,
        "idempotency_key": f"register-{ext}",
        **extra,
    }
    return store.register_instance(body)["details"]["id"]


done = register("run-complete", purpose="eval")
store.start_instance(
    done, {"timestamp": "2026-02-09T10:00:00Z", "idempotency_key": "start-run-complete"}
)
root = store.create_span(
    {
        "details": {
            "agent_instance_id": done,
            "schema_name": "agent:llm",
            "status": "active",
            "payload": {"model": "gpt-4o"},
            "started_at": "2026-02-09T10:00:01Z",
        },
        "idempotency_key": "create-root",
    }
)["details"]["id"]
store.bulk(
    {
        "items": [
            {
                "_type": "agent_spans/create",
                "idempotency_key": "create-tool",
                "agent_instance_id": done,
                "schema_name": "agent:tool",
                "status": "complete",
                "payload": {"q": "weather"},
                "result_payload": {"ok": True},
                "parent_span_id": root,
                "started_at": "2026-02-09T10:00:02Z",
                "finished_at": "2026-02-09T10:00:03Z",
            },
            {
                "_type": "agent_spans/create",
                "idempotency_key": "create-flagged",
                "agent_instance_id": done,
                "schema_name": "agent:llm",
                "status": "active",
                "payload": {"model": 4},
                "parent_span_id": root,
                "started_at": "2026-02-09T10:00:04Z",
                "schema_violations": [
                    {"side": "params", "path": "$.model", "reason": "4 is not of type 'string'"}
                ],
            },
        ]
    }
)
flagged = next(
    s for s in store.list_spans(agent_instance_id=done)["summaries"] if s["schema_violations"]
)["id"]
store.finish_span(
    flagged,
    {"status": "failed", "result_payload": {"text": "boom"}, "timestamp": "2026-02-09T10:00:05Z"},
)
store.finish_span(
    root,
    {
        "status": "complete",
        "result_payload": {"text": "sunny"},
        "timestamp": "2026-02-09T10:00:06Z",
        "idempotency_key": "finish-root",
    },
)
store.record_quality(
    done, {"name": "accuracy", "payload": {"score": 0.9}, "idempotency_key": "quality-run-complete"}
)
store.finish_instance(done, {"status": "complete", "timestamp": "2026-02-09T10:00:07Z"})

running = register("run-active")
store.start_instance(running, {"timestamp": "2026-02-09T11:00:00Z"})
store.create_span(
    {
        "details": {
            "agent_instance_id": running,
            "schema_name": "agent:tool",
            "status": "pending",
            "started_at": "2026-02-09T11:00:01Z",
        }
    }
)

halted = register("run-terminated")
store.start_instance(halted, {})
store.terminate_instance(halted, {"reason": "budget exceeded"})

pending = store.register_instance({"agent_id": "other-agent", "environment_id": None})["details"][
    "id"
]
store.close()
print(done, running, halted, pending)
