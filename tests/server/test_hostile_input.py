"""Hostile input over HTTP: each answers the error envelope and a 4xx, or is stored flagged.

Nothing here may answer a 5xx, fetch anything, or hold the store for long: the
timeouts below only turn a hang into a failure; they claim no speed.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "hostile-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OVERFLOWING = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


@pytest.fixture
async def http(store: Store) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(store, token=TOKEN))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=AUTH
    ) as client:
        yield client


def refused(response: httpx.Response, status: int = 422) -> dict[str, Any]:
    """The error envelope of a 4xx answer."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"] == "error" and body["message"]
    return body


async def _instance(http: httpx.AsyncClient, schema: dict[str, Any] | None = None) -> str:
    body = {} if schema is None else {"agent_schema_version": schema}
    response = await http.post("/api/v1/agent_instance/register", json=body)
    assert response.status_code == 200, response.text
    instance_id: str = response.json()["details"]["id"]
    return instance_id


def _one_span_type(params_schema: dict[str, Any]) -> dict[str, Any]:
    return {"span_type_schemas": [{"name": "t:step", "params_schema": params_schema}]}


async def _create(http: httpx.AsyncClient, instance_id: str, **details: Any) -> httpx.Response:
    base = {"agent_instance_id": instance_id, "schema_name": "t:step", "status": "active"}
    return await http.post("/api/v1/agent_spans", json={"details": {**base, **details}})


# --- timestamps -------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", OVERFLOWING)
async def test_a_span_time_that_overflows_in_utc_answers_422(
    http: httpx.AsyncClient, stamp: str
) -> None:
    body = refused(await _create(http, await _instance(http), started_at=stamp))
    assert list(body["errors"]) == ["started_at"]


@pytest.mark.parametrize("stamp", OVERFLOWING)
async def test_an_instance_time_that_overflows_in_utc_answers_422(
    http: httpx.AsyncClient, stamp: str
) -> None:
    instance_id = await _instance(http)
    response = await http.post(
        f"/api/v1/agent_instance/{instance_id}/start", json={"timestamp": stamp}
    )
    assert list(refused(response)["errors"]) == ["timestamp"]


async def test_a_bulk_item_whose_time_overflows_is_refused_alone(http: httpx.AsyncClient) -> None:
    instance_id = await _instance(http)
    item = {
        "_type": "agent_instances/finish",
        "idempotency_key": "finish-001",
        "agent_instance_id": instance_id,
        "timestamp": OVERFLOWING[0],
    }
    response = await http.post("/api/v1/bulk", json={"items": [item]})
    assert response.status_code == 200
    output = response.json()["outputs"]["finish-001"]
    assert (output["status"], output["code"], list(output["errors"])) == (
        "error",
        "validation_error",
        ["timestamp"],
    )


# --- status of the wrong type ---------------------------------------------------------


@pytest.mark.parametrize("status", [["active"], {"active": True}], ids=["list", "object"])
async def test_a_span_status_that_is_not_a_string_answers_422(
    http: httpx.AsyncClient, status: Any
) -> None:
    body = refused(await _create(http, await _instance(http), status=status))
    assert list(body["errors"]) == ["status"]


@pytest.mark.parametrize("status", [["active"], {"active": True}], ids=["list", "object"])
async def test_a_bulk_span_status_that_is_not_a_string_is_an_item_error(
    http: httpx.AsyncClient, status: Any
) -> None:
    item = {
        "_type": "agent_spans/create",
        "idempotency_key": "create-001",
        "agent_instance_id": await _instance(http),
        "schema_name": "t:step",
        "status": status,
    }
    response = await http.post("/api/v1/bulk", json={"items": [item]})
    assert response.json()["outputs"]["create-001"]["code"] == "validation_error"


@pytest.mark.parametrize("status", [["failed"], {"failed": 1}], ids=["list", "object"])
async def test_a_finish_status_that_is_not_a_string_answers_422(
    http: httpx.AsyncClient, status: Any
) -> None:
    span_id = (await _create(http, await _instance(http))).json()["details"]["id"]
    response = await http.post(f"/api/v1/agent_spans/{span_id}/finish", json={"status": status})
    assert list(refused(response)["errors"]) == ["status"]


# --- pagination -----------------------------------------------------------------------


@pytest.mark.parametrize("offset", [2**63, 2**64, 10**30])
@pytest.mark.parametrize("path", ["/api/v1/agent_instance", "/api/v1/agent_spans"])
async def test_an_offset_beyond_sqlite_integers_answers_422(
    http: httpx.AsyncClient, path: str, offset: int
) -> None:
    params = {"agent_instance_id": await _instance(http), "pagination[offset]": str(offset)}
    body = refused(await http.get(path, params=params))
    assert list(body["errors"]) == ["pagination[offset]"]


async def test_the_largest_offset_answers_an_empty_page(http: httpx.AsyncClient) -> None:
    params = {"pagination[offset]": str(2**63 - 1)}
    response = await http.get("/api/v1/agent_instance", params=params)
    assert (response.status_code, response.json()["summaries"]) == (200, [])


# --- schemas --------------------------------------------------------------------------


