"""HTTP: ``POST /api/v1/bulk`` honours ``Prefer: return=minimal`` (RFC 7240)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from server_helpers import GOOD_PAYLOAD, Register

from prefactor._ids import generate_pfid
from prefactor.server.app import create_app, wants_minimal
from prefactor.server.store import Store

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def http(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store, token=TOKEN), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def _items(instance_id: str, span_id: str) -> list[dict[str, Any]]:
    details = {
        "id": span_id,
        "agent_instance_id": instance_id,
        "schema_name": "agent:llm",
        "status": "complete",
        "payload": GOOD_PAYLOAD,
        "result_payload": {"text": "ok"},
    }
    return [{"_type": "agent_spans/create", "idempotency_key": f"{span_id}-c", "details": details}]


async def test_bulk_with_prefer_minimal_answers_outcomes_and_says_so(
    http: httpx.AsyncClient, store: Store, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    response = await http.post(
        "/api/v1/bulk",
        json={"items": _items(instance_id, span_id)},
        headers={**AUTH, "Prefer": "return=minimal"},
    )
    assert response.headers["preference-applied"] == "return=minimal"
    assert response.json() == {
        "status": "success",
        "outputs": {f"{span_id}-c": {"status": "success"}},
    }
    (span,) = store.list_spans(agent_instance_id=instance_id)["summaries"]
    assert (span["id"], span["result_payload"]) == (span_id, {"text": "ok"})


async def test_bulk_without_prefer_echoes_every_span(
    http: httpx.AsyncClient, register: Register
) -> None:
    instance_id, span_id = register(), generate_pfid()
    response = await http.post(
        "/api/v1/bulk", json={"items": _items(instance_id, span_id)}, headers=AUTH
    )
    assert "preference-applied" not in response.headers
    assert response.json()["outputs"][f"{span_id}-c"]["details"]["id"] == span_id


async def test_a_refused_bulk_with_prefer_minimal_answers_the_error_envelope(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post(
        "/api/v1/bulk", json={"items": []}, headers={**AUTH, "Prefer": "return=minimal"}
    )
    assert (response.status_code, response.json()["code"]) == (422, "validation_error")
    assert "preference-applied" not in response.headers


@pytest.mark.parametrize(
    ("values", "minimal"),
    [
        pytest.param(["return=minimal"], True, id="alone"),
        pytest.param(['respond-async, RETURN = "minimal"; x=1'], True, id="among-others"),
        pytest.param(["wait=10", "return=minimal"], True, id="second-header"),
        pytest.param(["return=representation"], False, id="representation"),
        pytest.param(["minimal"], False, id="no-name"),
        pytest.param([], False, id="absent"),
    ],
)
def test_wants_minimal_reads_the_return_preference(values: list[str], minimal: bool) -> None:
    assert wants_minimal(values) is minimal
