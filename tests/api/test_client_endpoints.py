"""The API client against the real server in process: every endpoint and its errors."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest
from api_helpers import make_config

from prefactor._api.client import PrefactorApiClient
from prefactor._api.models import AgentInstance
from prefactor._errors import (
    PrefactorApiError,
    PrefactorAuthError,
    PrefactorClientError,
    PrefactorNotFoundError,
    PrefactorValidationError,
)
from prefactor._ids import generate_pfid

SCHEMAS = {
    "external_identifier": "client-v1",
    "span_type_schemas": [
        {
            "name": "t:step",
            "params_schema": {"type": "object", "properties": {"n": {"type": "integer"}}},
        },
    ],
    "quality_schemas": [{"name": "grade", "schema": {"type": "object"}}],
}


async def _instance(client: PrefactorApiClient, start: bool = True) -> AgentInstance:
    inst = await client.register_instance(agent_id="agent-c", agent_schema_version=SCHEMAS)
    return await client.start_instance(inst.id) if start else inst


async def test_ping_answers_the_servers_object(client: PrefactorApiClient) -> None:
    assert await client.ping() == {"status": "success"}


async def test_register_returns_a_pending_instance(client: PrefactorApiClient) -> None:
    inst = await _instance(client, start=False)
    assert (inst.status, inst.agent_id, inst.span_counts is not None) == (
        "pending",
        "agent-c",
        True,
    )


async def test_start_sends_a_datetime_as_utc(client: PrefactorApiClient) -> None:
    inst = await _instance(client, start=False)
    when = datetime(2026, 2, 9, 1, 2, 3, 456789, tzinfo=UTC)
    started = await client.start_instance(inst.id, timestamp=when, idempotency_key="start-k")
    assert (started.status, started.started_at) == ("active", when)


async def test_finish_get_and_list_instances(client: PrefactorApiClient) -> None:
    inst = await _instance(client)
    finished = await client.finish_instance(inst.id, status="failed")
    assert (await client.get_instance(inst.id)) == finished
    listed = await client.list_instances(agent_id="agent-c", page_size=10)
    assert [s.id for s in listed.summaries] == [inst.id]
    assert listed.pagination is not None and listed.pagination.item_count == 1


async def test_record_quality_and_terminate(client: PrefactorApiClient) -> None:
    inst = await _instance(client)
    graded = await client.record_quality(inst.id, "grade", {"a": 1}, idempotency_key="q-1")
    assert graded.quality_payloads == {"grade": {"a": 1}}
    ended = await client.terminate_instance(inst.id, "enough")
    assert (ended.status, ended.termination_reason) == ("terminated", "enough")


async def test_span_create_and_finish_return_span_and_no_control(
    client: PrefactorApiClient,
) -> None:
    inst = await _instance(client)
    created = await client.create_span(inst.id, "t:step", "active", payload={"n": 1})
    finished = await client.finish_span(created.details.id, "complete", {"out": 2})
    assert (created.control, finished.details.status, finished.details.result_payload) == (
        None,
        "complete",
        {"out": 2},
    )


async def test_span_answers_after_terminate_expose_control(client: PrefactorApiClient) -> None:
    inst = await _instance(client)
    open_span = await client.create_span(inst.id, "t:step", "active")
    await client.terminate_instance(inst.id, "stop")
    finished = await client.finish_span(open_span.details.id)
    assert finished.control is not None
    assert (finished.control.terminate, finished.control.reason) == (True, "stop")


async def test_list_spans_reads_back_parents(client: PrefactorApiClient) -> None:
    inst = await _instance(client)
    parent = await client.create_span(inst.id, "t:step", "active", id=generate_pfid())
    child = await client.create_span(
        inst.id,
        "t:step",
        "complete",
        parent_span_id=parent.details.id,
        started_at="2030-01-01T00:00:00Z",
    )
    listed = await client.list_spans(inst.id)
    assert [(s.id, s.parent_span_id) for s in listed.summaries] == [
        (parent.details.id, None),
        (child.details.id, parent.details.id),
    ]


async def test_bulk_returns_every_output(client: PrefactorApiClient) -> None:
    inst = await _instance(client)
    outputs = (
        await client.bulk(
            [
                {
                    "_type": "agent_spans/create",
                    "idempotency_key": "bulk-ok-1",
                    "details": {
                        "agent_instance_id": inst.id,
                        "schema_name": "t:step",
                        "status": "active",
                    },
                },
                {
                    "_type": "agent_spans/create",
                    "idempotency_key": "bulk-bad-1",
                    "details": {
                        "agent_instance_id": inst.id,
                        "schema_name": "t:step",
                        "status": "done",
                    },
                },
            ]
        )
    ).outputs
    assert outputs["bulk-ok-1"].status == "success"
    assert (outputs["bulk-bad-1"].status, outputs["bulk-bad-1"].code) == (
        "error",
        "validation_error",
    )


async def test_bulk_request_problems_raise_validation_errors(client: PrefactorApiClient) -> None:
    with pytest.raises(PrefactorValidationError) as caught:
        await client.bulk([])
    assert "items" in caught.value.errors


async def test_a_wrong_token_raises_auth_error(asgi: httpx.ASGITransport) -> None:
    async with PrefactorApiClient(make_config("not-the-token"), transport=asgi) as c:
        with pytest.raises(PrefactorAuthError) as caught:
            await c.ping()
    assert (caught.value.status_code, caught.value.code) == (401, "unauthorized")


async def test_unknown_instance_raises_not_found(client: PrefactorApiClient) -> None:
    with pytest.raises(PrefactorNotFoundError):
        await client.get_instance(generate_pfid())


async def test_a_malformed_span_raises_validation_error_with_paths(
    client: PrefactorApiClient,
) -> None:
    inst = await _instance(client)
    with pytest.raises(PrefactorValidationError) as caught:
        await client.create_span(inst.id, "t:step", "active", id="not-a-pfid")
    assert list(caught.value.errors) == ["id"]


async def test_a_payload_that_breaks_its_schema_comes_back_flagged(
    client: PrefactorApiClient,
) -> None:
    inst = await _instance(client)
    created = await client.create_span(inst.id, "t:step", "active", payload={"n": "one"})
    violations = created.details.schema_violations or []
    assert [(v.side, v.path) for v in violations] == [("params", "$.n")]


async def test_finishing_twice_raises_an_api_error_with_invalid_action(
    client: PrefactorApiClient,
) -> None:
    inst = await _instance(client)
    span = await client.create_span(inst.id, "t:step", "active")
    await client.finish_span(span.details.id)
    with pytest.raises(PrefactorApiError) as caught:
        await client.finish_span(span.details.id)
    assert (type(caught.value), caught.value.status_code, caught.value.code) == (
        PrefactorApiError,
        409,
        "invalid_action",
    )


async def test_every_request_carries_auth_sdk_and_json_headers(
    asgi: httpx.ASGITransport,
) -> None:
    seen: list[httpx.Request] = []

    class Recording(httpx.AsyncBaseTransport):
        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await asgi.handle_async_request(request)

    async with PrefactorApiClient(
        make_config(), transport=Recording(), sdk_header="my-integration@1 prefactor@0"
    ) as c:
        await c.register_instance()
    headers = seen[0].headers
    assert headers["authorization"] == "Bearer client-test-token-42"
    assert headers["x-prefactor-sdk"] == "my-integration@1 prefactor@0"
    assert headers["content-type"] == "application/json"


async def test_a_closed_client_refuses_calls(asgi: httpx.ASGITransport) -> None:
    c = PrefactorApiClient(make_config(), transport=asgi)
    await c.aclose()
    with pytest.raises(PrefactorClientError):
        await c.ping()
