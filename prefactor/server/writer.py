"""The embedded store's writer process: batches from an agent's ``LocalSink``, applied here.

``LocalSink`` (in the agent's process) starts ``main`` in a Python process of
the same interpreter and talks to it over its standard input and output.
Frames both ways are a 4-byte big-endian length and a JSON body: bulk
requests (``{"items": [...]}``) in, :func:`apply` answers out. The first
answer says whether the store could be opened (``["ready"]``, else
``["failed", why]``). The process ends when its input does.

This module imports only what the writer needs before the store; the agent's
process never imports it unless it applies batches inline.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from prefactor._records import PLAIN_SUCCESS

if TYPE_CHECKING:
    from prefactor.server.store import Store

__all__ = ["HEADER", "apply", "main"]

HEADER = 4
"""Bytes of a frame's length."""


def apply(store: Callable[[], Store], request: dict[str, Any]) -> list[Any]:
    """Apply one bulk ``request`` to the store ``store()`` opens or gives: the answer.

    The answer is the same in the writer and inline:
    ``["all"]`` when every item plainly succeeded (their outputs are implied),
    ``["outputs", {...}]`` otherwise; ``["problem", status, code, message,
    errors]`` when the request was refused as a whole, ``["transient",
    message]`` when SQLite could not write it now (locked by another process,
    disk full...).
    """
    import sqlite3

    from prefactor.server.store import ApiProblem

    try:
        outputs: dict[str, Any] = store().bulk(request, details=False)["outputs"]
    except ApiProblem as problem:
        return ["problem", problem.status, problem.code, problem.message, problem.errors]
    except sqlite3.OperationalError as exc:
        return ["transient", f"SQLite: {exc}"]
    if all(output == PLAIN_SUCCESS for output in outputs.values()):
        return ["all"]
    return ["outputs", outputs]


def _frame(out: BinaryIO, answer: list[Any]) -> None:
    data = orjson.dumps(answer)
    out.write(len(data).to_bytes(HEADER, "big") + data)
    out.flush()


def main() -> None:
    """Open the store named by ``argv[1]``; apply framed requests until the input ends.

    Ctrl-C is ignored: it reaches the whole process group, and the agent may
    still have its last batches to send.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The pipe gets a descriptor of its own; anything printed goes to stderr instead.
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    source = sys.stdin.buffer
    from prefactor.server.store import Store

    try:
        store = Store(sys.argv[1])
    except Exception as exc:  # the agent applies batches inline, and reports it from there
        _frame(out, ["failed", f"{type(exc).__name__}: {exc}"])
        return
    try:
        _frame(out, ["ready"])
        while len(head := source.read(HEADER)) == HEADER:
            body = source.read(int.from_bytes(head, "big"))
            _frame(out, apply(lambda: store, orjson.loads(body)))
    finally:
        store.close()
