"""Locks that a forked child gets fresh.

A process that forks while another of its threads holds a lock hands the child
that lock held, and no thread of the child will ever release it: the child's
first use of it hangs. ``multiprocessing`` forks by default on Linux, often from
programs that run threads. So every lock the SDK may take on a user's call
path is made by :func:`renewed_lock`, and one hook gives each a fresh one in the
child. (The exporter renews its own state after a fork: see
:mod:`prefactor._export.process`.)
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any

__all__ = ["renewed_lock"]

_holders: list[tuple[weakref.ref[Any], str]] = []
_holders_lock = threading.Lock()
_sweep_at = 64


def renewed_lock(owner: Any, name: str = "_lock") -> threading.Lock:
    """A new lock, to be kept as ``owner.<name>``; a forked child finds a fresh one there.

    ``owner`` (an object or a module) is referenced weakly. Holders that have
    died are swept once the list has doubled, so it stays within about twice
    the holders alive at once.
    """
    global _sweep_at  # noqa: PLW0603 - the sweep's threshold, under the list's lock
    with _holders_lock:
        _holders.append((weakref.ref(owner), name))
        if len(_holders) >= _sweep_at:
            _holders[:] = [held for held in _holders if held[0]() is not None]
            _sweep_at = max(64, 2 * len(_holders))
    return threading.Lock()


def _renew_in_child() -> None:
    global _holders_lock  # noqa: PLW0603 - itself possibly held at the fork
    _holders_lock = threading.Lock()
    for ref, name in _holders:
        owner = ref()
        if owner is not None:
            setattr(owner, name, threading.Lock())


os.register_at_fork(after_in_child=_renew_in_child)
