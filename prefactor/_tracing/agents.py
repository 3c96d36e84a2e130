"""Agents and tools: ``@agent`` for the entry function, ``@tool`` and ``instrument_tools``.

Each call of an ``@agent`` function is one agent instance: registered and
started at entry, its call recorded as the instance's root span
(``agent:<name>``), every span inside parented under it, and the instance
finished ``complete`` or ``failed`` at exit. An ``@agent`` function called
while a span is already open (an agent calling a sub-agent) does not start a
second instance: it is recorded as a span of the open one.

A tool span's type is ``tool:<name>``; its params schema comes from the type
hints, its result schema from the return annotation and its description from
the docstring, and it is registered in the schema registry when decorated, so
the schema version that instances declare carries it.
"""

from __future__ import annotations

import inspect
import logging
import sys
import types
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, overload

from prefactor._tracing.decorator import decorate, exclusions, is_traced
from prefactor._tracing.plan import Options, ParamsExtractor, ResultExtractor
from prefactor._tracing.state import InstanceState
from prefactor._tracing.tracer import Tracer

__all__ = ["AgentIdentity", "agent", "instrument_tools", "tool"]

logger = logging.getLogger("prefactor.tracing")

P = ParamSpec("P")
R = TypeVar("R")


def _name_of(func: Any) -> str:
    inner = func.__func__ if isinstance(func, classmethod | staticmethod) else func
    return str(getattr(inner, "__name__", None) or type(inner).__name__)


