"""Shared values for the store and server tests: a schema version, payloads, bodies."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LLM_PARAMS = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["user", "assistant", "system"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
            },
        },
    },
    "required": ["model", "messages"],
}
LLM_RESULT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
SCHEMA_VERSION: dict[str, Any] = {
    "external_identifier": "schemas-v1",
    "span_type_schemas": [
        {
            "name": "agent:llm",
            "title": "LLM call",
            "params_schema": LLM_PARAMS,
            "result_schema": LLM_RESULT,
            "template": "{{ model }} call",
        },
        {"name": "agent:tool", "params_schema": {"type": "object"}},
    ],
    "quality_schemas": [
        {
            "name": "accuracy",
            "schema": {
                "type": "object",
                "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}},
                "required": ["score"],
            },
            "template": "score {{ score }}",
        }
    ],
}
GOOD_PAYLOAD = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

Register = Callable[..., str]


def span_body(instance_id: str, **details: Any) -> dict[str, Any]:
    """A span create body for the LLM span type with a valid payload."""
    base: dict[str, Any] = {
        "agent_instance_id": instance_id,
        "schema_name": "agent:llm",
        "status": "active",
        "payload": GOOD_PAYLOAD,
    }
    return {"details": {**base, **details}}


def span_item(instance_id: str, key: str, **details: Any) -> dict[str, Any]:
    """A bulk ``agent_spans/create`` item for the LLM span type with a valid payload."""
    body = span_body(instance_id, **details)
    return {"_type": "agent_spans/create", "idempotency_key": key, **body}
