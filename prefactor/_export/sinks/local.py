"""The embedded destination: batches applied to a SQLite file through the server's own store.

By default the store runs in a **writer process**: a Python process of the
same interpreter that owns the SQLite connection and applies each batch, so
the store's rules, its JSON and its SQLite writes do not share the agent's
GIL. The sink starts it as the exporter starts (:meth:`LocalSink.prepare`),
so that its start overlaps the agent's first calls. The agent's exporter
encodes each batch once, as for HTTP, and sends it down a pipe; the writer
answers with each item's outcome. With ``writer="inline"`` the exporter's
own thread applies batches instead, as earlier releases did.

The writer is a helper, never a requirement:

* if it cannot start at all (no ``sys.executable``, no subprocess support,
  the process exits before it is ready), the sink logs a warning once and
  applies batches inline from then on;
* if it dies while a batch is in flight, that batch fails as a transient
  error and the exporter retries it (idempotency keys make a batch applied
  just before the crash a harmless replay); the next batch starts a new
  writer, and after a third death the sink goes inline;
* it exits when its input closes: when the sink closes, and when the agent's
  process ends in any way, so it never outlives the agent. It ignores
  ``SIGINT``: Ctrl-C reaches the whole foreground process group, and the
  agent still has its last spans to flush;
* a forked child starts its own writer and leaves its parent's alone: it
  does not even keep the parent's pipe to it open, which would keep that
  writer waiting for input after the parent closed its end.

The writer's side, and the frames on the pipe, are in
:mod:`prefactor.server.writer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import orjson

from prefactor._errors import PrefactorError
from prefactor._export.base import TransientExportError
from prefactor._export.sinks.bulk import BulkRequestError, BulkSink, Output, bulk_body
from prefactor._records import PLAIN_SUCCESS, JSONDict
from prefactor.server import writer as store_writer
from prefactor.server.writer import HEADER

if TYPE_CHECKING:
    from prefactor.server.store import Store

__all__ = ["LocalSink", "Writer"]

_log = logging.getLogger("prefactor.export")

Writer = Literal["process", "inline"]

# Stores and writers made before a fork: the child neither uses nor closes its
# parent's (a SQLite connection, a writer's pipes); it keeps them referenced
# and makes its own.
_inherited: list[object] = []

# Writers are given up after this many have died under one sink.
_WRITER_DEATHS = 3
# Seconds a new writer has to import the store and open it (about 0.2 s on a small machine).
_READY_TIMEOUT = 30.0


def outcome(answer: Sequence[Any], keys: Sequence[str]) -> Mapping[str, Output]:
    """The outputs a :func:`~prefactor.server.writer.apply` answer stands for.

    Raises:
        BulkRequestError: the request was refused as a whole.
        TransientExportError: it could not be written now.
    """
    kind = answer[0]
    if kind == "all":
        return dict.fromkeys(keys, PLAIN_SUCCESS)
    if kind == "outputs":
        outputs: Mapping[str, Output] = answer[1]
        return outputs
    if kind == "problem":
        raise BulkRequestError(answer[1], answer[2], answer[3], answer[4])
    if kind == "transient":
        raise TransientExportError(answer[1])
    raise TransientExportError(f"the store's writer answered {kind!r}")


class _WriterGone(PrefactorError):
    """The writer process is not there to answer (never started, or died)."""


class _WriterProcess:
    """One writer process and its two pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.pid = os.getpid()  # the process that started it
        _running.add(self)

    def pipes(self) -> list[int]:
        """The descriptors of this process's ends of the two pipes (those still open)."""
        # The subprocess transport is the one public way to both pipes' transports.
        transport = getattr(self.process, "_transport", None)
        found = []
        for fd in (0, 1):
            pipe = transport.get_pipe_transport(fd) if transport is not None else None
            file = pipe.get_extra_info("pipe") if pipe is not None else None
            if file is not None:
                found.append(file.fileno())
        return found

    def abandon(self) -> None:
        """Stop it now, whatever it was doing (its answers can no longer be matched up).

        :meth:`close` still has to reap it, which closes its pipes for good.
        """
        _running.discard(self)
        if self.process.stdin is not None:
            self.process.stdin.close()
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):  # exited meanwhile
                self.process.kill()

    @classmethod
    async def spawn(cls, path: Path) -> _WriterProcess:
        """Start a writer on ``path`` (then wait for it with :meth:`ready`).

        Raises:
            _WriterGone: it could not be started.
        """
        if not sys.executable:
            raise _WriterGone("no Python executable to run it with")
        # The writer imports this very package, wherever it came from (an install, a
        # checkout on sys.path), ahead of anything in its working directory.
        root = str(Path(__file__).resolve().parents[3])
        code = (
            f"import sys; sys.path.insert(0, {root!r}); "
            f"from {store_writer.__name__} import main; main()"
        )
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                str(path),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
        except (OSError, NotImplementedError, RuntimeError, ValueError) as exc:
            raise _WriterGone(f"{type(exc).__name__}: {exc}") from None
        return cls(process)

    async def ready(self) -> None:
        """Wait until its store is open.

        Raises:
            _WriterGone: it exited first, said it could not open the store, or
                answered nothing like a writer within :data:`_READY_TIMEOUT`
                (``sys.executable`` may be a program embedding Python).
        """
        try:
            ready = await asyncio.wait_for(self.read(), _READY_TIMEOUT)
        except TimeoutError:
            raise _WriterGone(f"it was not ready within {_READY_TIMEOUT:g} s") from None
        if ready[0] != "ready":
            raise _WriterGone(f"it could not open the store: {ready[-1]}")

    async def request(self, body: bytes) -> list[Any]:
        """Send one framed request; its answer."""
        stdin = self.process.stdin
        assert stdin is not None
        try:
            stdin.write(len(body).to_bytes(HEADER, "big"))
            stdin.write(body)
            await stdin.drain()
        except (OSError, RuntimeError) as exc:  # the pipe closed under us
            raise _WriterGone(f"{type(exc).__name__}: {exc}") from None
        return await self.read()

    async def read(self) -> list[Any]:
        """The next answer.

        Raises:
            _WriterGone: the writer's output ended first.
        """
        stdout = self.process.stdout
        assert stdout is not None
        try:
            head = await stdout.readexactly(HEADER)
            answer: list[Any] = orjson.loads(await stdout.readexactly(int.from_bytes(head, "big")))
        except (asyncio.IncompleteReadError, OSError) as exc:
            raise _WriterGone(f"its output ended ({exc})") from None
        except ValueError as exc:  # not a writer's frame: not a writer at all
            raise _WriterGone(f"it answered something else ({exc})") from None
        if type(answer) is not list or not answer:
            raise _WriterGone("it answered something else")
        return answer

    async def close(self, timeout: float = 10.0) -> None:
        """Close its input (it exits once its last batch is written) and wait for it."""
        _running.discard(self)
        process = self.process
        if process.stdin is not None:
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout)
        except TimeoutError:
            process.kill()
            await process.wait()