def _named(
    prefix: str,
    label: str,
    exclude: Collection[str],
    params: ParamsExtractor | None,
    result: ResultExtractor | None,
    **more: Any,
) -> Options:
    """The options of ``@agent``/``@tool``: ``<prefix>:<label>``, registered from the hints."""
    return Options(
        prefix=prefix,
        name=label,
        auto_register=True,
        exclude=exclusions(exclude),
        params=params,
        result=result,
        title=f"{prefix.capitalize()}: {label}",
        **more,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentIdentity:
    """Who an ``@agent`` function's instances belong to: registered and started per call."""

    agent_id: str | None
    version: Mapping[str, str]
    environment_id: str | None
    purpose: str | None

    def new_instance(self, tracer: Tracer) -> InstanceState:
        """Register and start an instance of this agent (a call outside any open span)."""
        inst = tracer.new_instance(
            agent_id=self.agent_id,
            agent_version=self.version,
            environment_id=self.environment_id,
            purpose=self.purpose,
        )
        tracer.start_instance(inst)
        return inst


@overload
def agent(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def agent(
    *,
    agent_id: str | None = None,
    version: str | None = None,
    name: str | None = None,
    span_type: str | None = None,
    environment_id: str | None = None,
    purpose: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def agent(
    func: Any = None,
    /,
    *,
    agent_id: str | None = None,
    version: str | None = None,
    name: str | None = None,
    span_type: str | None = None,
    environment_id: str | None = None,
    purpose: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
) -> Any:
    """Make each call of the agent's entry function one agent instance.

    Args:
        agent_id: the agent (default: the configured one, ``PREFACTOR_AGENT_ID``).
        version: the agent version's ``external_identifier`` (default ``"unversioned"``).
        name: the agent's name: the agent version's name and the root span type
            ``agent:<name>`` (default: the function's name).
        span_type: the root span's whole type instead (default ``agent:<name>``),
            registered automatically with schemas from the type hints.
        environment_id: sent on register.
        purpose: ``live``, ``smoke_test`` or ``eval``.
        exclude: parameter names left out of the recorded params.
        params: custom params extractor (see :func:`prefactor.traced`).
        result: custom result extractor.

    Raises:
        TypeError: applied to a class.
        PrefactorConfigError: the span type belongs to another callable.
    """

    def wrap(fn: Any) -> Any:
        label = name or _name_of(fn)
        identity = AgentIdentity(
            agent_id=agent_id,
            version={"name": label, "external_identifier": version or "unversioned"},
            environment_id=environment_id,
            purpose=purpose,
        )
        options = _named(
            "agent",
            label,
            exclude,
            params,
            result,
            span_type=span_type,
            instance=identity.new_instance,
        )
        return decorate(fn, options, "agent")

    return wrap if func is None else wrap(func)


@overload
def tool(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]: ...


def tool(
    func: Any = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    exclude: Collection[str] = (),
    params: ParamsExtractor | None = None,
    result: ResultExtractor | None = None,
) -> Any:
    """Record each call of a tool as a ``tool:<name>`` span with derived schemas.

    Args:
        name: the tool's name in its span type ``tool:<name>`` (default: the
            function's name).
        description: the span type's description (default: the docstring).
        exclude: parameter names left out of the recorded params.
        params: custom params extractor.
        result: custom result extractor.

    Raises:
        TypeError: applied to a class (use :func:`instrument_tools` for its methods).
        PrefactorConfigError: ``tool:<name>`` belongs to another callable.
    """

    def wrap(fn: Any) -> Any:
        if is_traced(fn):
            return fn
        options = _named(
            "tool", name or _name_of(fn), exclude, params, result, description=description
        )
        return decorate(fn, options, "tool")

    return wrap if func is None else wrap(func)


def _as_tool(value: Any, attr: str) -> Any:
    """``value`` as a tool; a lambda is named after the attribute that holds it."""
    return tool(value) if _name_of(value) != "<lambda>" else tool(name=attr)(value)


def _is_tool_candidate(name: str, value: Any, module: str | None = None) -> bool:
    if name.startswith("_") or is_traced(value) or inspect.isclass(value):
        return False
    if not (inspect.isfunction(value) or inspect.ismethod(value)):
        return False
    return module is None or getattr(value, "__module__", None) == module


def _patch_module(module: types.ModuleType) -> list[Any]:
    done = []
    for attr, value in list(vars(module).items()):
        if _is_tool_candidate(attr, value, module.__name__):
            wrapped = _as_tool(value, attr)
            setattr(module, attr, wrapped)
            done.append(wrapped)
    return done


def _patch_object(obj: Any) -> list[Any]:
    done = []
    if inspect.isclass(obj):
        for attr, value in list(vars(obj).items()):
            raw = value.__func__ if isinstance(value, classmethod | staticmethod) else value
            if _is_tool_candidate(attr, raw):
                wrapped = _as_tool(value, attr)
                setattr(obj, attr, wrapped)
                done.append(wrapped)
        return done
    for attr in dir(type(obj)):
        member: Any = getattr(obj, attr, None)
        if _is_tool_candidate(attr, member):
            wrapped = _as_tool(member, attr)
            setattr(obj, attr, wrapped)
            done.append(wrapped)
    return done


def _patch_path(module: types.ModuleType, path: str) -> Any:
    owner: Any = module
    parts = path.split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part)
    value = getattr(owner, parts[-1])
    if is_traced(value):
        return value
    wrapped = _as_tool(value, parts[-1])
    setattr(owner, parts[-1], wrapped)
    return wrapped


def instrument_tools(*targets: Any) -> list[Any]:
    """Record the given tools' calls as ``tool:<name>`` spans, patching them in place.

    A target is a function (replaced in its defining module), a module (its
    public functions), a class or an object (its public methods), or a
    ``"module:attr"`` string (``attr`` may be dotted, e.g. ``"pkg.mod:Cls.run"``),
    patched when that module is imported, or at once if it already is.

    Returns:
        the wrapped callables patched now (string targets patched later are
        not included).

    Raises:
        TypeError: a target of another kind.
        ValueError: a malformed ``"module:attr"`` string.
    """
    done: list[Any] = []
    for target in targets:
        if isinstance(target, str):
            module_name, sep, attr = target.partition(":")
            if not sep or not module_name or not attr:
                raise ValueError(f"expected 'module:attr', got {target!r}")

            def hook(module: types.ModuleType, attr: str = attr) -> None:
                try:
                    _patch_path(module, attr)
                except Exception:
                    logger.exception("could not instrument %s:%s", module.__name__, attr)

            if module_name in sys.modules:
                done.append(_patch_path(sys.modules[module_name], attr))
            else:
                import wrapt

                wrapt.register_post_import_hook(hook, module_name)
        elif isinstance(target, types.ModuleType):
            done.extend(_patch_module(target))
        elif inspect.isfunction(target):
            func: Callable[..., Any] = target
            wrapped = tool(func)
            module = sys.modules.get(func.__module__)
            if module is not None and getattr(module, func.__name__, None) is func:
                setattr(module, func.__name__, wrapped)
            done.append(wrapped)
        elif is_traced(target):
            done.append(target)
        elif inspect.isclass(target) or hasattr(target, "__dict__"):
            done.extend(_patch_object(target))
        else:
            raise TypeError(
                f"cannot instrument {type(target).__name__!r}: "
                "not a function, module, class or object"
            )
    return done
