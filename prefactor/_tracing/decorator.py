"""``@traced``: one span per call of a function, coroutine, generator or method.

The decorator decides at decoration time what kind of callable it wraps
(following ``__wrapped__`` and unwrapping ``classmethod``/``staticmethod``),
so the per-call path does no introspection. It finds its tracer when called:
the open span's, else the process-wide one (see :mod:`prefactor._runtime`), so
it may be applied at import time, before any configuration.

Per nested call, the caller's path does only what must happen there: take a
sequence number for the span id, read the clock twice, snapshot arguments
that could change later, and queue the span itself (one :class:`CallSpan`)
as its create record. Binding arguments to names, capturing and (in lenient
mode) validating happen in the exporter's thread, through
:class:`~prefactor._records.Lazy` payloads. In strict mode, params
are bound, captured and validated before the function body runs, and the
result after it returns, so a violation raises
:class:`prefactor.SchemaValidationError` in the caller.

A call made outside any agent instance becomes the root span of an instance
of its own, for the configured agent, so nothing is lost for want of one.
"""

from __future__ import annotations

import inspect
import logging
import time
import weakref
from collections.abc import Callable, Collection, Mapping
from typing import Any, Literal, ParamSpec, TypeVar, overload

import wrapt

from prefactor._errors import PrefactorTerminatedError, SchemaValidationError
from prefactor._ids import SEQUENCE, generate_pfid
from prefactor._records import FinishStatus, Lazy, Violation
from prefactor._runtime import get_tracer
from prefactor._schemas.derive import (
    description_for,
    params_schema_for,
    result_schema_for,
    yields_text,
)
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._schemas.validation import fast_accepts
from prefactor._tracing.binding import Binder
from prefactor._tracing.capture import ATOMIC
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.generators import traced_async_generator, traced_generator
from prefactor._tracing.span_context import error_result
from prefactor._tracing.state import InstanceState, SpanState, emit_finish, emit_pending
from prefactor._tracing.tracer import Tracer

__all__ = ["SpanSpec", "TracedFunction", "decorate", "traced"]

logger = logging.getLogger("prefactor.tracing")

P = ParamSpec("P")
R = TypeVar("R")

Kind = Literal["sync", "async", "gen", "agen"]
ParamsExtractor = Callable[[dict[str, Any]], Mapping[str, Any]]
ResultExtractor = Callable[[Any], Mapping[str, Any]]


def _kind(func: Callable[..., Any]) -> Kind:
    target = inspect.unwrap(func)
    if inspect.isasyncgenfunction(target):
        return "agen"
    if inspect.isgeneratorfunction(target):
        return "gen"
    if inspect.iscoroutinefunction(target):
        return "async"
    call = getattr(type(target), "__call__", None)  # noqa: B004 (a callable object's method)
    if call is not None and not inspect.isfunction(target) and not inspect.ismethod(target):
        return _kind(call) if inspect.isfunction(call) else "sync"
    return "sync"


