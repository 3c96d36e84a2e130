"""Failed, cancelled and raising runs, read back whole from where the default settings store them.

Each workload runs once into the embedded store (the SQLite file the default
``LocalSink`` writes, read back with the store itself) and once into
``prefactor serve`` on a loopback port (read back over HTTP). Failed spans
carry the error's type and message; every child is present and parented.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from integration_helpers import TOKEN, Served

import prefactor
from prefactor import _runtime as runtime
from prefactor._export._internal import set_raise_internal_errors
from prefactor.server.store import Store


@prefactor.tool
def fetch_missing_page(query: str) -> str:
    raise ValueError(f"no page for {query}")


@prefactor.tool
def shout(query: str) -> str:
    return query.upper()


@prefactor.tool
async def sleep_then_answer(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "waited"


@prefactor.agent(agent_id="e2e-failed-tool")
def survives_a_failed_tool(query: str) -> str:
    with contextlib.suppress(ValueError):
        fetch_missing_page(query)
    return "answered anyway"


@prefactor.agent(agent_id="e2e-failed-agent")
def fails_through_its_tool(query: str) -> str:
    return fetch_missing_page(query)


@prefactor.agent(agent_id="e2e-cancelled-task")
async def cancels_its_task(seconds: float) -> str:
    task = asyncio.create_task(sleep_then_answer(seconds))
    await asyncio.sleep(0.01)  # the tool's span is open
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return "stopped"


@prefactor.agent(agent_id="e2e-raising-parent")
def raises_after_healthy_children(query: str) -> str:
    shout(query)
    shout(query + "!")
    raise RuntimeError("the agent gave up")


@dataclass
class Destination:
    """Where the default settings send records, and how to read them back from there."""

    instances: Callable[[str], list[dict[str, Any]]]
    spans: Callable[[str], list[dict[str, Any]]]


@pytest.fixture(params=["embedded", "serve"])
def destination(
    request: pytest.FixtureRequest, tmp_path: Path, served: Served
) -> Iterator[Destination]:
    set_raise_internal_errors(True)
    store: Store | None = None
    if request.param == "embedded":
        db = tmp_path / "traces.db"
        runtime.configure(db_path=db, strict=False)

        def reader() -> Store:
            nonlocal store
            store = store or Store(db)
            return store

        yield Destination(
            instances=lambda agent: reader().list_instances(agent_id=agent)["summaries"],
            spans=lambda iid: reader().list_spans(agent_instance_id=iid)["summaries"],
        )
    else:
        runtime.configure(api_url=served.url, api_token=TOKEN, strict=False)
        yield Destination(instances=served.instances, spans=served.spans)
    runtime.shutdown()
    if store is not None:
        store.close()
    set_raise_internal_errors(None)


def _run_of(destination: Destination, agent_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The one instance of ``agent_id`` and its spans by name (children of a name in a list)."""
    assert runtime.flush(10)
    assert runtime.stats()["rejected"] == 0
    (instance,) = destination.instances(agent_id)
    by_name: dict[str, Any] = {}
    for span in destination.spans(instance["id"]):
        by_name.setdefault(span["schema_name"], []).append(span)
    return instance, by_name


def _error(span: dict[str, Any]) -> tuple[str, str, str]:
    error = span["result_payload"]["error"]
    return span["status"], error["type"], error["message"]


def test_a_failed_tool_is_stored_failed_under_its_agent(destination: Destination) -> None:
    assert survives_a_failed_tool("llamas") == "answered anyway"
    instance, spans = _run_of(destination, "e2e-failed-tool")
    (root,) = spans["agent:survives_a_failed_tool"]
    (tool,) = spans["tool:fetch_missing_page"]
    assert (instance["status"], root["status"]) == ("complete", "complete")
    assert _error(tool) == ("failed", "ValueError", "no page for llamas")
    assert (tool["parent_span_id"], tool["schema_violations"]) == (root["id"], None)


def test_a_failed_agent_is_stored_whole(destination: Destination) -> None:
    with pytest.raises(ValueError, match="no page for alpacas"):
        fails_through_its_tool("alpacas")
    instance, spans = _run_of(destination, "e2e-failed-agent")
    (root,) = spans["agent:fails_through_its_tool"]
    (tool,) = spans["tool:fetch_missing_page"]
    assert instance["status"] == "failed"
    assert _error(root) == ("failed", "ValueError", "no page for alpacas")
    assert _error(tool) == ("failed", "ValueError", "no page for alpacas")
    assert (root["parent_span_id"], tool["parent_span_id"]) == (None, root["id"])


async def test_a_cancelled_task_is_stored_cancelled_under_its_agent(
    destination: Destination,
) -> None:
    assert await cancels_its_task(30.0) == "stopped"
    instance, spans = _run_of(destination, "e2e-cancelled-task")
    (root,) = spans["agent:cancels_its_task"]
    (tool,) = spans["tool:sleep_then_answer"]
    assert (instance["status"], root["status"], tool["status"]) == (
        "complete",
        "complete",
        "cancelled",
    )
    assert (tool["parent_span_id"], tool["payload"]) == (root["id"], {"seconds": 30.0})


def test_an_agent_that_raises_keeps_its_healthy_children(destination: Destination) -> None:
    with pytest.raises(RuntimeError, match="gave up"):
        raises_after_healthy_children("vicuñas")
    instance, spans = _run_of(destination, "e2e-raising-parent")
    (root,) = spans["agent:raises_after_healthy_children"]
    children = spans["tool:shout"]
    assert instance["status"] == "failed"
    assert _error(root) == ("failed", "RuntimeError", "the agent gave up")
    assert sorted(
        (c["status"], c["parent_span_id"], c["result_payload"]["value"]) for c in children
    ) == [("complete", root["id"], "VICUÑAS"), ("complete", root["id"], "VICUÑAS!")]
