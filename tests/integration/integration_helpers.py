"""The real server for the end-to-end tests: in process, or ``prefactor serve`` on loopback."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from prefactor._config import HttpClientConfig
from prefactor._export.sinks import HttpSink
from prefactor.server.store import Store

TOKEN = "integration-token-4d2"
BASE_URL = "http://prefactor.test"


@dataclass
class Server:
    """A store, the app over it, and what an SDK needs to reach it."""

    store: Store
    transport: httpx.ASGITransport

    @property
    def http_config(self) -> HttpClientConfig:
        return HttpClientConfig(api_url=BASE_URL, api_token=SecretStr(TOKEN))

    def sink(self) -> HttpSink:
        return HttpSink(self.http_config, transport=self.transport)

    def instances(self) -> list[dict[str, Any]]:
        return list(self.store.list_instances(page_size=100)["summaries"])

    def spans(self, instance_id: str) -> list[dict[str, Any]]:
        return list(self.store.list_spans(agent_instance_id=instance_id)["summaries"])


@dataclass
class Served:
    """A running ``prefactor serve``: its URL, and a reader of what it stored over HTTP."""

    url: str

    def instances(self, agent_id: str) -> list[dict[str, Any]]:
        return self._get("/api/v1/agent_instance", agent_id=agent_id, **_PAGE)

    def spans(self, instance_id: str) -> list[dict[str, Any]]:
        return self._get("/api/v1/agent_spans", agent_instance_id=instance_id, **_PAGE)

    def _get(self, path: str, **params: Any) -> list[dict[str, Any]]:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        response = httpx.get(self.url + path, params=params, headers=headers, timeout=10)
        response.raise_for_status()
        return list(response.json()["summaries"])


_PAGE = {"pagination[page_size]": 1000}
