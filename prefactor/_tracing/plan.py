"""The plan of a decorated function: what each of its calls does, decided before the first.

Decorating compiles a :class:`Spec`: the kind of callable, the span type and
its derived schemas, how arguments bind to names, the extractors, whether a
generator's result is joined text. The first call under a tracer adds what
depends on that tracer's settings and freezes both into a :class:`Plan`:
whether params and result are captured on the caller's path (strict mode, or
custom extractors, which read live objects) or snapshotted and left to the
exporter's thread, and which capturer does it. A call only compares the
plan's tracer generation with its tracer's; a new tracer (new settings) gets
a new plan, once.

One plan serves every mode: lenient, strict and custom extractors differ only
in its flags, read by the same per-kind bodies (:mod:`prefactor._tracing.bodies`).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._tracing.binding import Binder
from prefactor._tracing.capture import Capturer
from prefactor._tracing.naming import claim

if TYPE_CHECKING:
    from prefactor._tracing.state import InstanceState
    from prefactor._tracing.tracer import Tracer

__all__ = [
    "InstanceFactory",
    "Kind",
    "Options",
    "ParamsExtractor",
    "Plan",
    "ResultExtractor",
    "Spec",
    "kind_of",
]

logger = logging.getLogger("prefactor.tracing")

Kind = Literal["sync", "async", "gen", "agen"]
ParamsExtractor = Callable[[dict[str, Any]], Mapping[str, Any]]
ResultExtractor = Callable[[Any], Mapping[str, Any]]
InstanceFactory = Callable[["Tracer"], "InstanceState"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    """What a decorator was asked: how to name, register and record a callable's spans.

    Attributes:
        prefix: the span type's prefix (``function``, ``tool``, ``agent``).
        name: the span type's name after the prefix (``None``: the callable's
            qualified name).
        span_type: the whole span type, given; overrides ``prefix`` and ``name``.
        exclude: parameter names left out of the params (and of the schema).
        params: custom extractor: the bound params dict to the payload.
        result: custom extractor: the return value to the payload.
        title: the span type's title (``None``: the span type).
        description: its description (``None``: the docstring's first paragraph).
        auto_register: register schemas derived from the type hints (``None``:
            only when the span type is derived, not given).
        instance: how a call outside any span opens its agent instance
            (``None``: an instance of the tracer's agent).
    """

    prefix: str = "function"
    name: str | None = None
    span_type: str | None = None
    exclude: frozenset[str] = frozenset()
    params: ParamsExtractor | None = None
    result: ResultExtractor | None = None
    title: str | None = None
    description: str | None = None
    auto_register: bool | None = None
    instance: InstanceFactory | None = None


def kind_of(func: Callable[..., Any]) -> Kind:
    """The kind of ``func``, following ``__wrapped__`` and a callable object's ``__call__``."""
    target = inspect.unwrap(func)
    if inspect.isasyncgenfunction(target):
        return "agen"
    if inspect.isgeneratorfunction(target):
        return "gen"
    if inspect.iscoroutinefunction(target):
        return "async"
    call = getattr(type(target), "__call__", None)  # noqa: B004 (a callable object's method)
    if call is not None and not inspect.isfunction(target) and not inspect.ismethod(target):
        return kind_of(call) if inspect.isfunction(call) else "sync"
    return "sync"


class Spec:
    """What never changes for one decorated callable: compiled once, when decorated.

    Args:
        func: the undecorated callable (not a class: see :func:`naming.refuse_class`).
        options: what the decorator was asked.

    Raises:
        PrefactorConfigError: the derived span type belongs to another callable.
    """

    __slots__ = (
        "_registered",
        "binder",
        "definition",
        "func",
        "kind",
        "new_instance",
        "params_extractor",
        "plan",
        "positional",
        "redefined",
        "result_extractor",
        "span_type",
        "text",
    )

    def __init__(self, func: Callable[..., Any], options: Options) -> None:
        # Derivation needs pydantic: imported by the first decoration, not by import prefactor.
        from prefactor._schemas.derive import (
            description_for,
            params_schema_for,
            result_schema_for,
            yields_text,
        )

        self.func = func
        self.kind = kind_of(func)
        if options.span_type is not None:
            self.span_type = options.span_type
        else:
            name = options.name or getattr(func, "__qualname__", None) or type(func).__qualname__
            self.span_type = f"{options.prefix}:{name}"
        auto_register = options.auto_register
        if auto_register is None:
            auto_register = options.span_type is None
        self.binder = Binder(func, options.exclude)
        # The names an all-positional call binds, unbound and bound (None: not that simple).
        self.positional = (self.binder.positional_names(False), self.binder.positional_names(True))
        self.params_extractor = options.params
        self.result_extractor = options.result
        self.new_instance = options.instance
        # A generator annotated to yield str records its items joined, else a list.
        self.text = self.kind in ("gen", "agen") and yields_text(func)
        self.definition: dict[str, Any] | None = None
        self.redefined = False
        if auto_register:
            # A custom extractor decides the payload's shape, so the hints do not describe it.
            self.definition = {
                "params_schema": (
                    {"type": "object"}
                    if options.params
                    else params_schema_for(func, exclude=options.exclude)
                ),
                "result_schema": None if options.result else result_schema_for(func),
                "title": options.title or self.span_type,
                "description": (
                    options.description
                    if options.description is not None
                    else description_for(func)
                ),
            }
            self.redefined = claim(self.span_type, func)
        self._registered: SchemaRegistry | None = None
        if self.definition is not None:
            self.ensure_registered(default_registry())
        # No tracer has generation 0: the first call compiles the real plan.
        self.plan = Plan(
            spec=self,
            generation=0,
            capturer=_NO_CAPTURER,
            strict=False,
            eager_params=False,
            eager_result=False,
        )

    def ensure_registered(self, registry: SchemaRegistry) -> None:
        """Register the derived span type in ``registry``, once per registry."""
        if registry is self._registered or self.definition is None:
            return
        try:
            if self.redefined or not registry.is_registered(self.span_type):
                registry.register_type(self.span_type, **self.definition, replace=self.redefined)
        except ValueError:
            logger.warning("span type %s is already registered differently", self.span_type)
        self._registered = registry

    def compile(self, tracer: Tracer) -> Plan:
        """The plan of calls under ``tracer`` (registering the span type in its registry)."""
        self.ensure_registered(tracer.registry)
        plan = Plan(
            spec=self,
            generation=tracer.generation,
            capturer=tracer.capturer,
            strict=tracer.strict,
            eager_params=tracer.strict or self.params_extractor is not None,
            eager_result=tracer.strict or self.result_extractor is not None,
        )
        self.plan = plan
        return plan

    def __repr__(self) -> str:
        return f"<Spec {self.span_type} {self.kind}>"


@dataclass(frozen=True, slots=True, kw_only=True)
class Plan:
    """How every call of one callable runs under one tracer's settings.

    Attributes:
        spec: the callable's spec.
        generation: the tracer's generation this plan was compiled for.
        capturer: the tracer's capturer.
        strict: whether violations raise in the caller.
        eager_params: params are bound, captured (and checked) before the body
            runs; otherwise the arguments are snapshotted and the rest happens
            in the exporter's thread.
        eager_result: the same for the result, after the body returns.
    """

    spec: Spec
    generation: int
    capturer: Capturer
    strict: bool
    eager_params: bool
    eager_result: bool

    # --- payloads, on the caller's path -----------------------------------------------------

    def params_now(
        self, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """The params payload of one call: bound, extracted if asked, captured."""
        spec = self.spec
        capturer = self.capturer
        if not kwargs and spec.params_extractor is None:
            names = spec.positional[bound]
            if names is not None and len(names) == len(args):
                flat = capturer.capture_params(names, args)
                if flat is not None:
                    return flat
        named = spec.binder.bind(bound, args, kwargs)
        extractor = spec.params_extractor
        if extractor is None:
            return capturer.capture_mapping(named)
        try:
            extracted = extractor(named)
        except Exception as exc:  # the user's extractor: record its failure, not ours
            logger.warning("params extractor of %s raised %s", spec.span_type, type(exc).__name__)
            return {"extractor_error": capturer.capture(exc)}
        return capturer.capture_mapping(extracted)

    def result_now(self, value: Any) -> dict[str, Any]:
        """The result payload of one call: extracted if asked, captured."""
        spec = self.spec
        extractor = spec.result_extractor
        if extractor is None:
            return self.capturer.capture_result(value)
        try:
            extracted = extractor(value)
        except Exception as exc:  # the user's extractor: record its failure, not ours
            logger.warning("result extractor of %s raised %s", spec.span_type, type(exc).__name__)
            return {"extractor_error": self.capturer.capture(exc)}
        return self.capturer.capture_mapping(extracted)

    def collected_now(self, collected: Any) -> dict[str, Any]:
        """The result payload of a generator from what it yielded (captured as it came)."""
        extractor = self.spec.result_extractor
        if extractor is None:
            return {"value": collected}
        return self.result_now(collected)


_NO_CAPTURER = Capturer()  # the uncompiled plan's: never used to capture
