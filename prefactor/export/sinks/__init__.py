"""Sinks: where the background exporter delivers batches of records."""

from prefactor.export.sinks.base import (
    ExportResult,
    Rejection,
    Sink,
    Termination,
    TransientExportError,
)
from prefactor.export.sinks.http import HttpSink
from prefactor.export.sinks.local import LocalSink
from prefactor.export.sinks.memory import MemorySink

__all__ = [
    "ExportResult",
    "HttpSink",
    "LocalSink",
    "MemorySink",
    "Rejection",
    "Sink",
    "Termination",
    "TransientExportError",
]
