"""``prefactor serve`` as a subprocess, driven by a client written only from the wire contract.

The client below uses raw httpx and the contract's field lists, not our
models, so it checks what any third-party client would see.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from pg_helpers import in_schema
from serve_helpers import ServeProcess

from prefactor._ids import generate_pfid

TOKEN = "contract-token-abcdef"

INSTANCE_FIELDS = {
    "type",
    "id",
    "account_id",
    "agent_id",
    "agent_version_id",
    "environment_id",
    "agent_deployment_id",
    "status",
    "inserted_at",
    "updated_at",
}
COUNT_FIELDS = {"total", "pending", "active", "complete", "failed", "cancelled", "finished"}
SPAN_FIELDS = {"type", "id", "agent_instance_id", "schema_name", "status"}
PAGINATION_FIELDS = {
    "item_count",
    "item_end",
    "item_start",
    "next_page_offset",
    "page_count",
    "page_index",
    "page_offset",
    "page_size",
    "previous_page_offset",
}

SCHEMAS = {
    "external_identifier": "contract-v1",
    "span_type_schemas": [
        {
            "name": "test:step",
            "params_schema": {
                "type": "object",
                "properties": {"n": {"type": "integer"}},
                "required": ["n"],
            },
            "result_schema": {"type": "object"},
        },
    ],
    "quality_schemas": [{"name": "grade", "schema": {"type": "object"}}],
}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, list[str]]]:
    if request.param == "sqlite":
        db = str(tmp_path_factory.mktemp("serve") / "traces.db")
    else:
        db = in_schema(request.getfixturevalue("pg_url"), "serve_contract")
    server = ServeProcess(db, TOKEN)
    url = server.wait_listening()
    try:
        yield url, server.header
    finally:
        server.stop()


class ContractClient:
    """Speaks the REST contract with raw JSON and checks every envelope."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> dict[str, Any]:
        response = self.http.request(method, path, json=body, params=params or None)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        assert data["status"] == "success"
        return data

    def instance(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        details: dict[str, Any] = self.call(method, path, body)["details"]
        assert INSTANCE_FIELDS <= set(details) and details["type"] == "agent_instance"
        assert set(details["span_counts"]) >= COUNT_FIELDS
        return details

    def span(self, method: str, path: str, body: Any) -> dict[str, Any]:
        details: dict[str, Any] = self.call(method, path, body)["details"]
        assert SPAN_FIELDS <= set(details) and details["type"] == "agent_span"
        assert isinstance(details["payload"], dict)
        return details


def test_the_banner_names_the_token_source_and_shows_none_of_it(
    served: tuple[str, list[str]],
) -> None:
    _, header = served
    assert header[2].strip() == "token: from PREFACTOR_API_TOKEN"
    assert TOKEN not in "".join(header)


def test_served_api_refuses_a_wrong_token(served: tuple[str, list[str]]) -> None:
    response = httpx.get(served[0] + "/api/v1/ping", headers={"Authorization": "Bearer no"})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_a_contract_client_reads_back_exactly_what_it_wrote(
    served: tuple[str, list[str]],
) -> None:
    c = ContractClient(served[0])
    try:
        _drive(c)
    finally:
        c.http.close()


def _drive(c: ContractClient) -> None:
    assert isinstance(c.http.get("/api/v1/ping").json(), dict)

    inst = c.instance(
        "POST",
        "/api/v1/agent_instance/register",
        {
            "agent_id": "contract-agent",
            "agent_version": {"external_identifier": "1.0", "name": "C"},
            "agent_schema_version": SCHEMAS,
            "update_current_version": True,
            "purpose": "eval",
            "idempotency_key": "contract-register-1",
        },
    )
    iid = inst["id"]
    assert (inst["status"], inst["purpose"]) == ("pending", "eval")
    started = c.instance(
        "POST",
        f"/api/v1/agent_instance/{iid}/start",
        {"timestamp": "2026-02-09T00:00:00.123456+00:00", "idempotency_key": None},
    )
    assert (started["status"], started["started_at"]) == ("active", "2026-02-09T00:00:00.123456Z")

    def create(**details: Any) -> dict[str, Any]:
        body = {"agent_instance_id": iid, "schema_name": "test:step", **details}
        return c.span("POST", "/api/v1/agent_spans", {"details": body})

    root = create(status="active", payload={"n": 1}, parent_span_id=None)
    child = create(
        status="active", payload={"n": 2}, parent_span_id=root["id"], idempotency_key="child-create"
    )
    pending = create(status="pending", payload={"n": 3})
    single = create(
        status="complete",
        payload={"n": 4},
        result_payload={"ok": True},
        parent_span_id=root["id"],
        started_at="2026-02-09T00:00:01.000Z",
        finished_at="2026-02-09T00:00:02.000Z",
    )
    assert (single["status"], single["finished_at"]) == ("complete", "2026-02-09T00:00:02.000000Z")

    c.span("POST", f"/api/v1/agent_spans/{pending['id']}/finish", {"status": "cancelled"})
    c.span(
        "POST",
        f"/api/v1/agent_spans/{child['id']}/finish",
        {"status": "failed", "result_payload": {"error": "boom"}},
    )
    c.span("POST", f"/api/v1/agent_spans/{root['id']}/finish", {"result_payload": {"done": 1}})
    conflict = c.http.post(f"/api/v1/agent_spans/{root['id']}/finish", json={})
    assert (conflict.status_code, conflict.json()["code"]) == (409, "invalid_action")

    quality = c.instance(
        "POST",
        f"/api/v1/agent_instance/{iid}/record_quality",
        {"name": "grade", "payload": {"a": 1}, "idempotency_key": "q-1"},
    )
    assert quality["quality_payloads"] == {"grade": {"a": 1}}

    bulk_id = generate_pfid()
    outputs = c.call(
        "POST",
        "/api/v1/bulk",
        {
            "items": [
                {
                    "_type": "agent_spans/create",
                    "idempotency_key": "bulk-create-1",
                    "id": bulk_id,
                    "agent_instance_id": iid,
                    "schema_name": "test:step",
                    "status": "active",
                    "payload": {"n": 5},
                },
                {
                    "_type": "agent_spans/finish",
                    "idempotency_key": "bulk-finish-1",
                    "agent_span_id": bulk_id,
                    "status": "complete",
                    "result_payload": {"r": 5},
                },
            ]
        },
    )["outputs"]
    assert [o["status"] for o in outputs.values()] == ["success", "success"]

    finished = c.instance("POST", f"/api/v1/agent_instance/{iid}/finish", {"status": "complete"})
    assert finished["status"] == "complete"
    again = c.http.post(f"/api/v1/agent_instance/{iid}/finish", json={"status": "complete"})
    assert again.status_code == 409

    got = c.instance("GET", f"/api/v1/agent_instance/{iid}")
    assert got["span_counts"] == {
        "total": 5,
        "pending": 0,
        "active": 0,
        "complete": 3,
        "failed": 1,
        "cancelled": 1,
        "finished": 5,
    }

    listed = c.call("GET", "/api/v1/agent_spans", agent_instance_id=iid)
    assert set(listed["pagination"]) >= PAGINATION_FIELDS and "sorting" in listed
    spans = {s["id"]: s for s in listed["summaries"]}
    expect = {
        root["id"]: ("complete", {"n": 1}, {"done": 1}, None),
        child["id"]: ("failed", {"n": 2}, {"error": "boom"}, root["id"]),
        pending["id"]: ("cancelled", {"n": 3}, None, None),
        single["id"]: ("complete", {"n": 4}, {"ok": True}, root["id"]),
        bulk_id: ("complete", {"n": 5}, {"r": 5}, None),
    }
    assert {
        k: (s["status"], s["payload"], s["result_payload"], s["parent_span_id"])
        for k, s in spans.items()
    } == expect

    instances = c.call("GET", "/api/v1/agent_instance", agent_id="contract-agent")
    assert [s["id"] for s in instances["summaries"]] == [iid]
    assert set(instances["pagination"]) >= PAGINATION_FIELDS
    assert set(instances["sorting"]) == {"field", "direction"}
