"""A finished leaf span's one wire item: payloads and violations as the server keeps them.

A ``@traced`` call that opens no child is queued as its own create and its
item is built in one pass in the exporter's thread: arguments that cannot
change are bound and captured there, others were captured in the call; both
sides are checked there. Read back from the real server.
"""

from __future__ import annotations

from typing import Any

import pytest
from integration_helpers import Server

from prefactor import _runtime as runtime
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.agents import agent
from prefactor._tracing.decorator import traced


def _registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register_type(
        "agent:llm",
        {"type": "object", "properties": {"model": {"type": "string"}}, "required": ["model"]},
        {"type": "object", "properties": {"value": {"type": "integer"}}},
    )
    return registry


@traced("agent:llm")
def llm(model: Any, tags: Any = None) -> Any:
    return tags if tags is not None else "ok"


@pytest.mark.parametrize(
    ("tags", "result"),
    [
        pytest.param(None, "ok", id="arguments-and-result-kept-raw"),
        pytest.param(["a", "b"], ["a", "b"], id="arguments-and-result-captured-in-the-call"),
    ],
)
def test_a_leaf_call_is_stored_with_both_sides_flagged(
    server: Server, tags: list[str] | None, result: Any
) -> None:
    runtime.configure(sink=server.sink(), strict=False, registry=_registry())

    @agent(name="caller")
    def run() -> None:
        llm(7, tags)

    run()
    assert runtime.flush(10)
    stats = runtime.stats()
    assert (stats["rejected"], stats["schema_violations"]) == (0, 2)  # flagged here, both sides
    (inst,) = server.instances()
    spans = {s["schema_name"]: s for s in server.spans(inst["id"])}
    span = spans["agent:llm"]
    assert (span["status"], span["parent_span_id"]) == ("complete", spans["agent:caller"]["id"])
    assert span["payload"] == {"model": 7, "tags": tags}
    assert span["result_payload"] == {"value": result}
    flagged = [(v["side"], v["path"]) for v in span["schema_violations"]]
    assert flagged == [("params", "$.model"), ("result", "$.value")]
    assert span["started_at"] <= span["finished_at"]
