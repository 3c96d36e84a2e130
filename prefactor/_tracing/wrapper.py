"""The wrapt wrapper of a traced method, classmethod, generator or callable object.

Its own module so that wrapt (which imports asyncio and importlib.metadata) is
imported by the first decoration that needs it, not by ``import prefactor`` or
by decorating plain functions (see :mod:`prefactor._tracing.decorator`).
"""

from __future__ import annotations

import functools
from typing import Any

import wrapt

from prefactor._tracing.bodies import BODIES
from prefactor._tracing.plan import Spec

__all__ = ["TracedFunction"]


class TracedFunction(wrapt.FunctionWrapper[Any, Any]):
    """A callable wrapped by ``@traced`` (and friends) through wrapt; see the decorator module."""

    def __init__(self, wrapped: Any, spec: Spec) -> None:
        super().__init__(wrapped, functools.partial(BODIES[spec.kind], spec))
        self._self_spec = spec

    @property
    def __prefactor_spec__(self) -> Spec:
        spec: Spec = self._self_spec
        return spec
