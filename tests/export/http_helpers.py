"""The real API app in process, and transports that count requests or inject faults."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

from prefactor._config import HttpClientConfig
from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "test-token-7f3a9c"
BASE_URL = "http://prefactor.test"

Fault = Callable[[httpx.Request, int], "httpx.Response | Exception | None"]


def api_config(**overrides: Any) -> HttpClientConfig:
    return HttpClientConfig(**{"api_url": BASE_URL, "api_token": SecretStr(TOKEN), **overrides})


@dataclass
class Seen:
    """What one request carried."""

    method: str
    path: str
    headers: httpx.Headers
    body: Any


class CountingTransport(httpx.AsyncBaseTransport):
    """Wraps a transport; records every request and may answer some with a fault.

    ``before(request, n)`` runs before the server sees request ``n`` (0-based):
    a response or exception returned replaces it. ``after(request, n)`` runs
    after the server processed it: a response returned replaces the real
    answer (the server's effects stay, as when an answer is lost).
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        before: Fault | None = None,
        after: Fault | None = None,
    ) -> None:
        self.inner = inner
        self.before = before
        self.after = after
        self.seen: list[Seen] = []
        self.lock = threading.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        with self.lock:
            n = len(self.seen)
            self.seen.append(Seen(request.method, request.url.path, request.headers, body))
        if self.before is not None:
            fault = self.before(request, n)
            if isinstance(fault, Exception):
                raise fault
            if fault is not None:
                return fault
        response = await self.inner.handle_async_request(request)
        if self.after is not None:
            fault = self.after(request, n)
            if isinstance(fault, Exception):
                raise fault
            if fault is not None:
                await response.aread()
                return fault
        return response

    def paths(self) -> list[str]:
        with self.lock:
            return [s.path for s in self.seen]

    def bulk_items(self) -> list[dict[str, Any]]:
        with self.lock:
            return [i for s in self.seen if s.path == "/api/v1/bulk" for i in s.body["items"]]


def error(status: int, code: str = "unavailable", headers: dict[str, str] | None = None) -> Any:
    return httpx.Response(
        status, json={"status": "error", "code": code, "message": "injected"}, headers=headers
    )


@dataclass
class Server:
    """A store on a real file and the app over it."""

    path: Path
    store: Store
    app: Any = field(repr=False)

    def transport(
        self, before: Fault | None = None, after: Fault | None = None
    ) -> CountingTransport:
        return CountingTransport(httpx.ASGITransport(app=self.app), before, after)


def make_server(path: Path) -> Server:
    store = Store(path)
    return Server(path, store, create_app(store, token=TOKEN))


REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def serve_process(db: Path, token: str = TOKEN) -> Iterator[str]:
    """``prefactor serve`` on a free loopback port in a subprocess; yields its base URL."""
    command = [
        sys.executable,
        "-c",
        "from prefactor._cli import main; raise SystemExit(main())",
        "serve",
        "--port",
        "0",
        "--db",
        str(db),
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "PREFACTOR_API_TOKEN": token}
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://[\d.]+:\d+", line)
        assert match, f"prefactor serve said {line!r}"
        yield match.group(0)
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


@contextlib.contextmanager
def silent_server() -> Iterator[str]:
    """A loopback port that accepts connections and never answers; yields its base URL."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)  # the kernel completes connections; nobody ever reads them
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def refused_url() -> str:
    """The base URL of a loopback port nobody listens on (connections are refused)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    return f"http://127.0.0.1:{port}"
