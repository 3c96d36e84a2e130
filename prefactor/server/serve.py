"""``prefactor serve``: run the local API with uvicorn (needs the ``server`` extra)."""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import uvicorn
from fastapi import FastAPI

from prefactor.server.app import create_app
from prefactor.server.store import Store

__all__ = ["mask_token", "serve", "sign_in_link"]


# Collections of the youngest generation at most every this many new objects.
# A bulk request of 500 spans parses into some 10,000 containers that live
# until it is answered; at the default of 700, decoding alone triggered a
# dozen collections per request, each also walking what the last ones kept.
_SERVER_GEN0_THRESHOLD = 10_000


@contextmanager
def _server_gc() -> Iterator[None]:
    """Tune the collector for a request-serving process; restore it afterwards.

    Only ``prefactor serve`` does this, in its own process: the SDK never
    changes the collector of the application it runs in.
    """
    before = gc.get_threshold()
    gc.collect()
    gc.freeze()  # what startup built (modules, the app) is never garbage
    gc.set_threshold(_SERVER_GEN0_THRESHOLD, before[1], before[2])
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()


def mask_token(token: str) -> str:
    """The token with all but its first four characters hidden."""
    return token[:4] + "*" * max(4, len(token) - 4)


def sign_in_link(app: FastAPI, host: str, port: int) -> str:
    """A one-time link that signs a browser in to the viewer.

    The code is in the fragment (after ``#``), which browsers never send to
    the server; the sign-in page posts it. A wildcard host is shown as loopback.
    """
    shown = {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host)
    if shown is None:
        shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/signin#code={app.state.sign_in.issue_code()}"


def serve(
    *,
    host: str,
    port: int,
    db: Path,
    token: str,
    show_token: bool,
    out: TextIO = sys.stdout,
) -> int:
    """Serve the API until interrupted; the exit status.

    The socket is bound and listening before the address is printed, so a
    caller that reads the printed URL can connect at once (``port=0`` picks a
    free port and prints it).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    bound_port = sock.getsockname()[1]
    store = Store(db)
    try:
        app = create_app(store, token=token)
        shown_host = f"[{host}]" if family == socket.AF_INET6 else host
        print(f"prefactor serve: listening on http://{shown_host}:{bound_port}", file=out)
        print(f"  database: {db}", file=out)
        label = "generated token" if show_token else "token"
        print(f"  {label}: {token if show_token else mask_token(token)}", file=out)
        print(f"  viewer: {sign_in_link(app, host, bound_port)}", file=out, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        with _server_gc():
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()
    return 0
