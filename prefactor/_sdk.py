"""How this package names itself to the platform: the SDK header and the runtime environment.

``X-Prefactor-SDK`` lists ``package@version`` entries, the outermost
integration first and the core SDK last. The platform knows the Python core
as ``prefactor-core``, so the last entry is the prefactor-core API this package
implements, and this package names itself, with its own version, just before
it::

    prefactor-langchain@0.3.0 prefactor@0.1.0 prefactor-core@0.5.3

The raw API client names the prefactor-http API instead, as prefactor-http's
own client did. ``agent_version.runtime_environment`` is filled in from the
same entries, as prefactor-core 0.5.3 filled it in.
"""

from __future__ import annotations

import platform
import sys
from typing import Any

from prefactor._version import __version__

__all__ = [
    "API_CLIENT_HEADER",
    "CORE_API_ENTRY",
    "HTTP_API_ENTRY",
    "PACKAGE_ENTRY",
    "SDK_HEADER",
    "build_runtime_environment",
    "sdk_header",
]

PACKAGE_ENTRY = f"prefactor@{__version__}"
CORE_API_ENTRY = "prefactor-core@0.5.3"
"""The prefactor-core release whose API (names, signatures, wire behaviour) this package keeps."""
HTTP_API_ENTRY = "prefactor-http@0.4.3"
"""The prefactor-http release whose configuration and errors this package keeps."""

SDK_HEADER = f"{PACKAGE_ENTRY} {CORE_API_ENTRY}"
API_CLIENT_HEADER = f"{PACKAGE_ENTRY} {HTTP_API_ENTRY}"

_OURS = ("prefactor@", "prefactor-core@", "prefactor-http@")


def sdk_header(entry: str | None = None) -> str:
    """The header value: an integration's ``name@version`` entries (if any), then ours."""
    entry = entry.strip() if entry else ""
    return f"{entry} {SDK_HEADER}" if entry else SDK_HEADER


def build_runtime_environment(sdk_header_entry: str | None = None) -> dict[str, Any]:
    """The ``runtime_environment`` of ``agent_version``, as prefactor-core builds it.

    Args:
        sdk_header_entry: the integrations' space-separated ``name@version``
            entries (a ``PrefactorCoreClient``'s ``sdk_header_entry``); the
            Prefactor SDK's own entries in it are left out of ``agent_sdk``.

    Returns:
        ``agent_sdk`` (the integrations), ``os`` (``platform.system()`` in
        lower case), ``prefactor_sdk`` (this package and the prefactor-core and
        prefactor-http APIs it implements) and ``runtime`` (e.g. ``cpython@3.11``).
    """
    tokens = (sdk_header_entry or "").split()
    return {
        "agent_sdk": [t for t in tokens if not t.startswith(_OURS)],
        "os": platform.system().lower(),
        "prefactor_sdk": [PACKAGE_ENTRY, CORE_API_ENTRY, HTTP_API_ENTRY],
        "runtime": f"{sys.implementation.name}@{sys.version_info.major}.{sys.version_info.minor}",
    }
