"""The sink contract, as the sinks import it; it lives in :mod:`prefactor._export.base`."""

from prefactor._export.base import (
    OK,
    Drop,
    ExportResult,
    Rejection,
    Sink,
    Termination,
    TransientExportError,
)

__all__ = ["OK", "Drop", "ExportResult", "Rejection", "Sink", "Termination", "TransientExportError"]
