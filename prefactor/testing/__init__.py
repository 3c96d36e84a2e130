"""Test helpers for code instrumented with prefactor.

The pytest plugin (:mod:`prefactor.testing.plugin`, loaded automatically
where prefactor is installed) offers the ``prefactor_spans`` and
``prefactor_server`` fixtures built from these pieces:

* :class:`Recorder`: routes the process-wide tracer to memory and reads back
  a :class:`Trace` of :class:`InstanceRecord` and :class:`SpanRecord`.
* :class:`LocalServer` and :class:`ServerClient`: the real local API on a
  loopback port, and a reader of what it stored. They need the ``server``
  extra, so they are imported on first use: pytest imports this package for
  the plugin in every run where prefactor is installed, with or without it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from prefactor.testing.recorder import Recorder
from prefactor.testing.spans import InstanceRecord, SpanRecord, Trace

if TYPE_CHECKING:
    from prefactor.testing.server import LocalServer, ServerClient

__all__ = ["InstanceRecord", "LocalServer", "Recorder", "ServerClient", "SpanRecord", "Trace"]

_NEEDS_SERVER_EXTRA = frozenset({"LocalServer", "ServerClient"})


def __getattr__(name: str) -> Any:
    if name not in _NEEDS_SERVER_EXTRA:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("prefactor.testing.server"), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
