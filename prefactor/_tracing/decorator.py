"""``@traced``: one span per call of a function, coroutine, generator or method.

The decorator compiles the callable's :class:`~prefactor._tracing.plan.Spec`
when it is applied (following ``__wrapped__`` and unwrapping
``classmethod``/``staticmethod``), so a call does no introspection, and wraps
the callable with the body of its kind (:mod:`prefactor._tracing.bodies`). It
finds its tracer when called: the open span's, else the process-wide one (see
:mod:`prefactor._tracing.slot`), so it may be applied at import time, before
any configuration.

How the wrapper binds:

* a plain function defined outside a class body (module level or inside
  another function) that is not a generator becomes a plain function again: a
  closure made with :func:`functools.wraps`, which Python calls and binds as it
  would the original. Nothing about it needs wrapt, and skipping wrapt skips
  the ``__self__`` lookup wrapt makes on every call of a wrapped function (an
  ``AttributeError`` raised and cleared: measured, about 4,000 of a call's
  instructions);
* everything else (methods, classmethods, staticmethods, callable objects,
  generator functions, and functions whose first parameter is ``self`` or
  ``cls``, which are meant to become methods) is a
  :class:`~prefactor._tracing.wrapper.TracedFunction`, wrapt's public
  :class:`wrapt.FunctionWrapper`, which tells the body which instance it was
  bound to and keeps ``inspect``'s answers for generators. wrapt is imported by
  the first such decoration.

A call made outside any agent instance becomes the root span of an instance
of its own, for the configured agent, so nothing is lost for want of one.
"""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Collection
from typing import Any, ParamSpec, TypeVar, overload

from prefactor._tracing.bodies import async_body, sync_body
from prefactor._tracing.naming import refuse_class
from prefactor._tracing.plan import Options, ParamsExtractor, ResultExtractor, Spec

__all__ = ["decorate", "is_traced", "spec_of", "traced"]

P = ParamSpec("P")
R = TypeVar("R")


def spec_of(obj: Any) -> Spec | None:
    """The spec of a callable decorated by ``@traced``, ``@tool`` or ``@agent``, else ``None``."""
    found = getattr(obj, "__prefactor_spec__", None)
    return found if isinstance(found, Spec) else None


def is_traced(obj: Any) -> bool:
    """Whether ``obj`` is already decorated by ``@traced``, ``@tool`` or ``@agent``."""
    return spec_of(obj) is not None


def _binds_plainly(func: Any, spec: Spec) -> bool:
    """Whether ``func`` needs no binding help: a plain function that stays a plain function."""
    if spec.kind not in ("sync", "async") or not inspect.isfunction(func):
        return False
    scope = func.__qualname__.rpartition(".")[0]
    if scope and not scope.endswith("<locals>"):
        return False  # defined in a class body: a method
    first = next(iter(inspect.signature(func).parameters), None)
    return first not in ("self", "cls")


def _plain_wrapper(func: Any, spec: Spec) -> Any:
    """A closure in ``func``'s image that runs the body of its kind."""
    if spec.kind == "async":

        async def traced_coroutine(*args: Any, **kwargs: Any) -> Any:
            return await async_body(spec, func, None, args, kwargs)

        wrapper: Any = traced_coroutine
    else:

        def traced_call(*args: Any, **kwargs: Any) -> Any:
            return sync_body(spec, func, None, args, kwargs)

        wrapper = traced_call
    functools.update_wrapper(wrapper, func)
    wrapper.__prefactor_spec__ = spec
    return wrapper


def decorate(func: Any, options: Options, decorator: str = "traced") -> Any:
    """Wrap ``func`` (function, method, classmethod, staticmethod or callable object).

    Raises:
        TypeError: ``func`` is a class.
        PrefactorConfigError: the derived span type belongs to another callable.
    """
    if isinstance(func, classmethod | staticmethod):
        return type(func)(decorate(func.__func__, options, decorator))
    refuse_class(func, decorator)
    spec = Spec(func, options)
    if _binds_plainly(func, spec):
        return _plain_wrapper(func, spec)
    from prefactor._tracing.wrapper import TracedFunction

    return TracedFunction(func, spec)


def exclusions(exclude: Collection[str] | str) -> frozenset[str]:
    """The parameter names to leave out (a single name may be given as a string)."""
    return frozenset((exclude,) if isinstance(exclude, str) else exclude)


@overload
def traced(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(
    span_type_or_func: str | None = None,
    /,
    *,
    span_type: str | None = None,
    name: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
    title: str | None = None,
    description: str | None = None,
    auto_register: bool | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def traced(
    func_or_span_type: Any = None,
    /,
    *,
    span_type: str | None = None,
    name: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
    title: str | None = None,
    description: str | None = None,
    auto_register: bool | None = None,
) -> Any:
    """Record every call of the decorated callable as a span.

    Forms: ``@traced``, ``@traced("agent:llm")`` (a span type of the schema
    registry) and ``@traced(name=..., exclude=..., params=..., result=...)``.

    Args:
        span_type: the span's schema name (also the positional form). Given, it
            should be registered in the schema registry (strict mode raises if
            not; lenient mode flags the span) and may be shared by several
            callables. Not given, it is ``function:<name>``, registered
            automatically with schemas derived from the type hints.
        name: the name in the derived span type ``function:<name>`` (default:
            the qualified name), as ``name=`` names ``tool:<name>`` and
            ``agent:<name>``.
        exclude: parameter names left out of the recorded params.
        params: custom extractor: receives the bound params dict, returns the
            mapping to record.
        result: custom extractor: receives the return value, returns the
            mapping to record.
        title: the span type's title when registered automatically.
        description: its description (default: the docstring's first paragraph).
        auto_register: force (or prevent) automatic registration.

    Raises:
        TypeError: applied to a class, or given both a span type and a name.
        PrefactorConfigError: the derived span type belongs to another callable.

    The recorded ``params`` are the arguments bound to their names, defaults
    applied, ``self``/``cls`` left out, ``*args`` under ``"args"`` and
    ``**kwargs`` under ``"kwargs"``. The ``result`` is a returned mapping,
    pydantic model or dataclass's fields, else ``{"value": <value>}``; a
    generator's result is ``{"value": [...yielded]}``, or the yielded text
    joined when it is annotated to yield ``str``.
    """
    given = func_or_span_type if isinstance(func_or_span_type, str) else None
    if name is not None and ":" in name:
        warnings.warn(
            f"traced(name={name!r}) names the function in 'function:<name>' now; "
            f"pass span_type={name!r} for the whole span type",
            DeprecationWarning,
            stacklevel=2,
        )
        span_type, name = span_type or name, None
    if sum(x is not None for x in (given, span_type, name)) > 1:
        raise TypeError("traced() takes one of a positional span type, span_type= and name=")
    options = Options(
        prefix="function",
        name=name,
        span_type=given or span_type,
        exclude=exclusions(exclude),
        params=params,
        result=result,
        title=title,
        description=description,
        auto_register=auto_register,
    )
    if func_or_span_type is None or given is not None:
        return lambda func: decorate(func, options)
    return decorate(func_or_span_type, options)
