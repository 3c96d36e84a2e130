"""The HTTP layer on the wire: auth, envelopes for every failure, routes, query params."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from server_helpers import SCHEMA_VERSION, span_body

from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def http_store(store: Store) -> Store:
    return store


@pytest.fixture
async def http(http_store: Store) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(http_store, token=TOKEN, max_body_bytes=4096)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert (body["status"], body["code"]) == ("error", code)
    assert isinstance(body["message"], str) and body["message"]
    return body


async def test_ping_with_the_token_answers_success(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/v1/ping", headers=AUTH)
    assert (response.status_code, response.json()) == (200, {"status": "success"})


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong"),
        pytest.param({"Authorization": TOKEN}, id="not-bearer"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/ping", "/api/v1/nowhere"])
async def test_requests_without_the_right_token_answer_401_unauthorized(
    http: httpx.AsyncClient, headers: dict[str, str], path: str
) -> None:
    assert_error(await http.get(path, headers=headers), 401, "unauthorized")


async def test_unknown_route_answers_404_not_found(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/v1/nowhere", headers=AUTH), 404, "not_found")


async def test_wrong_method_answers_405_with_the_envelope(http: httpx.AsyncClient) -> None:
    response = await http.delete("/api/v1/bulk", headers=AUTH)
    assert_error(response, 405, "method_not_allowed")
    assert "POST" in response.headers["allow"]


async def test_malformed_json_answers_400_invalid_json(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/agent_instance/register", content=b"{nope", headers=AUTH)
    assert_error(response, 400, "invalid_json")


async def test_a_json_body_that_is_not_an_object_answers_422(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/bulk", json=[1, 2], headers=AUTH)
    assert_error(response, 422, "validation_error")


async def test_wrong_types_answer_422_with_an_errors_map(http: httpx.AsyncClient) -> None:
    body = {"agent_id": 5, "purpose": "fun"}
    response = await http.post("/api/v1/agent_instance/register", json=body, headers=AUTH)
    errors = assert_error(response, 422, "validation_error")["errors"]
    assert set(errors) == {"agent_id", "purpose"}


async def test_an_oversized_body_answers_413(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/bulk", content=b"x" * 5000, headers=AUTH)
    assert_error(response, 413, "payload_too_large")


async def test_an_oversized_chunked_body_answers_413(http: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x" * 1000

    response = await http.post("/api/v1/bulk", content=chunks(), headers=AUTH)
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "payload_too_large")


async def test_an_empty_body_is_an_empty_object(http: httpx.AsyncClient) -> None:
    response = await http.post("/api/v1/agent_instance/register", headers=AUTH)
    assert response.json()["details"]["status"] == "pending"


async def test_store_problems_travel_as_their_status_and_envelope(
    http: httpx.AsyncClient,
) -> None:
    response = await http.post("/api/v1/agent_instance/nope/start", json={}, headers=AUTH)
    assert_error(response, 404, "not_found")


async def test_list_instances_reads_agent_id_and_pagination_params(
    http: httpx.AsyncClient, http_store: Store
) -> None:
    for agent in ("a", "a", "a", "b"):
        http_store.register_instance({"agent_id": agent})
    params = {"agent_id": "a", "pagination[offset]": "1", "pagination[page_size]": "1"}
    body = (await http.get("/api/v1/agent_instance", params=params, headers=AUTH)).json()
    assert len(body["summaries"]) == 1
    assert (body["pagination"]["item_count"], body["pagination"]["page_offset"]) == (3, 1)


async def test_list_instances_without_agent_id_lists_all(
    http: httpx.AsyncClient, http_store: Store
) -> None:
    for agent in ("a", "b"):
        http_store.register_instance({"agent_id": agent})
    body = (await http.get("/api/v1/agent_instance", headers=AUTH)).json()
    assert body["pagination"]["item_count"] == 2


async def test_non_integer_pagination_answers_422(http: httpx.AsyncClient) -> None:
    params = {"pagination[offset]": "x"}
    response = await http.get("/api/v1/agent_instance", params=params, headers=AUTH)
    assert assert_error(response, 422, "validation_error")["errors"] == {
        "pagination[offset]": ["must be an integer"]
    }


async def test_list_spans_without_an_instance_answers_422(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/api/v1/agent_spans", headers=AUTH), 422, "validation_error")


async def test_span_routes_create_finish_and_list(
    http: httpx.AsyncClient, http_store: Store
) -> None:
    register = {"agent_schema_version": SCHEMA_VERSION}
    instance_id = http_store.register_instance(register)["details"]["id"]
    created = await http.post("/api/v1/agent_spans", json=span_body(instance_id), headers=AUTH)
    span_id = created.json()["details"]["id"]
    finished = await http.post(
        f"/api/v1/agent_spans/{span_id}/finish",
        json={"result_payload": {"text": "t"}},
        headers=AUTH,
    )
    listed = await http.get(
        "/api/v1/agent_spans", params={"agent_instance_id": instance_id}, headers=AUTH
    )
    assert listed.json()["summaries"] == [finished.json()["details"]]


async def test_an_internal_failure_answers_500_with_the_envelope(
    http: httpx.AsyncClient, http_store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    http_store.close()
    response = await http.get("/api/v1/agent_instance/x", headers=AUTH)
    assert_error(response, 500, "internal_error")
    assert "unexpected error" in caplog.text


@pytest.mark.parametrize("token", ["", "x" * 15], ids=["empty", "15-characters"])
def test_a_token_shorter_than_16_characters_is_refused(http_store: Store, token: str) -> None:
    with pytest.raises(ValueError, match="at least 16 characters"):
        create_app(http_store, token=token)


async def test_a_span_that_breaks_its_schema_answers_200_flagged(
    http: httpx.AsyncClient, http_store: Store
) -> None:
    register = {"agent_schema_version": SCHEMA_VERSION}
    instance_id = http_store.register_instance(register)["details"]["id"]
    body = span_body(instance_id, payload={"model": "m", "messages": "not a list"})
    response = await http.post("/api/v1/agent_spans", json=body, headers=AUTH)
    assert response.status_code == 200
    violations = response.json()["details"]["schema_violations"]
    assert [(v["side"], v["path"]) for v in violations] == [("params", "$.messages")]


async def test_a_malformed_span_still_answers_422(
    http: httpx.AsyncClient, http_store: Store
) -> None:
    instance_id = http_store.register_instance({})["details"]["id"]
    body = span_body(instance_id, status="done")
    response = await http.post("/api/v1/agent_spans", json=body, headers=AUTH)
    assert list(assert_error(response, 422, "validation_error")["errors"]) == ["status"]