class SpanSpec:
    """What every call of one decorated function shares: its span type, schemas and binder.

    Args:
        func: the undecorated callable.
        span_type: the span's schema name; ``None`` derives ``function:<qualname>``.
        auto_register: register the span type with schemas derived from the
            type hints (when not already registered).
        exclude: parameter names left out of the params.
        params: custom extractor: gets the bound params dict, returns the payload.
        result: custom extractor: gets the return value, returns the payload.
        title: the span type's title.
        description: the span type's description (default: the docstring).
    """

    __slots__ = (
        "_registered",
        "auto_register",
        "binder",
        "custom",
        "definition",
        "func",
        "kind",
        "params_extractor",
        "positional",
        "result_extractor",
        "span_type",
        "text",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        span_type: str | None = None,
        *,
        auto_register: bool | None = None,
        exclude: Collection[str] = (),
        params: ParamsExtractor | None = None,
        result: ResultExtractor | None = None,
        title: str | None = None,
        description: str | None = None,
    ) -> None:
        self.func = func
        qualname = getattr(func, "__qualname__", None) or type(func).__qualname__
        self.span_type = span_type or f"function:{qualname}"
        self.auto_register = span_type is None if auto_register is None else auto_register
        self.kind = _kind(func)
        # A generator annotated to yield str records its items joined (the result schema agrees).
        self.text = self.kind in ("gen", "agen") and yields_text(func)
        self.binder = Binder(func, exclude)
        # The names an all-positional call binds, unbound and bound (None: not that simple).
        self.positional = (self.binder.positional_names(False), self.binder.positional_names(True))
        self.params_extractor = params
        self.result_extractor = result
        # Custom extractors read live objects, so they must run on the caller's path.
        self.custom = params is not None or result is not None
        self.definition: dict[str, Any] | None = None
        if self.auto_register:
            # A custom extractor decides the payload's shape, so the hints do not describe it.
            self.definition = {
                "params_schema": (
                    {"type": "object"} if params else params_schema_for(func, exclude=exclude)
                ),
                "result_schema": None if result else result_schema_for(func),
                "title": title or self.span_type,
                "description": description if description is not None else description_for(func),
            }
        self._registered: SchemaRegistry | None = None
        if self.definition is not None:
            self.ensure_registered(default_registry())

    def ensure_registered(self, registry: SchemaRegistry | None) -> None:
        """Register the derived span type in ``registry`` once (cheap when already done)."""
        if registry is None or registry is self._registered or self.definition is None:
            return
        try:
            if not registry.is_registered(self.span_type):
                registry.register_type(self.span_type, **self.definition)
        except ValueError:
            logger.warning("span type %s is already registered differently", self.span_type)
        self._registered = registry

    # --- payloads -------------------------------------------------------------------------

    def params_now(
        self, tracer: Tracer, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Bind and capture the params on the caller's path."""
        if not kwargs and self.params_extractor is None:
            names = self.positional[bound]
            if names is not None and len(names) == len(args):
                flat = tracer.capturer.capture_params(names, args)
                if flat is not None:
                    return flat
        named = self.binder.bind(bound, args, kwargs)
        if self.params_extractor is not None:
            try:
                return tracer.capturer.capture_mapping(self.params_extractor(named))
            except Exception as exc:
                logger.warning("params extractor of %s failed: %r", self.span_type, exc)
                return {"extractor_error": repr(exc)}
        return tracer.capturer.capture_mapping(named)

    def result_now(self, tracer: Tracer, value: Any) -> dict[str, Any]:
        """Capture the result on the caller's path."""
        if self.result_extractor is None and tracer.capturer.passes_through(value):
            return {"value": value}  # already its own capture: the common strict result
        if self.result_extractor is not None:
            try:
                return tracer.capturer.capture_mapping(self.result_extractor(value))
            except Exception as exc:
                logger.warning("result extractor of %s failed: %r", self.span_type, exc)
                return {"extractor_error": repr(exc)}
        return tracer.capturer.capture_result(value)

    def deferred_params(
        self, inst: InstanceState, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[dict[str, Any], tuple[Violation, ...]]:
        tracer = inst.tracer
        payload = self.params_now(tracer, bound, args, kwargs)
        return payload, tracer.check(inst, self.span_type, "params", payload)

    def params_payload(
        self, inst: InstanceState, bound: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, tuple[Violation, ...]]:
        """The params of one call: checked now (strict), or a deferred snapshot (lenient)."""
        tracer = inst.tracer
        if tracer.strict or self.params_extractor is not None:
            payload = self.params_now(tracer, bound, args, kwargs)
            return payload, tracer.check(inst, self.span_type, "params", payload)
        snap_args, snap_kwargs = self.snapshot(tracer, args, kwargs)
        return _LazyParams(self, inst, bound, snap_args, snap_kwargs), ()

    @staticmethod
    def snapshot(
        tracer: Tracer, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[tuple[Any, ...], Mapping[str, Any]]:
        """The arguments as they are now: atomic values kept, anything else captured."""
        for value in args:
            if type(value) not in _ATOMIC:
                args = tuple(tracer.capturer.capture(v) for v in args)
                break
        if kwargs:
            for value in kwargs.values():
                if type(value) not in _ATOMIC:
                    capture = tracer.capturer.capture
                    kwargs = {k: capture(v) for k, v in kwargs.items()}
                    break
        return args, kwargs

    def result_payload(self, inst: InstanceState, value: Any) -> tuple[Any, tuple[Violation, ...]]:
        """The result of one call: checked now (strict), or a deferred snapshot (lenient)."""
        tracer = inst.tracer
        if tracer.strict or self.result_extractor is not None:
            payload = self.result_now(tracer, value)
            return payload, tracer.check(inst, self.span_type, "result", payload)
        if type(value) not in _ATOMIC:
            value = _Snapshot(self.result_now(tracer, value))
        return _LazyResult(self, inst, value), ()

    def deferred_result(
        self, inst: InstanceState, value: Any
    ) -> tuple[dict[str, Any], tuple[Violation, ...]]:
        """Capture (unless snapshotted already) and check a result, in the background."""
        payload = (
            value.payload if isinstance(value, _Snapshot) else self.result_now(inst.tracer, value)
        )
        return payload, inst.tracer.check(inst, self.span_type, "result", payload)


# The exact types whose values cannot change after the call (checked by identity: fast).
_ATOMIC = ATOMIC


class _Snapshot:
    """A result already captured on the caller's path (it was mutable)."""

    __slots__ = ("payload",)

    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload


class _LazyParams(Lazy):
    """A call's params, bound, captured and checked in the exporter's thread.

    One object rather than a closure with an argument tuple and a bound
    method: the hot path allocates as few garbage-collected objects as it can.
    """

    __slots__ = ("args", "bound", "inst", "kwargs", "spec")

    def __init__(
        self,
        spec: SpanSpec,
        inst: InstanceState,
        bound: bool,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        self.spec = spec
        self.inst = inst
        self.bound = bound
        self.args = args
        self.kwargs = kwargs

    def resolve(self) -> tuple[dict[str, Any], tuple[Violation, ...]]:
        return self.spec.deferred_params(self.inst, self.bound, self.args, self.kwargs)


class _LazyResult(Lazy):
    """A call's result, captured (unless snapshotted) and checked in the exporter's thread."""

    __slots__ = ("inst", "spec", "value")

    def __init__(self, spec: SpanSpec, inst: InstanceState, value: Any) -> None:
        self.spec = spec
        self.inst = inst
        self.value = value

    def resolve(self) -> tuple[dict[str, Any], tuple[Violation, ...]]:
        return self.spec.deferred_result(self.inst, self.value)


class CallSpan(SpanState):
    """The span of one nested ``@traced`` call: its live state, then its own create record.

    The hot path makes this one object per call and nothing else: no id
    string (a sequence number, encoded when first read), no params or result
    payload (the arguments and the return value, resolved in the exporter's
    thread unless checked on the caller's path), and no separate record.
    """

    __slots__ = ("args", "bound", "kwargs", "result_ready", "spec")

    def __init__(  # noqa: PLR0917 (built once per call: positional is cheapest)
        self,
        seq: int,
        inst: InstanceState,
        spec: SpanSpec,
        started: int,
        parent: SpanState,
        bound: bool,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        # SpanState's fields, set here rather than through super().__init__: one frame less.
        self._id = None
        self.seq = seq
        self.id_ns = started
        self.instance = inst
        self.span_type = spec.span_type
        self.owner = None
        self.started = started
        self.params = None
        self.violations = ()
        self.parent = parent
        self.pending = bytearray(b"\x01")
        self.spec = spec
        self.bound = bound
        self.args = args
        self.kwargs = kwargs
        # Whether ``result`` is a finished payload (checked on the caller's path)
        # rather than a return value still to capture and check.
        self.result_ready = False

    def create_params(self) -> Any:
        """The params: ready (checked on the caller's path), or the arguments to resolve."""
        if self.params is not None:
            return self.params
        return _LazyParams(self.spec, self.instance, self.bound, self.args, self.kwargs)

    def payload_of(self, result: Any) -> Any:
        return result if self.result_ready else _LazyResult(self.spec, self.instance, result)

    def end(
        self,
        status: FinishStatus,
        result: Any,
        ready: bool = True,
        violations: tuple[Violation, ...] = (),
    ) -> None:
        """Finish with ``status``.

        ``result`` is a payload (``ready``), or the return value still to
        capture and check in the exporter's thread.
        """
        self.result_ready = ready
        emit_finish(self, status, result, violations)


# --- the span around one call -----------------------------------------------------------


class OpenSpan:
    """The caller-side handle of one traced call: starts, then finishes exactly once."""

    __slots__ = ("done", "inst", "iterating", "own_instance", "spec", "state")

    def __init__(
        self, spec: SpanSpec, inst: InstanceState, state: SpanState, own_instance: bool
    ) -> None:
        self.spec = spec
        self.inst = inst
        self.state = state
        self.own_instance = own_instance
        self.done = False
        # Set by a generator wrapper once its body runs (its own finally then finishes it).
        self.iterating = False

    def finish(
        self, status: FinishStatus, payload: Any, violations: tuple[Violation, ...] = ()
    ) -> None:
        if self.done:
            return
        self.done = True
        inst = self.inst
        emit_finish(self.state, status, payload, violations)
        if self.own_instance:
            inst.tracer.finish_instance(inst, "complete" if status == "complete" else "failed")

    def finish_if_open(self) -> None:
        """Finish ``cancelled`` a generator's span that was dropped before it ever ran."""
        if not self.done and not self.iterating:
            self.finish("cancelled", {"value": []})

    def fail(self, exc: BaseException) -> None:
        status: FinishStatus = "failed" if isinstance(exc, Exception) else "cancelled"
        self.finish(status, error_result(exc))

    def complete(self, value: Any) -> None:
        """Finish ``complete`` with ``value`` as the result.

        Raises:
            SchemaValidationError: strict mode and the result breaks the schema
                (the span is then finished ``failed``).
        """
        try:
            payload, violations = self.spec.result_payload(self.inst, value)
        except SchemaValidationError as exc:
            self.fail(exc)
            raise
        self.finish("complete", payload, violations)

    def complete_payload(self, payload: dict[str, Any]) -> None:
        """Finish ``complete`` with an already shaped, JSON-safe result payload.

        Raises:
            SchemaValidationError: strict mode and the result breaks the schema.
        """
        try:
            violations = self.inst.tracer.check(self.inst, self.spec.span_type, "result", payload)
        except SchemaValidationError as exc:
            self.fail(exc)
            raise
        self.finish("complete", payload, violations)


def open_span(
    spec: SpanSpec,
    bound: bool,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    *,
    new_instance: Callable[[Tracer], InstanceState] | None = None,
) -> OpenSpan:
    """Start the span of one call and return its handle; the caller activates ``state``.

    Raises:
        PrefactorTerminatedError: the instance was terminated by the platform.
        SchemaValidationError: strict mode and the params break the schema.
    """
    parent = CURRENT_SPAN.get()
    own = False
    if parent is not None:  # nested, an agent entry included: a span of the open instance
        inst = parent.instance
        parent_id: str | None = parent.id
        emit_pending(parent)
    else:
        tracer = get_tracer()
        spec.ensure_registered(tracer.registry)
        inst = new_instance(tracer) if new_instance is not None else _implicit_instance(tracer)
        parent_id, own = None, True
    if inst.terminated:
        raise PrefactorTerminatedError(inst.termination_reason)
    tracer = inst.tracer
    if spec._registered is not tracer.registry and spec.definition is not None:
        spec.ensure_registered(tracer.registry)
    try:
        payload, violations = spec.params_payload(inst, bound, args, kwargs)
    except SchemaValidationError:
        if own:
            tracer.finish_instance(inst, "failed")
        raise
    now = time.time_ns()
    state = SpanState(
        generate_pfid(inst.partition, now),
        inst,
        spec.span_type,
        None,
        now,
        payload,
        violations,
        parent_id,
        bytearray(b"\x01"),
    )
    return OpenSpan(spec, inst, state, own)


def _implicit_instance(tracer: Tracer) -> InstanceState:
    inst = tracer.new_instance(
        agent_version={"name": tracer.agent_id, "external_identifier": "unversioned"}
    )
    tracer.start_instance(inst)
    return inst


# --- the wrappers -----------------------------------------------------------------------

_get_span = CURRENT_SPAN.get
_set_span = CURRENT_SPAN.set
_reset_span = CURRENT_SPAN.reset


def _nested_sync_call(  # noqa: PLR0917 (a hot path: no keyword packing)
    spec: SpanSpec,
    parent: SpanState,
    inst: InstanceState,
    wrapped: Any,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """A sync call inside an open span, in strict mode or with custom extractors.

    As the inlined lenient path in :func:`make_wrapper`, but a side that is
    checked (strict) or extracted (custom) is captured on the caller's path:
    params before the body runs, the result after it returns, so a strict
    violation raises :class:`SchemaValidationError` into the caller.
    """
    if inst.terminated:
        raise PrefactorTerminatedError(inst.termination_reason)
    tracer = inst.tracer
    strict = tracer.strict
    try:
        registry = inst.registry
        fast_params, fast_result = (
            registry.fast_checks(spec.span_type)
            if strict and registry is not None
            else (None, None)
        )
        if parent.pending:
            emit_pending(parent)
        bound = instance is not None
        if strict or spec.params_extractor is not None:
            params: Any = spec.params_now(tracer, bound, args, kwargs)
            violations = (
                ()
                if fast_accepts(fast_params, params)
                else tracer.check(inst, spec.span_type, "params", params)
            )
            snap_args: tuple[Any, ...] = ()
            snap_kwargs: Mapping[str, Any] = {}
        else:
            params, violations = None, ()
            snap_args, snap_kwargs = spec.snapshot(tracer, args, kwargs)
        span = CallSpan(
            next(SEQUENCE.counter),
            inst,
            spec,
            time.time_ns(),
            parent,
            bound,
            snap_args,
            snap_kwargs,
        )
        span.params = params
        span.violations = violations
        token = _set_span(span)
    except SchemaValidationError:
        raise
    except Exception:  # an SDK bug must not break the call
        logger.exception("prefactor could not open a span for %s", spec.span_type)
        return wrapped(*args, **kwargs)
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        _reset_span(token)
        span.end("failed" if isinstance(exc, Exception) else "cancelled", error_result(exc))
        raise
    _reset_span(token)
    try:
        if strict or spec.result_extractor is not None:
            payload = spec.result_now(tracer, result)
            violations = (
                ()
                if fast_accepts(fast_result, payload)
                else tracer.check(inst, spec.span_type, "result", payload)
            )
            span.result_ready = True  # span.end(), inlined
            emit_finish(span, "complete", payload, violations)
        else:
            snap = result if type(result) in _ATOMIC else _Snapshot(spec.result_now(tracer, result))
            span.end("complete", snap, ready=False)
    except SchemaValidationError as exc:
        span.end("failed", error_result(exc))
        raise
    except Exception:
        logger.exception("prefactor could not finish a span for %s", spec.span_type)
    return result


def make_wrapper(
    spec: SpanSpec, new_instance: Callable[[Tracer], InstanceState] | None = None
) -> Callable[..., Any]:
    """The wrapt wrapper for ``spec.kind``; ``new_instance`` makes each call an agent instance."""

    if spec.kind == "sync":
        span_type = spec.span_type

        def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            parent = _get_span()
            if parent is not None:
                inst = parent.instance
                tracer = inst.tracer
                if tracer.strict or spec.custom or inst.terminated:
                    return _nested_sync_call(spec, parent, inst, wrapped, instance, args, kwargs)
                # The hottest path (a lenient call inside an open span), inlined:
                # _nested_sync_call's lenient branch with SpanSpec.snapshot and
                # CallSpan.end (claim, then queue) folded in. Each call they
                # would add costs about 4% of a traced call (callgrind); keep
                # these copies in step with their originals.
                try:
                    if parent.pending:
                        emit_pending(parent)
                    snap_args, snap_kwargs = args, kwargs
                    for value in args:
                        if type(value) not in _ATOMIC:
                            snap_args = tuple(tracer.capturer.capture(v) for v in args)
                            break
                    if kwargs:
                        for value in kwargs.values():
                            if type(value) not in _ATOMIC:
                                capture = tracer.capturer.capture
                                snap_kwargs = {k: capture(v) for k, v in kwargs.items()}
                                break
                    span = CallSpan(
                        next(SEQUENCE.counter),
                        inst,
                        spec,
                        time.time_ns(),
                        parent,
                        instance is not None,
                        snap_args,
                        snap_kwargs,
                    )
                    token = _set_span(span)
                except Exception:  # an SDK bug must not break the call
                    logger.exception("prefactor could not open a span for %s", span_type)
                    return wrapped(*args, **kwargs)
                try:
                    result = wrapped(*args, **kwargs)
                except BaseException as exc:
                    _reset_span(token)
                    span.end(
                        "failed" if isinstance(exc, Exception) else "cancelled", error_result(exc)
                    )
                    raise
                _reset_span(token)
                try:
                    snap = (
                        result
                        if type(result) in _ATOMIC
                        else _Snapshot(spec.result_now(tracer, result))
                    )
                    claimed = False
                    pending = span.pending
                    if pending:  # claim(), inlined
                        try:
                            pending.pop()
                            claimed = True
                        except IndexError:  # a child in another thread sent the create
                            pass
                    if claimed:
                        span.status = "complete"
                        span.result = snap
                        span.finished = time.time_ns()
                        tracer.submit(span)
                    else:
                        span.end("complete", snap, ready=False)
                except Exception:
                    logger.exception("prefactor could not finish a span for %s", span_type)
                return result
            try:
                opened = open_span(
                    spec, instance is not None, args, kwargs, new_instance=new_instance
                )
            except (SchemaValidationError, PrefactorTerminatedError):
                raise
            except Exception:  # an SDK bug must not break the call
                logger.exception("prefactor could not open a span for %s", spec.span_type)
                return wrapped(*args, **kwargs)
            token = CURRENT_SPAN.set(opened.state)
            try:
                value = wrapped(*args, **kwargs)
            except BaseException as exc:
                opened.fail(exc)
                raise
            finally:
                CURRENT_SPAN.reset(token)
            opened.complete(value)
            return value

        return sync_wrapper

    if spec.kind == "async":

        def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            async def run() -> Any:
                try:
                    span = open_span(
                        spec, instance is not None, args, kwargs, new_instance=new_instance
                    )
                except (SchemaValidationError, PrefactorTerminatedError):
                    raise
                except Exception:
                    logger.exception("prefactor could not open a span for %s", spec.span_type)
                    return await wrapped(*args, **kwargs)
                token = CURRENT_SPAN.set(span.state)
                try:
                    value = await wrapped(*args, **kwargs)
                except BaseException as exc:
                    span.fail(exc)
                    raise
                finally:
                    CURRENT_SPAN.reset(token)
                span.complete(value)
                return value

            return run()

        return async_wrapper

    if spec.kind == "gen":

        def gen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            span = open_span(spec, instance is not None, args, kwargs, new_instance=new_instance)
            token = CURRENT_SPAN.set(span.state)
            try:
                gen = wrapped(*args, **kwargs)
            except BaseException as exc:
                span.fail(exc)
                raise
            finally:
                CURRENT_SPAN.reset(token)
            wrapper = traced_generator(gen, span)
            # A generator never started runs no finally block: finish it when collected.
            weakref.finalize(wrapper, span.finish_if_open)
            return wrapper

        return gen_wrapper

    def agen_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        span = open_span(spec, instance is not None, args, kwargs, new_instance=new_instance)
        wrapper = traced_async_generator(wrapped(*args, **kwargs), span)
        weakref.finalize(wrapper, span.finish_if_open)
        return wrapper

    return agen_wrapper


def decorate(
    func: Any,
    spec_kwargs: dict[str, Any],
    new_instance: Callable[[Tracer], InstanceState] | None = None,
) -> Any:
    """Wrap ``func`` (function, method, classmethod, staticmethod or callable object)."""
    if isinstance(func, classmethod | staticmethod):
        return type(func)(decorate(func.__func__, spec_kwargs, new_instance))
    spec = SpanSpec(func, **spec_kwargs)
    return TracedFunction(func, make_wrapper(spec, new_instance), spec)


# wrapt's constructor with an explicit binding (FunctionWrapper's own picks it).
_FunctionWrapperBase: Any = wrapt.FunctionWrapper.__mro__[1]


def _outside_class(func: Any) -> bool:
    """Whether ``func`` is a plain function defined at module level or inside a function."""
    if not inspect.isfunction(func) or hasattr(func, "__self__"):
        return False
    scope = func.__qualname__.rpartition(".")[0]
    return not scope or scope.endswith("<locals>")


class TracedFunction(wrapt.FunctionWrapper[Any, Any]):
    """A callable wrapped by ``@traced`` (and friends); ``__prefactor_spec__`` says how."""

    def __init__(self, wrapped: Any, wrapper: Any, spec: SpanSpec) -> None:
        if _outside_class(wrapped):
            # wrapt calls a plain function's wrapper after looking up the function's
            # ``__self__``, which raises and clears an AttributeError on every call
            # (about 1 µs here, a third of a span's cost). The "staticmethod"
            # binding skips that lookup and binds like "function" when the wrapper
            # is read from an instance; only a call through the class, as in
            # ``Class.f(obj, ...)``, then records ``obj`` as an argument. So it is
            # used only for functions not defined in a class body.
            _FunctionWrapperBase.__init__(self, wrapped, None, wrapper, None, "staticmethod")
        else:
            super().__init__(wrapped, wrapper)
        self._self_spec = spec

    @property
    def __prefactor_spec__(self) -> SpanSpec:
        spec: SpanSpec = self._self_spec
        return spec


@overload
def traced(func: Callable[P, R], /) -> Callable[P, R]: ...


@overload
def traced(
    span_type_or_name: str | None = None,
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
    func_or_name: Any = None,
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
    registry) and ``@traced(span_type=..., exclude=..., params=..., result=...)``.

    Args:
        span_type: the span's schema name. Given, it must be registered in the
            schema registry (strict mode raises if not; lenient mode warns). Not
            given, it is ``function:<qualname>``, registered automatically with
            params and result schemas derived from the type hints.
        name: alias of ``span_type``.
        exclude: parameter names left out of the recorded params.
        params: custom extractor: receives the bound params dict, returns the
            mapping to record.
        result: custom extractor: receives the return value, returns the
            mapping to record.
        title: the span type's title when registered automatically.
        description: its description (default: the docstring's first paragraph).
        auto_register: force (or prevent) automatic registration.

    The recorded ``params`` are the arguments bound to their names, defaults
    applied, ``self``/``cls`` left out, ``*args`` under ``"args"`` and
    ``**kwargs`` under ``"kwargs"``. The ``result`` is a returned mapping,
    pydantic model or dataclass's fields, else ``{"value": <value>}``; a
    generator's result is ``{"value": [...yielded]}`` (strings joined).
    """
    kwargs: dict[str, Any] = {
        "span_type": span_type or name,
        "exclude": exclude,
        "params": params,
        "result": result,
        "title": title,
        "description": description,
        "auto_register": auto_register,
    }
    if isinstance(func_or_name, str):
        kwargs["span_type"] = func_or_name
        return lambda func: decorate(func, kwargs)
    if func_or_name is None:
        return lambda func: decorate(func, kwargs)
    return decorate(func_or_name, kwargs)
