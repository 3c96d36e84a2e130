"""Shared parts of the viewer tests: an agent that fails and breaks a schema, a served app."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import uvicorn

from prefactor import _runtime as runtime
from prefactor._tracing.agents import agent, tool
from prefactor.server.app import create_app
from prefactor.server.store import Store

TOKEN = "viewer-token-7f3a9c2e51d04b68"
BASE_URL = "http://viewer.test"  # the in-process app's address (ASGI)


@tool
def kb_search(query: str, limit: int = 3) -> list[str]:
    """Search the knowledge base."""
    return [f"article about {query}", "<b>pricing</b> page"][:limit]


@tool
def fetch_help_page(url: str):  # type: ignore[no-untyped-def]
    """Fail: no return hint, so its error record breaks no schema and is stored."""
    raise TimeoutError(f"GET {url} did not answer within 5 s")


@tool
def ask_model(model: str, messages: list[dict[str, str]]) -> dict[str, str]:
    """A model call."""
    return {"text": f"{model} says: read the docs"}


def support_agent(agent_id: str, version: str = "1.4.0") -> Callable[[str], str]:
    """An agent of ``agent_id`` whose run has a failed span and a span flagged at a JSON path.

    Its second model call sends a message whose content is a number, which the
    schema derived from ``list[dict[str, str]]`` flags at ``$.messages[0].content``
    (lenient mode stores it flagged).
    """

    def answer_ticket(question: str) -> str:
        kb_search(question)
        try:
            fetch_help_page(f"https://docs.example.com/{question}")
        except TimeoutError:
            pass
        reply = ask_model("gpt-4o-mini", [{"role": "user", "content": question}])
        ask_model("gpt-4o-mini", [{"role": "user", "content": 17}])  # type: ignore[dict-item]
        return reply["text"]

    return agent(agent_id=agent_id, version=version)(answer_ticket)


def run_agents(db: Path, *runs: tuple[Callable[[str], str], str]) -> None:
    """Run each ``(agent, question)`` with the SDK writing to ``db`` (lenient), then flush."""
    runtime.configure(db_path=db, strict=False, on_full="block")
    try:
        for run, question in runs:
            run(question)
        assert runtime.flush(10)
    finally:
        runtime.shutdown()


class AccessLog(logging.Handler):
    """Keeps every line uvicorn's access log writes."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class ServedApp:
    """The real app over a store file, served by uvicorn on a loopback port with its access log.

    Args:
        db: the SQLite file (the SDK may write it at the same time).
        token: the API token.
    """

    def __init__(self, db: Path, token: str = TOKEN) -> None:
        self.store = Store(db)
        self.app = create_app(self.store, token=token)
        self.token = token
        self.access_log = AccessLog()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config = uvicorn.Config(
            self.app, log_config=None, access_log=True, lifespan="off", ws="none", loop="asyncio"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )
        self._logger = logging.getLogger("uvicorn.access")
        self._level = self._logger.level

    def sign_in_link(self) -> str:
        """A one-time sign-in link, as ``prefactor serve`` prints it."""
        return f"{self.url}/signin#code={self.app.state.sign_in.issue_code()}"

    def __enter__(self) -> Self:
        self._logger.setLevel(logging.INFO)
        self._logger.addHandler(self.access_log)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the viewer's server did not start")
            time.sleep(0.01)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(10)
        self._sock.close()
        self.store.close()
        self._logger.removeHandler(self.access_log)
        self._logger.setLevel(self._level)
