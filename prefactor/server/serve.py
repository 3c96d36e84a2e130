"""``prefactor serve``: run the local API with uvicorn (needs the ``server`` extra).

One process by default. With ``workers`` above one, uvicorn's supervisor runs
that many worker processes on the one listening socket, restarting any that
dies; each opens its own store. The servers keep no state of their own, so
workers, and ``prefactor serve`` processes on other machines, may share one
PostgreSQL database (see the docs' page on running it for a team).
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.supervisors import Multiprocess

from prefactor._errors import PrefactorConfigError
from prefactor.server._database import describe_target
from prefactor.server.app import check_token, create_app
from prefactor.server.store import Store

__all__ = ["serve", "sign_in_link"]


# Collections of the youngest generation at most every this many new objects.
# A bulk request of 500 spans parses into some 10,000 containers that live
# until it is answered; at the default of 700, decoding alone triggered a
# dozen collections per request, each also walking what the last ones kept.
_SERVER_GEN0_THRESHOLD = 10_000


def _tune_collector() -> tuple[int, int, int]:
    """Set the collector up for a request-serving process; the thresholds it had."""
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()  # what startup built (modules, the app) is never garbage
    gc.set_threshold(_SERVER_GEN0_THRESHOLD, before[1], before[2])
    return before


@contextmanager
def _server_gc() -> Iterator[None]:
    """Tune the collector for a request-serving process; restore it afterwards.

    Only ``prefactor serve`` does this, in its own process: the SDK never
    changes the collector of the application it runs in.
    """
    before = _tune_collector()
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


class _ClosingStore:
    """The app, closing its store once the app's own shutdown is done (ASGI lifespan)."""

    def __init__(self, app: ASGIApp, store: Store) -> None:
        self._app = app
        self._store = store

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self._app(scope, receive, send)
            return

        async def closing_send(message: Message) -> None:
            # The app's shutdown (storing OTLP spans still waiting) has used the store.
            if message["type"] == "lifespan.shutdown.complete":
                self._store.close()
            await send(message)

        await self._app(scope, receive, closing_send)


@dataclass(frozen=True)
class _WorkerApp:
    """Builds a worker's app in the worker process (uvicorn pickles this to it)."""

    db: str
    token: str

    def __call__(self) -> ASGIApp:
        store = Store(self.db)
        app = _ClosingStore(create_app(store, token=self.token), store)
        _tune_collector()  # the worker process serves and does nothing else
        return app


def _shown_host(host: str) -> str:
    """``host`` as a URL shows it; a wildcard address as loopback, which a browser can open."""
    shown = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)
    return f"[{shown}]" if ":" in shown else shown


def sign_in_link(app: FastAPI, host: str, port: int) -> str:
    """A one-time link that signs a browser in to the viewer.

    The code is in the fragment (after ``#``), which browsers never send to
    the server; the sign-in page posts it.
    """
    return f"http://{_shown_host(host)}:{port}/signin#code={app.state.sign_in.issue_code()}"


def serve(
    *,
    host: str,
    port: int,
    db: str | Path,
    token: str,
    token_source: str | None,
    workers: int = 1,
    out: TextIO = sys.stdout,
) -> int:
    """Serve the API until interrupted; the exit status.

    The socket is bound and listening, and the store opened (and upgraded),
    before the address is printed, so a caller that reads the printed URL can
    connect at once (``port=0`` picks a free port and prints it). The banner
    names where the token came from (``token_source``) and never shows any part
    of it; a token generated here (``token_source=None``) is printed whole, as
    there is no other way to learn it.

    Raises:
        ValueError: the token is too short (checked before anything is bound).
        PrefactorConfigError: ``db`` is not a usable store, or ``workers`` does not fit it.
        StoreVersionError: the store was written by a newer prefactor.
        OSError: the address cannot be bound.
    """
    check_token(token)
    target = str(db)
    if workers > 1 and target == ":memory:":
        raise PrefactorConfigError(
            "--workers needs a database file or URL: each process has its own ':memory:'"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
        store = Store(target)
        if workers > 1:
            store.close()  # it has upgraded the store once; each worker opens its own
        try:
            shown_host = f"[{host}]" if family == socket.AF_INET6 else host
            bound_port = sock.getsockname()[1]
            print(f"prefactor serve: listening on http://{shown_host}:{bound_port}", file=out)
            print(f"  database: {describe_target(target)}", file=out)
            if token_source is None:
                print(f"  generated token: {token}", file=out)
            else:
                print(f"  token: from {token_source}", file=out)
            app = None if workers > 1 else create_app(store, token=token)
            if app is None:
                print(f"  workers: {workers}", file=out)
                # A one-time code lives in the process that made it: several workers would
                # each refuse the others'. The token signs a browser in on any of them.
                viewer = f"http://{_shown_host(host)}:{bound_port}/signin (with the token)"
            else:
                viewer = sign_in_link(app, host, bound_port)
            print(f"  viewer: {viewer}", file=out)
            out.flush()
            if app is None:
                config = uvicorn.Config(
                    _WorkerApp(target, token),
                    factory=True,
                    workers=workers,
                    log_level="warning",
                    access_log=False,
                )
                Multiprocess(config, sockets=[sock]).run()
            else:
                config = uvicorn.Config(app, log_level="warning", access_log=False)
                with _server_gc():
                    uvicorn.Server(config).run(sockets=[sock])
        finally:
            store.close()
    finally:
        sock.close()
    return 0
