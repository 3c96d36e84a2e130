"""``prefactor serve``: run the local API with uvicorn (needs the ``server`` extra)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path
from typing import TextIO

import uvicorn

from prefactor.server.app import create_app
from prefactor.server.store import Store

__all__ = ["mask_token", "serve"]


def mask_token(token: str) -> str:
    """The token with all but its first four characters hidden."""
    return token[:4] + "*" * max(4, len(token) - 4)


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
        print(f"  {label}: {token if show_token else mask_token(token)}", file=out, flush=True)
        config = uvicorn.Config(app, log_level="warning", access_log=False)
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        store.close()
        sock.close()
    return 0
