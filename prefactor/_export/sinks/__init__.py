"""Sinks: where the background exporter delivers batches of records."""

from prefactor._export.base import (
    Drop,
    ExportResult,
    Rejection,
    Sink,
    Termination,
    TransientExportError,
)
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
