"""The real server in process for the end-to-end tests."""

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