def _nested(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


async def test_a_100_level_deep_schema_answers_422_at_registration(
    http: httpx.AsyncClient,
) -> None:
    body = {"agent_schema_version": _one_span_type(_nested(100))}
    errors = refused(await http.post("/api/v1/agent_instance/register", json=body))["errors"]
    assert errors == {
        "agent_schema_version.span_type_schemas.t:step.params_schema": [
            "invalid JSON Schema: it nests deeper than 64 levels"
        ]
    }


async def test_a_schema_nested_within_the_limit_is_accepted(http: httpx.AsyncClient) -> None:
    instance_id = await _instance(http, _one_span_type(_nested(31)))
    payload: dict[str, Any] = {"a": 1}
    for _ in range(30):
        payload = {"a": payload}
    details = (await _create(http, instance_id, payload=payload)).json()["details"]
    assert [v["path"] for v in details["schema_violations"]] == ["$" + ".a" * 31]


class _Recorder(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        body = b'{"type": "string"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def schema_host() -> Iterator[tuple[str, list[str]]]:
    """A loopback server that serves a valid schema to anyone and notes every request."""
    hits: list[str] = []
    handler = type("Handler", (_Recorder,), {"hits": hits})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", hits
    finally:
        server.shutdown()
        server.server_close()


async def test_a_ref_to_a_url_answers_422_and_is_never_fetched(
    http: httpx.AsyncClient, schema_host: tuple[str, list[str]]
) -> None:
    url, hits = schema_host
    schema = {"type": "object", "properties": {"a": {"$ref": f"{url}/schema.json"}}}
    body = {"agent_schema_version": _one_span_type(schema)}
    errors = refused(await http.post("/api/v1/agent_instance/register", json=body))["errors"]
    (reason,) = errors["agent_schema_version.span_type_schemas.t:step.params_schema"]
    assert f"{url}/schema.json" in reason and "never fetched" in reason
    assert hits == []


async def test_a_ref_to_a_file_answers_422_and_is_never_read(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    target = tmp_path / "schema.json"
    target.write_bytes(orjson.dumps({"type": "string"}))
    schema = {"properties": {"a": {"$ref": target.as_uri()}}}
    body = {"agent_schema_version": _one_span_type(schema)}
    errors = refused(await http.post("/api/v1/agent_instance/register", json=body))["errors"]
    (reason,) = errors["agent_schema_version.span_type_schemas.t:step.params_schema"]
    assert "never fetched" in reason


async def test_a_ref_within_the_schema_document_is_resolved(http: httpx.AsyncClient) -> None:
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": "#/$defs/word"}},
        "$defs": {"word": {"type": "string"}},
    }
    instance_id = await _instance(http, _one_span_type(schema))
    details = (await _create(http, instance_id, payload={"a": 1})).json()["details"]
    assert details["schema_violations"] == [
        {"side": "params", "path": "$.a", "reason": "1 is not of type 'string'"}
    ]


@pytest.mark.timeout(20)
async def test_a_catastrophic_pattern_is_flagged_without_backtracking(
    http: httpx.AsyncClient,
) -> None:
    schema = {"type": "object", "properties": {"word": {"type": "string", "pattern": "^(a+)+$"}}}
    instance_id = await _instance(http, _one_span_type(schema))
    word = "a" * 40 + "!"
    details = (await _create(http, instance_id, payload={"word": word})).json()["details"]
    assert details["schema_violations"] == [
        {"side": "params", "path": "$.word", "reason": f'"{word}" does not match "^(a+)+$"'}
    ]


@pytest.mark.timeout(20)
async def test_a_catastrophic_pattern_property_is_flagged_without_backtracking(
    http: httpx.AsyncClient,
) -> None:
    schema = {
        "type": "object",
        "patternProperties": {"^(a+)+$": {"type": "integer"}},
        "additionalProperties": False,
    }
    instance_id = await _instance(http, _one_span_type(schema))
    key = "a" * 40 + "!"
    details = (await _create(http, instance_id, payload={key: 1})).json()["details"]
    assert [(v["path"], "not allowed" in v["reason"]) for v in details["schema_violations"]] == [
        ("$", True)
    ]


@pytest.mark.timeout(20)
async def test_unique_items_over_thousands_of_objects_are_explained_in_linear_time(
    http: httpx.AsyncClient,
) -> None:
    schema = {"type": "object", "properties": {"tags": {"type": "array", "uniqueItems": True}}}
    instance_id = await _instance(http, _one_span_type(schema))
    tags = [{"n": n} for n in range(5_000)] + [{"n": 0}]
    details = (await _create(http, instance_id, payload={"tags": tags})).json()["details"]
    assert [v["path"] for v in details["schema_violations"]] == ["$.tags"]


async def test_a_recursive_schema_explains_a_payload_deeper_than_pythons_stack(
    http: httpx.AsyncClient,
) -> None:
    node = {"type": "object", "properties": {"c": {"$ref": "#"}}, "additionalProperties": False}
    instance_id = await _instance(http, _one_span_type(node))
    payload: dict[str, Any] = {"x": 1}
    for _ in range(250):
        payload = {"c": payload}
    details = (await _create(http, instance_id, payload=payload)).json()["details"]
    assert [v["path"] for v in details["schema_violations"]] == ["$" + ".c" * 250]


async def test_a_payload_deeper_than_the_encoder_allows_answers_422(
    http: httpx.AsyncClient,
) -> None:
    payload: dict[str, Any] = {}
    for _ in range(600):
        payload = {"c": payload}
    response = await _create(http, await _instance(http), payload=payload)
    assert refused(response)["code"] == "validation_error"
