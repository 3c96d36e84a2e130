"""Run the real local Prefactor server on a loopback port, for integration tests.

:class:`LocalServer` serves the project's own API (``create_app`` over a
``Store`` on a SQLite file) with uvicorn in a background thread, on a socket
bound to ``127.0.0.1`` port 0 before the thread starts, so there is no race
for a free port and ``url`` is known at once. :class:`ServerClient` reads back
what the server stored, as plain API objects or as a :class:`Trace`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import httpx
import uvicorn

from prefactor import _runtime as runtime
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.tracer import Tracer
from prefactor.server._database import is_database_url
from prefactor.server.app import create_app
from prefactor.server.store import Store
from prefactor.testing.spans import Trace

__all__ = ["LocalServer", "ServerClient"]

_TICK_SECONDS = 0.1


class _ThreadServer(uvicorn.Server):
    """A uvicorn server that says when it is up and stops as soon as it is asked to."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake: asyncio.Event | None = None

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            self.loop = asyncio.get_running_loop()
            self.wake = asyncio.Event()
            await super().startup(sockets=sockets)
        finally:
            self.ready.set()

    async def main_loop(self) -> None:
        # uvicorn's own loop polls every 0.1 s; waiting on an event makes stop() immediate.
        assert self.wake is not None
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864_000
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), _TICK_SECONDS)

    def request_stop(self) -> None:
        """Ask the server to stop, from any thread."""
        self.should_exit = True
        loop, wake = self.loop, self.wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop already closed
                loop.call_soon_threadsafe(wake.set)


class ServerClient:
    """A small synchronous reader of the server's instances and spans.

    Args:
        url: the server's base URL.
        token: the bearer token (kept out of ``repr``).
        timeout: seconds per request.
    """

    def __init__(self, url: str, token: str, *, timeout: float = 10.0) -> None:
        self.url = url
        self._http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        """``GET`` an API path (with query ``params``) and return its JSON body.

        Raises:
            httpx.HTTPStatusError: the server answered an error status.
        """
        response = self._http.get(path, params=dict(params or {}))
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        """``POST`` a JSON body to an API path and return the JSON answer.

        Raises:
            httpx.HTTPStatusError: the server answered an error status.
        """
        response = self._http.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def instances(self, agent_id: str | None = None) -> list[dict[str, Any]]:
        """Every stored instance (of ``agent_id`` if given), oldest first."""
        params: dict[str, Any] = {"agent_id": agent_id} if agent_id else {}
        found = self._pages("/api/v1/agent_instance", 1000, params)
        found.reverse()  # the API lists newest first
        return found

    def spans(self, instance_id: str) -> list[dict[str, Any]]:
        """Every span of one instance, by start time."""
        return self._pages("/api/v1/agent_spans", 10_000, {"agent_instance_id": instance_id})

    def trace(self, agent_id: str | None = None) -> Trace:
        """Every stored instance (of ``agent_id`` if given) and its spans, as a :class:`Trace`."""
        instances = self.instances(agent_id)
        spans = [span for inst in instances for span in self.spans(inst["id"])]
        return Trace.from_api(instances, spans)

    def _pages(self, path: str, size: int, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page_params = {**params, "pagination[offset]": offset, "pagination[page_size]": size}
            body = self.get(path, page_params)
            found.extend(body["summaries"])
            offset = body["pagination"]["next_page_offset"]
        return found

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __repr__(self) -> str:
        return f"ServerClient(url={self.url!r})"


class LocalServer:
    """The real local API on ``127.0.0.1``, served from a background thread.

    Use it as a context manager (or call :meth:`start` and :meth:`stop`)::

        with LocalServer(tmp_path / "prefactor.db") as server:
            prefactor.configure(api_url=server.url, api_token=server.token)
            ...
            assert server.client.trace().span("tool:search").status == "complete"

    Args:
        db_path: the SQLite file the server stores into (created if missing), or a
            ``postgresql://`` URL (kept as given; ``db_path`` then shows it as a path).
        token: the bearer token it requires, 16 characters or more (default: a random one).
        startup_timeout: seconds to wait for the server to listen.
    """

    def __init__(
        self, db_path: str | Path, *, token: str | None = None, startup_timeout: float = 10.0
    ) -> None:
        self.db_path = Path(db_path)
        # A Path would fold the '//' of a URL, so the store opens the text as given.
        self._db: str | Path = db_path if is_database_url(db_path) else self.db_path
        self.token = token or secrets.token_urlsafe(16)
        self._startup_timeout = startup_timeout
        self._store: Store | None = None
        self._server: _ThreadServer | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._client: ServerClient | None = None
        self._error: BaseException | None = None
        self._routed = False
        self.url = ""

    @property
    def client(self) -> ServerClient:
        """A reader of what the server stored.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._client is None:
            raise RuntimeError("the server is not running")
        return self._client

    def start(self) -> Self:
        """Open the store, bind a free loopback port and serve until :meth:`stop`.

        Raises:
            RuntimeError: already started, or the server did not come up in time.
        """
        if self._thread is not None:
            raise RuntimeError("the server is already running")
        self._store = Store(self._db)
        app = create_app(self._store, token=self.token)
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="off", ws="none", loop="asyncio"
        )
        self._server = _ThreadServer(config)
        # Naming the protocol matters: asyncio sets TCP_NODELAY only on sockets whose proto is
        # IPPROTO_TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._socket.bind(("127.0.0.1", 0))
        port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(
            target=self._serve, name="prefactor-local-server", daemon=True
        )
        self._thread.start()
        if not self._server.ready.wait(self._startup_timeout) or not self._server.started:
            self.stop()
            raise RuntimeError(f"the local server did not start: {self._error!r}")
        self._client = ServerClient(self.url, self.token)
        return self

    def route_tracer(
        self,
        *,
        strict: bool = True,
        agent_id: str = "test-agent",
        registry: SchemaRegistry | None = None,
    ) -> Tracer:
        """Point the process-wide tracer at this server over HTTP; :meth:`stop` shuts it down.

        The export queue blocks rather than drops when full, so a test loses
        nothing; call :func:`prefactor._runtime.flush` before reading back.

        Raises:
            RuntimeError: the server is not running.
        """
        if self._thread is None:
            raise RuntimeError("the server is not running")
        tracer = runtime.configure(
            api_url=self.url,
            api_token=self.token,
            strict=strict,
            agent_id=agent_id,
            registry=registry,
            on_full="block",
        )
        self._routed = True
        return tracer

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except BaseException as exc:  # reported by start(); a thread has no caller to raise to
            self._error = exc
            self._server.ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving, wait for the thread, close the client, socket and store.

        A tracer routed here by :meth:`route_tracer` is flushed and shut down first.

        Raises:
            RuntimeError: the server thread did not stop within ``timeout`` seconds.
        """
        if self._routed:
            self._routed = False
            runtime.shutdown(timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        thread, self._thread = self._thread, None
        if self._server is not None:
            self._server.request_stop()
        if thread is not None:
            thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if thread is not None and thread.is_alive():
            raise RuntimeError(f"the local server did not stop within {timeout} s")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalServer(url={self.url!r}, db_path={str(self.db_path)!r})"
