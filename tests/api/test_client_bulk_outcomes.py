"""``PrefactorApiClient.bulk_outcomes``: each item's outcome (``Prefer: return=minimal``)."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from api_helpers import make_config

from prefactor._api.client import PrefactorApiClient
from prefactor._errors import PrefactorResponseContractError
from prefactor._export.sinks.bulk import bulk_body
from prefactor._ids import generate_pfid
from prefactor.server.store import Store


def _create(instance_id: str, key: str, status: str = "active") -> dict[str, Any]:
    """A span create item."""
    details = {"agent_instance_id": instance_id, "schema_name": "t:step", "status": status}
    return {"_type": "agent_spans/create", "idempotency_key": key, "details": details}


async def test_outcomes_are_status_and_error_fields_and_the_spans_are_stored(
    client: PrefactorApiClient, api_store: Store
) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    outcomes = await client.bulk_outcomes(
        bulk_body([_create(instance.id, "span-ok-1"), _create(instance.id, "span-bad-1", "done")])
    )
    assert outcomes["span-ok-1"] == {"status": "success"}
    assert (outcomes["span-bad-1"]["status"], outcomes["span-bad-1"]["code"]) == (
        "error",
        "validation_error",
    )
    assert "details" not in outcomes["span-bad-1"]
    (span,) = api_store.list_spans(agent_instance_id=instance.id)["summaries"]
    assert span["schema_name"] == "t:step"


async def test_outcomes_carry_the_terminate_control(client: PrefactorApiClient) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    await client.terminate_instance(instance.id, "enough")
    outcomes = await client.bulk_outcomes(bulk_body([_create(instance.id, "span-ok-1")]))
    assert outcomes["span-ok-1"] == {
        "status": "success",
        "control": {"terminate": True, "reason": "enough"},
    }


async def test_a_server_that_echoes_every_span_gives_the_same_outcomes() -> None:
    store = Store()
    instance_id = store.register_instance({"agent_id": "agent-o"})["details"]["id"]
    seen: list[str | None] = []

    def full_answer(request: httpx.Request) -> httpx.Response:
        # A server that ignores Prefer: the store's full answer, details and all.
        seen.append(request.headers.get("prefer"))
        return httpx.Response(200, content=orjson.dumps(store.bulk(orjson.loads(request.content))))

    transport = httpx.MockTransport(full_answer)
    async with PrefactorApiClient(make_config(), transport=transport) as client:
        outcomes = await client.bulk_outcomes(bulk_body([_create(instance_id, "span-ok-1")]))
    store.close()
    assert (seen, outcomes) == (["return=minimal"], {"span-ok-1": {"status": "success"}})


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(
            {"status": "success", "outputs": {"k-000001": {"status": "odd"}}}, id="status"
        ),
        pytest.param({"status": "success", "outputs": {"k-000001": "success"}}, id="not-object"),
        pytest.param({"status": "success", "outputs": []}, id="outputs-list"),
        pytest.param({"status": "error", "outputs": {}}, id="envelope"),
        pytest.param(
            {"status": "success", "outputs": {"k-000001": {"status": "success", "control": 1}}},
            id="control",
        ),
    ],
)
async def test_an_answer_off_the_contract_raises_a_contract_error(answer: dict[str, Any]) -> None:
    transport = httpx.MockTransport(lambda _: httpx.Response(200, json=answer))
    async with PrefactorApiClient(make_config(), transport=transport) as client:
        with pytest.raises(PrefactorResponseContractError):
            await client.bulk_outcomes(bulk_body([_create(generate_pfid(), "k-000001")]))


async def test_given_the_keys_an_all_success_answer_gives_each_key_success_and_stores_the_spans(
    client: PrefactorApiClient, api_store: Store
) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    keys = ["span-ok-1", "span-ok-2", "span-ok-3"]
    outcomes = await client.bulk_outcomes(
        bulk_body([_create(instance.id, key) for key in keys]), keys
    )
    assert outcomes == {key: {"status": "success"} for key in keys}
    assert len(api_store.list_spans(agent_instance_id=instance.id)["summaries"]) == 3


async def test_given_the_keys_a_refused_item_among_successes_still_gets_its_error(
    client: PrefactorApiClient,
) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    items = [_create(instance.id, "span-ok-1"), _create(instance.id, "span-bad-1", status="done")]
    outcomes = await client.bulk_outcomes(bulk_body(items), ["span-ok-1", "span-bad-1"])
    assert outcomes["span-ok-1"] == {"status": "success"}
    assert outcomes["span-bad-1"]["code"] == "validation_error"


async def test_given_the_keys_the_terminate_control_is_still_read(
    client: PrefactorApiClient,
) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    await client.terminate_instance(instance.id, "enough")
    outcomes = await client.bulk_outcomes(
        bulk_body([_create(instance.id, "span-ok-1")]), ["span-ok-1"]
    )
    assert outcomes["span-ok-1"]["control"] == {"terminate": True, "reason": "enough"}


async def test_given_a_key_the_answer_escapes_its_success_is_read_from_the_parsed_answer(
    client: PrefactorApiClient,
) -> None:
    instance = await client.register_instance(agent_id="agent-o")
    keys = ['span"quoted', "span-ok-2"]
    outcomes = await client.bulk_outcomes(
        bulk_body([_create(instance.id, key) for key in keys]), keys
    )
    assert outcomes == {key: {"status": "success"} for key in keys}


@pytest.mark.parametrize(
    ("body", "headers"),
    [
        pytest.param(
            b'{"status":"success","outputs":{"k-000001":{"status":"success"}}}',
            {},
            id="minimal-not-announced",
        ),
        pytest.param(
            b'{"status": "success", "outputs": {"k-000001": {"status": "success"}}}',
            {"Preference-Applied": "return=minimal"},
            id="spaced",
        ),
        pytest.param(
            b'{"status":"success","outputs":{"k-000001":{"status":"error","code":"conflict"}}}',
            {"Preference-Applied": "return=minimal"},
            id="error",
        ),
    ],
)
async def test_given_the_keys_any_other_answer_is_parsed_and_checked(
    body: bytes, headers: dict[str, str]
) -> None:
    parsed = orjson.loads(body)["outputs"]["k-000001"]
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body, headers=headers))
    async with PrefactorApiClient(make_config(), transport=transport) as client:
        outcomes = await client.bulk_outcomes(
            bulk_body([_create(generate_pfid(), "k-000001")]), ["k-000001"]
        )
    assert outcomes == {"k-000001": parsed}
