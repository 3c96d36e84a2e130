"""Every call form of the prefactor-core API reference works under ``prefactor``.

Each test uses the calls the earlier package documented, with the same
keyword names, against the real server in process; none may raise into the
caller, even where the server refuses what it is sent.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from core_helpers import VERSION, llm_registry
from pydantic import SecretStr

from prefactor import (
    ClientAlreadyInitializedError,
    ClientNotInitializedError,
    HttpClientConfig,
    InstanceNotFoundError,
    OperationError,
    PrefactorCoreClient,
    PrefactorCoreConfig,
    PrefactorCoreError,
    QueueConfig,
    SchemaRegistry,
    SpanNotFoundError,
)
from prefactor._export.sinks import HttpSink
from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "forms-token-0001"


def _registry() -> SchemaRegistry:
    registry = llm_registry()
    registry.register_type(
        name="agent:retrieval",
        params_schema={"type": "object", "properties": {"query": {"type": "string"}}},
        result_schema={"type": "object"},
        title="Retrieval",
    )
    return registry


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[tuple[PrefactorCoreClient, Store]]:
    store = Store(tmp_path / "forms.db")
    transport = httpx.ASGITransport(app=create_app(store, token=TOKEN))
    http = HttpClientConfig(api_url="http://prefactor.test", api_token=SecretStr(TOKEN))
    config = PrefactorCoreConfig(
        http_config=http,
        queue_config=QueueConfig(num_workers=3, max_retries=3, retry_delay_base=1.0),
        schema_registry=_registry(),
        sink=HttpSink(http, transport=transport),
    )
    c = PrefactorCoreClient(config)
    await c.initialize()
    yield c, store
    await c.close()
    store.close()


async def test_initialize_use_close(client: tuple[PrefactorCoreClient, Store]) -> None:
    c, store = client
    handle = await c.create_agent_instance(
        agent_id="my-agent",
        agent_version=VERSION,
        agent_schema_version=None,
        external_schema_version_id=None,
    )
    assert isinstance(handle.id, str)
    await handle.start()
    async with handle.span("agent:llm") as span:
        await span.start({"model": "gpt-4", "prompt": "Hello"})
        await span.complete({"response": "Hi"})
    await handle.finish()
    assert await c.flush(10)
    assert store.get_instance(handle.id)["details"]["status"] == "complete"


async def test_client_span_by_instance_id_with_every_keyword(
    client: tuple[PrefactorCoreClient, Store],
) -> None:
    c, store = client
    handle = await c.create_agent_instance(agent_id="my-agent", agent_version=VERSION)
    async with c.span(
        instance_id=handle.id,
        schema_name="agent:llm",
        parent_span_id=None,
        payload=None,
    ) as span:
        await span.start({"model": "gpt-4", "prompt": "Hello"})
        await span.complete({"response": "Hi"})
    assert await c.flush(10)
    (stored,) = store.list_spans(agent_instance_id=handle.id)["summaries"]
    assert (stored["id"], stored["status"]) == (span.id, "complete")


async def test_an_unknown_instance_id_is_refused_by_the_server_not_raised(
    client: tuple[PrefactorCoreClient, Store],
) -> None:
    c, _ = client
    async with c.span(instance_id="instance_123", schema_name="agent:llm") as span:
        await span.start({"model": "gpt-4", "prompt": "Hello"})
        await span.complete({"response": "Hi"})
    assert await c.flush(10)
    assert c.stats()["rejected"] == 1


async def test_full_lifecycle_with_fail_and_cancel_before_start(
    client: tuple[PrefactorCoreClient, Store],
) -> None:
    c, store = client
    instance = await c.create_agent_instance(agent_id="my-agent", agent_version=VERSION)
    async with instance.span("agent:llm") as span:
        await span.start({"model": "gpt-4", "prompt": "Hello"})
        try:
            raise TimeoutError("model timed out")
        except Exception as exc:
            await span.fail({"error": str(exc)})
    needed = False
    async with instance.span("agent:retrieval") as skipped:
        if not needed:
            await skipped.cancel()
    async with instance.span("agent:retrieval") as retrieval:
        retrieval.set_result({"documents": ["a"], "count": 1})
        await retrieval.start({"query": "..."})
        await retrieval.finish()
    assert await c.flush(10)
    statuses = {
        s["id"]: s["status"] for s in store.list_spans(agent_instance_id=instance.id)["summaries"]
    }
    assert statuses == {span.id: "failed", skipped.id: "cancelled", retrieval.id: "complete"}


async def test_create_span_and_finish_span_and_record_quality_forms(
    client: tuple[PrefactorCoreClient, Store],
) -> None:
    c, store = client
    instance = await c.create_agent_instance(agent_id="my-agent", agent_version=VERSION)
    span_id = await c.create_span(
        instance_id=instance.id,
        schema_name="agent:llm",
        parent_span_id=None,
        payload={"model": "gpt-4", "prompt": "Hi"},
        started_at=None,
    )
    await c.finish_span(span_id, result_payload={"response": "ok"}, timestamp=None)
    await c.record_quality(instance.id, "unknown-quality", payload=None)
    assert await c.flush(10)
    (stored,) = store.list_spans(agent_instance_id=instance.id)["summaries"]
    assert (stored["status"], stored["result_payload"]) == ("complete", {"response": "ok"})


def test_error_classes_of_the_reference_are_exported() -> None:
    for cls in (
        ClientNotInitializedError,
        ClientAlreadyInitializedError,
        OperationError,
        InstanceNotFoundError,
        SpanNotFoundError,
    ):
        assert issubclass(cls, PrefactorCoreError)
