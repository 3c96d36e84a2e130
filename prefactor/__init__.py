"""prefactor: observability for AI agents."""

from prefactor._version import __version__

__all__ = ["__version__"]
