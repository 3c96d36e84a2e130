"""Binding call arguments to parameter names, cheaply.

``inspect.Signature.bind`` costs about 4 µs a call here. Most traced functions
have plain positional-or-keyword parameters, for which a zip plus defaults is
enough; everything else (keyword-only, positional-only, ``*args``,
``**kwargs``) takes the general path through the cached signature.

The params shape: ``{name: value, ...}`` for named parameters with defaults
applied, plus ``"args": [...]`` for a ``*args`` parameter and
``"kwargs": {...}`` for a ``**kwargs`` parameter. ``self`` and ``cls`` are
never part of it: wrapt hands them over separately as the bound instance.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Mapping
from typing import Any

__all__ = ["Binder"]

_EMPTY = inspect.Parameter.empty
_PLAIN = inspect.Parameter.POSITIONAL_OR_KEYWORD


def _signature(func: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


class Binder:
    """Maps ``(args, kwargs)`` of one function to its params dict.

    Args:
        func: the undecorated function.
        exclude: parameter names left out of the params.
    """

    __slots__ = ("_bound_names", "_bound_sig", "_defaults", "_exclude", "_fast", "_names", "_sig")

    def __init__(self, func: Callable[..., Any], exclude: Collection[str] = ()) -> None:
        self._exclude = frozenset(exclude)
        sig = _signature(func)
        self._sig = sig
        # The signature as seen through a bound call (first parameter supplied by wrapt).
        # A bound method's own signature already lacks it.
        self._bound_sig = sig if inspect.ismethod(func) else None
        if sig is not None and self._bound_sig is None:
            params = list(sig.parameters.values())
            if params and params[0].kind in (_PLAIN, inspect.Parameter.POSITIONAL_ONLY):
                self._bound_sig = sig.replace(parameters=params[1:])
        self._fast = sig is not None and all(p.kind is _PLAIN for p in sig.parameters.values())
        self._names: tuple[str, ...] = tuple(sig.parameters) if sig is not None else ()
        self._bound_names = self._names if inspect.ismethod(func) else self._names[1:]
        self._defaults: tuple[tuple[str, Any], ...] = (
            tuple((p.name, p.default) for p in sig.parameters.values() if p.default is not _EMPTY)
            if sig is not None
            else ()
        )

    def positional_names(self, bound: bool) -> tuple[str, ...] | None:
        """The names that a call with only positional arguments, all of them, binds in order.

        ``None`` when binding is not that simple (other parameter kinds, or
        exclusions): the caller then uses :meth:`bind`.
        """
        if not self._fast or self._exclude:
            return None
        return self._bound_names if bound else self._names

    def bind(self, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """The params dict of one call; ``bound`` when wrapt supplied self/cls separately.

        Never raises: arguments that do not fit the signature (the call itself
        will raise) are recorded as ``{"args": [...], "kwargs": {...}}``.
        """
        names = self._bound_names if bound else self._names
        if not kwargs and self._fast and len(args) == len(names):
            out = dict(zip(names, args, strict=False))  # all positional: lengths checked above
        elif self._fast and len(args) <= len(names):
            out = dict(zip(names, args, strict=False))
            if kwargs:
                for key, value in kwargs.items():
                    if key in out or key not in names:
                        return self._slow(bound, args, kwargs)
                    out[key] = value
            for name, default in self._defaults:
                if name not in out and name in names:
                    out[name] = default
            if len(out) != len(names):
                return self._slow(bound, args, kwargs)
        else:
            out = self._slow(bound, args, kwargs)
        if self._exclude:
            for name in self._exclude:
                out.pop(name, None)
        return out

    def _slow(
        self, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        sig = self._bound_sig if bound else self._sig
        if sig is None:
            return {"args": list(args), "kwargs": dict(kwargs)}
        try:
            ba = sig.bind(*args, **kwargs)
        except TypeError:
            return {"args": list(args), "kwargs": dict(kwargs)}
        ba.apply_defaults()
        out: dict[str, Any] = {}
        for name, value in ba.arguments.items():
            kind = sig.parameters[name].kind
            if kind is inspect.Parameter.VAR_POSITIONAL:
                out["args"] = list(value)
            elif kind is inspect.Parameter.VAR_KEYWORD:
                out["kwargs"] = dict(value)
            else:
                out[name] = value
        return out
