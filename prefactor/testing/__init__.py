"""Test helpers for code instrumented with prefactor.

The pytest plugin (:mod:`prefactor.testing.plugin`, loaded automatically
where prefactor is installed) offers the ``prefactor_spans`` and
``prefactor_server`` fixtures built from these pieces:

* :class:`Recorder`: routes the process-wide tracer to memory and reads back
  a :class:`Trace` of :class:`InstanceRecord` and :class:`SpanRecord`.
* :class:`LocalServer` and :class:`ServerClient`: the real local API on a
  loopback port, and a reader of what it stored (they need the ``server``
  extra).

Names are imported on first use: pytest imports this package for the plugin
in every run where prefactor is installed, and a project that never touches
these helpers should not pay for importing the tracer or the web stack.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from prefactor.testing.recorder import Recorder
    from prefactor.testing.server import LocalServer, ServerClient
    from prefactor.testing.spans import InstanceRecord, SpanRecord, Trace

__all__ = ["InstanceRecord", "LocalServer", "Recorder", "ServerClient", "SpanRecord", "Trace"]

_MODULES = {
    "InstanceRecord": "prefactor.testing.spans",
    "LocalServer": "prefactor.testing.server",
    "Recorder": "prefactor.testing.recorder",
    "ServerClient": "prefactor.testing.server",
    "SpanRecord": "prefactor.testing.spans",
    "Trace": "prefactor.testing.spans",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
