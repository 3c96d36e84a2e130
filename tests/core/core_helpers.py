"""What the prefactor-core tests share: the Quick Start's span type, the server in process."""

from __future__ import annotations

import json
from typing import Any

import httpx

from prefactor._config import HttpClientConfig
from prefactor._schemas.registry import SchemaRegistry
from prefactor.server.app import create_app
from prefactor.server.store import Store

VERSION = {"name": "My Agent", "external_identifier": "v1.0.0"}

LLM_PARAMS = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
    "required": ["model", "prompt"],
}
LLM_RESULT = {"type": "object", "properties": {"response": {"type": "string"}}}


def llm_registry() -> SchemaRegistry:
    """A registry holding the Quick Start's ``agent:llm`` span type."""
    registry = SchemaRegistry()
    registry.register_type(
        name="agent:llm",
        params_schema=LLM_PARAMS,
        result_schema=LLM_RESULT,
        title="LLM Call",
        description="A call to a language model",
        template="{{model}}: {{prompt}} → {{response}}",
    )
    return registry


TOKEN = "core-compat-token-7f1"
BASE_URL = "http://prefactor.test"


class Recording(httpx.AsyncBaseTransport):
    """The real server in process, keeping each request's headers and JSON body."""

    def __init__(self, store: Store) -> None:
        self.inner = httpx.ASGITransport(app=create_app(store, token=TOKEN))
        self.requests: list[tuple[httpx.Headers, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await request.aread()
        self.requests.append((request.headers, json.loads(request.content or b"null")))
        return await self.inner.handle_async_request(request)

    def registrations(self) -> list[dict[str, Any]]:
        """The register items the server was sent, in order."""
        return [
            item
            for _, body in self.requests
            if isinstance(body, dict)
            for item in body.get("items", [])
            if item.get("_type") == "agent_instances/register"
        ]


def http_config(token: str = TOKEN) -> HttpClientConfig:
    """The in-process server's address and the token it expects (or another)."""
    return HttpClientConfig(api_url=BASE_URL, api_token=token)
