"""How exporters end with their process: exit, SIGTERM, fork, multiprocessing workers.

* **Exit.** An ``atexit`` hook closes every open exporter; each waits at most
  its ``shutdown_timeout`` and then reports what it could not deliver.
* **SIGTERM** (a container stop). Python's default is to die at once, running
  no ``atexit`` hook. When an exporter first starts in the main thread and
  SIGTERM still has its default disposition, a handler is installed that
  closes every exporter as at exit, then restores the default and re-raises
  the signal, so the process ends as SIGTERM would have ended it (status
  ``-15``, or 143 in a shell). If a Python handler was installed before, it is
  chained instead: exporters are flushed (same bounded wait) and that handler
  runs; whether the process ends is its decision. A SIGTERM that arrives
  during that wait is ignored (the wait is bounded); one that interrupts a
  close on the main thread (the exit hook, say) is handled when that close
  is done. A SIGTERM that is ignored
  (``SIG_IGN``) or handled outside Python is left alone. The handler is
  installed at most once per process: a handler set after it replaces it and
  is never overwritten (call :func:`prefactor.shutdown` in yours).
  ``QueueConfig(handle_sigterm=False)`` never installs it.
* **fork.** The child's exporters start empty, with fresh counters: the parent
  still owns and sends what it had queued.
* **multiprocessing.** A worker started with fork ends through ``os._exit``,
  which skips ``atexit``; multiprocessing runs its own exit finalizers first,
  so in a multiprocessing child the first exporter to start registers one
  that closes every exporter. Spawned workers run ``atexit`` as usual.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import threading
import weakref
from collections.abc import Callable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from prefactor._config import QueueConfig

__all__ = ["close_all", "closing", "flush_all", "orphan", "started", "track"]

logger = logging.getLogger("prefactor.export")

_MP_EXIT_PRIORITY = 0
"""Among multiprocessing's exit finalizers, those with priority >= 0 run first."""


class _Ending(Protocol):
    """What this module needs of an exporter."""

    @property
    def stopped(self) -> bool: ...

    @property
    def config(self) -> QueueConfig: ...

    @property
    def longest_close(self) -> float: ...

    def flush(self, timeout: float | None = None) -> bool: ...

    def close(self, timeout: float | None = None) -> bool: ...

    def after_fork_in_child(self) -> None: ...


_live: weakref.WeakSet[_Ending] = weakref.WeakSet()
_orphaned_loops: list[asyncio.AbstractEventLoop] = []
_sigterm_decided = False
_previous_sigterm: object = None
_sigterm_running = False
_closes_here = 0  # closes running on the main thread
_pending_sigterm: int | None = None
_multiprocessing_pid = 0


def track(exporter: _Ending) -> None:
    """Close ``exporter`` when the process ends; reset it in a forked child."""
    _live.add(exporter)


def orphan(loop: asyncio.AbstractEventLoop | None) -> None:
    """Keep a parent's loop referenced in a forked child, never closed.

    The loop is marked running in a thread that does not exist in the child;
    closing or collecting it there would fail.
    """
    if loop is not None:
        _orphaned_loops.append(loop)


def started(config: QueueConfig) -> None:
    """An exporter's worker started: make sure this process's ending will close it."""
    if config.handle_sigterm:
        _install_sigterm_handler()
    _register_multiprocessing_exit()


def _open() -> list[_Ending]:
    """Exporters not closed yet, or whose close (in another thread) has not finished."""
    return [exporter for exporter in list(_live) if not exporter.stopped]


def close_all() -> None:
    """Close every open exporter, each with its shutdown timeout; ``close`` reports losses.

    A close already running elsewhere (a multiprocessing exit finalizer when a
    SIGTERM arrives) is waited for, not cut short.
    """
    for exporter in _open():
        try:
            exporter.close()
        except Exception:
            logger.exception("prefactor: error while closing the exporter at exit")


def flush_all() -> None:
    """Flush every open exporter, each waiting at most its shutdown timeout."""
    for exporter in _open():
        try:
            exporter.flush(exporter.config.shutdown_timeout)
        except Exception:
            logger.exception("prefactor: error while flushing the exporter")


def _after_fork_in_child() -> None:
    for exporter in list(_live):
        exporter.after_fork_in_child()


# --- SIGTERM --------------------------------------------------------------------------------


def _install_sigterm_handler() -> None:
    """Install the SIGTERM handler once per process, where that is safe (see the module)."""
    global _sigterm_decided, _previous_sigterm  # noqa: PLW0603 - one decision per process
    if _sigterm_decided or threading.current_thread() is not threading.main_thread():
        return  # signal.signal works only in the main thread: the next start may try again
    _sigterm_decided = True
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN or previous is None:
        return
    _previous_sigterm = previous
    signal.signal(signal.SIGTERM, _on_sigterm)


@contextlib.contextmanager
def closing() -> Iterator[None]:
    """Wrap an exporter's close: a SIGTERM that interrupts it is handled once it is done.

    The handler runs on the main thread; if that thread was inside a close
    (the exit hook, multiprocessing's exit finalizer, ``prefactor.shutdown()``)
    waiting in the handler would stop that very close, so the signal waits
    for it instead.
    """
    global _closes_here, _pending_sigterm  # noqa: PLW0603 - main-thread bookkeeping
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _closes_here += 1
    try:
        yield
    finally:
        _closes_here -= 1
        pending, _pending_sigterm = _pending_sigterm, None
        if pending is not None and not _closes_here:
            _on_sigterm(pending, None)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    global _sigterm_running, _pending_sigterm  # noqa: PLW0603 - the handler's own state
    if _sigterm_running:
        return  # a repeated SIGTERM (multiprocessing.Pool sends two) during the bounded wait
    if _closes_here:
        _pending_sigterm = signum  # handled when the interrupted close is done
        return
    _sigterm_running = True
    try:
        _handle_sigterm(signum, frame)
    finally:
        _sigterm_running = False


def _handle_sigterm(signum: int, frame: FrameType | None) -> None:
    previous = _previous_sigterm
    if callable(previous):
        _bounded(flush_all)
        previous(signum, frame)
        return
    _bounded(close_all)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
    os._exit(128 + signal.SIGTERM)  # only if the signal could not end the process


def _bounded(work: Callable[[], None]) -> None:
    """Run ``work`` in a thread and wait for it at most the exporters' shutdown timeouts.

    A handler runs on the main thread between two bytecodes, possibly while
    that thread holds an exporter's lock: waiting in another thread makes such
    a deadlock cost the timeout, not the process.
    """
    timeout = sum(exporter.longest_close for exporter in _open())
    thread = threading.Thread(target=work, name="prefactor-sigterm", daemon=True)
    thread.start()
    thread.join(timeout)


# --- multiprocessing ------------------------------------------------------------------------


def _register_multiprocessing_exit() -> None:
    """In a multiprocessing child, close exporters in multiprocessing's own exit finalizers."""
    global _multiprocessing_pid  # noqa: PLW0603 - once per process
    pid = os.getpid()
    if _multiprocessing_pid == pid or "multiprocessing.util" not in sys.modules:
        return  # done already, or not a multiprocessing child (which always has it loaded)
    # Already imported, so this costs a lookup; importing it up front would cost every user.
    from multiprocessing import parent_process, util

    _multiprocessing_pid = pid
    if parent_process() is not None:
        util.Finalize(None, close_all, exitpriority=_MP_EXIT_PRIORITY)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(close_all)
