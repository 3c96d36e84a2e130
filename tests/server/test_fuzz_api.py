"""Schemathesis fuzzes every operation of the served OpenAPI document: no answer is a 5xx.

Cases are generated from ``/openapi.json`` (valid and invalid ones alike) and
sent to the real app in process. Half of them are pointed at a real instance
and span and at real span types (hostile-looking schemas included), so the
store's rules are reached, not only its request parsing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from server_helpers import SCHEMA_VERSION

from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "fuzz-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = 60
FUZZ_SCHEMAS: dict[str, Any] = {
    **SCHEMA_VERSION,
    "external_identifier": "fuzz-v1",
    "span_type_schemas": [
        *SCHEMA_VERSION["span_type_schemas"],
        {
            "name": "fuzz:hostile",
            "params_schema": {
                "type": "object",
                "properties": {
                    "word": {"type": "string", "pattern": "^(a+)+$"},
                    "tags": {"type": "array", "uniqueItems": True},
                },
                "patternProperties": {"^(x+)+$": {"type": "integer"}},
            },
        },
    ],
}
SPAN_TYPES = ["agent:llm", "agent:tool", "fuzz:hostile"]


def _document() -> dict[str, Any]:
    store = Store()
    try:
        document: dict[str, Any] = create_app(store, token=TOKEN).openapi()
    finally:
        store.close()
    return document


OPERATIONS = [
    result.ok() for result in schemathesis.openapi.from_dict(_document()).get_all_operations()
]


class Fuzzed:
    """The app under fuzzing and the real ids cases may be pointed at."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path)
        self.app: FastAPI = create_app(self.store, token=TOKEN)
        registered = self.store.register_instance({"agent_schema_version": FUZZ_SCHEMAS})
        self.instance_id: str = registered["details"]["id"]
        span = self.store.create_span(
            {
                "details": {
                    "agent_instance_id": self.instance_id,
                    "schema_name": "agent:tool",
                    "status": "active",
                }
            }
        )
        self.span_id: str = span["details"]["id"]

    def aim(self, case: Any, schema_name: str) -> None:
        """Point a case's ids (path and body) at the real instance and span."""
        for name, value in (("instance_id", self.instance_id), ("span_id", self.span_id)):
            if name in (case.path_parameters or {}):
                case.path_parameters[name] = value
        if isinstance(case.query, dict) and "agent_instance_id" in case.query:
            case.query["agent_instance_id"] = self.instance_id
        body = case.body if isinstance(case.body, dict) else None
        details = body.get("details") if body is not None else None
        for target in (body, details):
            if isinstance(target, dict) and "agent_instance_id" in target:
                target["agent_instance_id"] = self.instance_id
                target["schema_name"] = schema_name


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzed]:
    target = Fuzzed(tmp_path_factory.mktemp("fuzz") / "fuzz.db")
    yield target
    target.store.close()


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: op.label)
def test_no_generated_request_gets_a_server_error(operation: Any, fuzzed: Fuzzed) -> None:
    @given(case=operation.as_strategy(), aimed=st.booleans(), name=st.sampled_from(SPAN_TYPES))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def fuzz(case: Any, aimed: bool, name: str) -> None:
        if aimed:
            fuzzed.aim(case, name)
        case.call_and_validate(app=fuzzed.app, headers=AUTH, checks=[not_a_server_error])

    fuzz()


async def test_the_openapi_document_is_served_behind_the_token(fuzzed: Fuzzed) -> None:
    transport = httpx.ASGITransport(app=fuzzed.app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        refused = await http.get("/openapi.json")
        served = await http.get("/openapi.json", headers=AUTH)
    assert (refused.status_code, refused.json()["code"]) == (401, "unauthorized")
    paths = served.json()["paths"]
    assert "/api/v1/bulk" in paths
    body = paths["/api/v1/bulk"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/BulkRequest"}
