"""Where tracing finds the process-wide tracer.

Decorators are applied at import time, before any configuration, so a call
outside any open span looks its tracer up when it happens. The slot holds that
tracer; the runtime (:mod:`prefactor._runtime`), which knows how to assemble
one from configuration, fills it and gives it a factory for the default. So
tracing never imports the runtime, and the runtime depends on tracing, not the
other way round.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from prefactor._forksafe import renewed_lock

if TYPE_CHECKING:
    from prefactor._tracing.tracer import Tracer

__all__ = ["TRACER", "TracerSlot"]


class TracerSlot:
    """The process-wide tracer, made by a factory on first use when none is installed."""

    __slots__ = ("__weakref__", "_factory", "_lock", "tracer")

    def __init__(self) -> None:
        self.tracer: Tracer | None = None
        self._factory: Callable[[], Tracer] | None = None
        self._lock = renewed_lock(self)

    def get(self) -> Tracer:
        """The installed tracer, or the default one, built now if need be.

        Raises:
            RuntimeError: nothing installed a tracer or a factory (the runtime
                was never imported).
            Exception: whatever the factory raises (a bad configuration).
        """
        tracer = self.tracer
        if tracer is not None:
            return tracer
        with self._lock:
            if self.tracer is None:
                if self._factory is None:
                    raise RuntimeError("no tracer is configured (prefactor._runtime not loaded)")
                self.tracer = self._factory()
            return self.tracer

    def set_default(self, factory: Callable[[], Tracer]) -> None:
        """How :meth:`get` builds a tracer when none is installed."""
        self._factory = factory

    def swap(self, tracer: Tracer | None) -> Tracer | None:
        """Install ``tracer`` (``None``: none) and return the one it replaces."""
        with self._lock:
            previous, self.tracer = self.tracer, tracer
        return previous


TRACER = TracerSlot()
"""The slot ``@traced`` and friends read; filled by :mod:`prefactor._runtime`."""