# The writers this process started and has not closed; a forked child detaches from them.
_running: weakref.WeakSet[_WriterProcess] = weakref.WeakSet()


def _detach_in_child() -> None:
    """In a forked child: point the inherited pipe ends at ``/dev/null``.

    Closed in the child, the parent's writer sees its input end when the
    parent closes it, as if there had been no fork. Replaced rather than
    closed: the parent's objects, still referenced here, keep their
    descriptor numbers, which must not come to name anything else.
    """
    writers = [w for w in list(_running) if w.pid != os.getpid()]
    if not writers:
        return
    null = os.open(os.devnull, os.O_RDWR)
    try:
        for writer in writers:
            _running.discard(writer)
            _inherited.append(writer)
            for fd in writer.pipes():
                os.dup2(null, fd)
    finally:
        os.close(null)


os.register_at_fork(after_in_child=_detach_in_child)


class LocalSink(BulkSink):
    """Applies each batch with :meth:`Store.bulk` on a local SQLite file.

    The store is the one ``prefactor serve`` uses, so the same rules apply as
    over HTTP, and the server can show what this sink wrote. The file and its
    parent directories are created on the first export.

    Args:
        path: the database file.
        writer: ``"process"`` (the default) applies batches in a writer process
            of its own (see the module's documentation); ``"inline"`` in the
            exporter's thread.
    """

    def __init__(self, path: str | os.PathLike[str], *, writer: Writer = "process") -> None:
        if writer not in ("process", "inline"):
            raise ValueError(f"writer must be 'process' or 'inline', not {writer!r}")
        # Each batch is encoded all the same (by the bulk sink), so that a value the API
        # could not carry is set aside here too: the store would refuse it one field at a
        # time. A writer process is sent those bytes; the inline store takes the items.
        super().__init__()
        self.keeps_items = writer == "inline"
        self._path = Path(path)
        self._writer_kind: Writer = writer
        self._inline = writer == "inline"
        self._writer: _WriterProcess | None = None
        self._abandoned: list[_WriterProcess] = []
        self._start_lock: tuple[int, asyncio.Lock] | None = None
        self._deaths = 0
        self._store: Store | None = None
        self._pid = 0

    @property
    def path(self) -> Path:
        """The database file."""
        return self._path

    @property
    def writer(self) -> Writer:
        """Where batches are applied now: ``"inline"`` once a writer process was given up."""
        return "inline" if self._inline else "process"

    def _open(self) -> Store:
        if self._store is not None and self._pid == os.getpid():
            return self._store
        if self._store is not None:
            _inherited.append(self._store)
        from prefactor.server.store import Store

        self._store = Store(self._path)
        self._pid = os.getpid()
        return self._store

    async def _bulk(
        self, body: bytes, keys: list[str], items: list[JSONDict] | None
    ) -> Mapping[str, Output]:
        # The items name their keys themselves.
        if not self._inline:
            answer = await self._via_writer(body)
            if answer is not None:
                return outcome(answer, keys)
        if items is None:  # sent to a writer that was given up meanwhile
            items = orjson.loads(body)["items"]
        # Runs on the exporter's own loop: the store serialises writers anyway.
        return outcome(store_writer.apply(self._open, {"items": items}), keys)

    async def _via_writer(self, body: bytes) -> list[Any] | None:
        """The writer's answer to the request ``body``; ``None`` once the writer was given up.

        Raises:
            TransientExportError: the writer died with the batch in flight.
        """
        writer = await self._started_writer()
        if writer is None:
            return None
        try:
            answer = await writer.request(body)
        except _WriterGone as exc:
            self._writer = None
            writer.abandon()
            await writer.close()
            self._deaths += 1
            if self._deaths >= _WRITER_DEATHS:
                self._give_up(f"it died {self._deaths} times ({exc})")
            raise TransientExportError(f"the store's writer process died ({exc})") from None
        except BaseException:
            # Cancelled (at shutdown) with the batch in flight: its answer, still to come,
            # would be read as the next batch's. That writer is done; closing reaps it.
            self._writer = None
            writer.abandon()
            self._abandoned.append(writer)
            raise
        return answer

    async def prepare(self) -> None:
        """Start the writer ahead of the first batch: the exporter calls this as it starts.

        Its start (about 0.15 s: it imports the store) then overlaps the
        agent's first calls instead of delaying the first batch.
        """
        if not self._inline:
            await self._started_writer()

    async def _started_writer(self) -> _WriterProcess | None:
        """This process's writer, started if need be; ``None`` once writers were given up."""
        pid = os.getpid()
        if self._writer is not None and self._writer.pid != pid:
            self._writer = None  # the parent's: the fork hook keeps it referenced
        if self._start_lock is None or self._start_lock[0] != pid:
            self._start_lock = (pid, asyncio.Lock())  # a lock belongs to one process's loop
        async with self._start_lock[1]:  # prepare() and a first batch start one writer
            if self._writer is None and not self._inline:
                try:
                    self._writer = await self._start()
                except _WriterGone as exc:
                    self._give_up(f"it could not start ({exc})")
        return self._writer

    async def _start(self) -> _WriterProcess:
        writer = await _WriterProcess.spawn(self._path)
        try:
            await writer.ready()
        except _WriterGone:
            writer.abandon()
            await writer.close()
            raise
        except BaseException:  # cancelled (at shutdown): aclose reaps it
            writer.abandon()
            self._abandoned.append(writer)
            raise
        return writer

    def _give_up(self, why: str) -> None:
        self._inline = True
        self.keeps_items = True  # from the next batch on: the store takes the items
        _log.warning(
            "prefactor: the embedded store's writer process is given up: %s; "
            "batches are applied in the agent's process from now on",
            why,
        )

    async def _single(self, item: JSONDict) -> Output:
        # The store knows every item type, so a one-item bulk is its single endpoint.
        key = item["idempotency_key"]
        outputs = await self._bulk(bulk_body([item]), [key], [item])
        output = outputs.get(key)
        if output is None:
            raise TransientExportError("the store gave no output for the item")
        return output

    async def aclose(self) -> None:
        """Stop the writer once it has written what it was sent, and close the store.

        Only what this process started or opened.
        """
        writer, self._writer = self._writer, None
        writers, self._abandoned = [*self._abandoned, writer], []
        for one in writers:
            if one is not None and one.pid == os.getpid():
                await one.close()
        store, self._store = self._store, None
        if store is not None and self._pid == os.getpid():
            store.close()

    def __repr__(self) -> str:
        kind = "" if self._writer_kind == "process" else f", writer={self._writer_kind!r}"
        return f"LocalSink({str(self._path)!r}{kind})"
