"""Sinks: where the background exporter delivers batches of records.

Each sink is imported when first asked for (PEP 562): ``HttpSink`` needs httpx
and the REST models, ``LocalSink`` the server's store, and the exporter, which
imports this package for the bulk protocol, needs neither.
"""

from typing import TYPE_CHECKING

from prefactor._export.base import (
    Drop,
    ExportResult,
    Rejection,
    Sink,
    Termination,
    TransientExportError,
)
from prefactor._lazy import exports

if TYPE_CHECKING:  # the names of _EXPORTS, for type checkers
    from prefactor._export.sinks.http import HttpSink
    from prefactor._export.sinks.local import LocalSink
    from prefactor._export.sinks.memory import MemorySink

__all__ = [
    "Drop",
    "ExportResult",
    "HttpSink",
    "LocalSink",
    "MemorySink",
    "Rejection",
    "Sink",
    "Termination",
    "TransientExportError",
]

_EXPORTS = {
    "prefactor._export.sinks.http": ("HttpSink",),
    "prefactor._export.sinks.local": ("LocalSink",),
    "prefactor._export.sinks.memory": ("MemorySink",),
}
__getattr__, __dir__ = exports(__name__, _EXPORTS)
