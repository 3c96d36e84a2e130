"""The span of one ``@traced`` call: opened by :func:`begin`, closed by ``complete`` or ``fail``.

One :class:`CallSpan` per call is all the caller's path makes: no id string
(a sequence number, encoded when first read), no params or result payload
unless the plan captures them on the caller's path, and no separate record:
once finished, the span is queued as its own create record.

What the plan leaves to the exporter's thread is a :class:`~prefactor._tracing.state.Deferred`
side: arguments or a return value that cannot change (strings, numbers, booleans,
``None``) are kept as they are and bound, captured and checked there; anything
else is captured on the caller's path (it could change after the call) and only
checked there.

Every SDK step runs under the guard (:func:`~prefactor._tracing.guard.contain`):
a failure to open leaves the call untraced, a failure to close leaves the
span as far as it got; neither reaches the caller, nor replaces the caller's
own exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from prefactor._errors import PrefactorTerminatedError, SchemaValidationError
from prefactor._ids import SEQUENCE
from prefactor._records import FinishStatus, Violation, finish_item, span_create_item
from prefactor._tracing.capture import ATOMIC
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.guard import DELIBERATE, contain
from prefactor._tracing.plan import Plan, Spec
from prefactor._tracing.slot import TRACER
from prefactor._tracing.state import (
    Deferred,
    InstanceState,
    SpanState,
    check_side,
    emit_finish,
    emit_pending,
    error_result,
)

__all__ = ["CallSpan", "RootCall", "begin"]

_get_span = CURRENT_SPAN.get


class _UnboundParams(Deferred):
    """Arguments kept as they were passed: bound and captured in the exporter's thread."""

    __slots__ = ("args", "bound", "kwargs", "plan")

    def __init__(self, span: CallSpan) -> None:
        super().__init__(span.instance, span.span_type, "params", None)
        self.plan = span.plan
        self.bound = span.bound
        self.args = span.args
        self.kwargs = span.kwargs

    def payload(self) -> Any:
        return self.plan.params_now(self.bound, self.args, self.kwargs)


class _RawResult(Deferred):
    """A return value that cannot change, captured in the exporter's thread."""

    __slots__ = ("plan",)

    def __init__(self, span: CallSpan, value: Any) -> None:
        super().__init__(span.instance, span.span_type, "result", value)
        self.plan = span.plan

    def payload(self) -> Any:
        return self.plan.result_now(self.data)


class _Captured:
    """A result captured on the caller's path, still to be checked."""

    __slots__ = ("payload",)

    def __init__(self, payload: Any) -> None:
        self.payload = payload


class CallSpan(SpanState):
    """The span of one traced call: its live state, then its own create record.

    ``params`` is the params payload when the caller's path captured it
    (``params_checked`` when it was also checked), else ``None`` and the
    arguments are kept to be bound later. ``result``, once finished, is a
    payload (``result_ready``), a :class:`_Captured` payload to check, or a
    return value that cannot change.
    """

    __slots__ = (
        "args",
        "bound",
        "carries",
        "kwargs",
        "own",
        "params_checked",
        "plan",
        "result_ready",
    )

    def __init__(  # noqa: PLR0917 (built once per call: positional is cheapest)
        self,
        plan: Plan,
        inst: InstanceState,
        parent: SpanState | None,
        own: bool,
        bound: bool,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
    ) -> None:
        # SpanState's fields, set here rather than through its __init__: one frame less.
        now = time.time_ns()
        self._id = None
        self.seq = next(SEQUENCE.counter)
        self.id_ns = now
        self.instance = inst
        self.instance_id = inst.id
        self.span_type = plan.spec.span_type
        self.owner = None
        self.started = now
        self.params = None
        self.violations = ()
        self.parent = parent
        self.pending = {"create": True}
        self.plan = plan
        self.own = own
        self.bound = bound
        self.args = args
        self.kwargs = kwargs
        self.params_checked = False
        self.result_ready = False
        self.carries = False  # see RootCall

    # --- what the record reads, in the exporter's thread ------------------------------------

    def create_params(self) -> Any:
        params = self.params
        if params is None:
            return _UnboundParams(self)
        if self.params_checked:
            return params
        return Deferred(self.instance, self.span_type, "params", params)

    def payload_of(self, result: Any) -> Any:
        if self.result_ready:
            return result
        if type(result) is _Captured:
            return Deferred(self.instance, self.span_type, "result", result.payload)
        return _RawResult(self, result)

    def to_bulk_item(self) -> dict[str, Any]:
        """Its create in its final state, the payloads made and checked here, in one pass.

        The same item as :meth:`SpanState.to_bulk_item` makes through a record
        and deferred sides, without those objects: this runs once per span.
        """
        inst, plan, span_type = self.instance, self.plan, self.span_type
        violations = self.violations
        params = self.params
        result = self.result
        check_params = params is None or not self.params_checked
        if params is None:
            params = plan.params_now(self.bound, self.args, self.kwargs)
        if not self.result_ready:
            result = result.payload if type(result) is _Captured else plan.result_now(result)
            if check_params:  # the usual span: both sides in one call
                violations += inst.tracer.check_call(inst, span_type, params, result)
            else:
                violations += check_side(inst, span_type, "result", result)
        elif check_params:
            violations += check_side(inst, span_type, "params", params)
        return span_create_item(
            self.id,
            inst.id,
            span_type,
            self.status,
            self.started,
            params,
            SpanState.parent_of(self.parent),  # what parent_id reads, one frame less
            self.finished,
            result,
            violations,
        )

    # --- the end of the call ----------------------------------------------------------------

    def complete(self, value: Any, collected: bool = False) -> None:
        """Finish ``complete`` with the call's return value as its result.

        Args:
            value: the return value; with ``collected``, what a generator
                yielded (already captured, item by item, as it came).
            collected: see ``value``.

        Raises:
            SchemaValidationError: strict mode, and the result breaks its
                schema (the span is then finished ``failed``).
        """
        plan = self.plan
        try:
            violations: tuple[Violation, ...] = ()
            if collected or plan.eager_result or type(value) not in ATOMIC:
                payload = plan.collected_now(value) if collected else plan.result_now(value)
                if plan.eager_result:  # checked here, so that a violation raises in the caller
                    inst = self.instance
                    violations = inst.tracer.check(inst, self.span_type, "result", payload)
                    self.result_ready = True
                    value = payload
                else:  # captured now (it could change), checked in the exporter's thread
                    value = _Captured(payload)
            emit_finish(self, "complete", value, violations)
            if self.own:
                self._finish_instance("complete")
        except SchemaValidationError as exc:
            self.fail(exc)
            raise
        except Exception as exc:
            contain(exc, "finish a span", self.span_type)

    def fail(self, exc: BaseException) -> None:
        """Finish ``failed`` with ``exc``'s error record (``cancelled`` for a ``BaseException``).

        The error record is never checked against the result schema. Never
        raises (unless internal errors are set to surface).
        """
        status: FinishStatus = "failed" if isinstance(exc, Exception) else "cancelled"
        try:
            payload = error_result(self.plan.capturer, exc)
        except Exception as err:  # a capturer that raises: finish without the record
            self.finish(status)
            contain(err, "record a span's error", self.span_type)
            return
        self.finish(status, payload)

    def finish(self, status: FinishStatus, payload: Any = None) -> None:
        """Finish with ``status`` and a finished, unchecked result payload; never raises."""
        try:
            self.result_ready = True
            emit_finish(self, status, payload)
            if self.own:
                self._finish_instance(instance_status(status))
        except Exception as err:
            contain(err, "finish a span", self.span_type)

    def _finish_instance(self, status: FinishStatus) -> None:
        inst = self.instance
        inst.tracer.finish_instance(inst, status)


def instance_status(span_status: FinishStatus) -> FinishStatus:
    """How the instance of a root call ends, given how its span ended (cancelled: failed)."""
    return "complete" if span_status == "complete" else "failed"


class RootCall(CallSpan):
    """The span of a ``@traced`` call outside any span, the root of an instance of its own.

    Its instance is not sent when the call starts
    (:meth:`~prefactor._tracing.tracer.Tracer.deferred_instance`). If nothing
    else of it was sent by the time the call ends (no span was opened inside
    it), this span carries the instance: it is queued as one record whose
    wire items are the instance's registration and start, the span's create
    in its final state and the instance's finish (``complete``, or ``failed``
    for a span that did not complete), with the idempotency keys the four
    separate records would have. Otherwise it is an ordinary span.
    """

    __slots__ = ()

    def carry_instance(self) -> bool:
        inst = self.instance
        if not inst.claim_registration():
            return False
        inst.finished = True  # its finish goes with this span
        self.carries = True
        return True

    def to_bulk_items(self) -> list[dict[str, Any]]:
        """Its wire items: the span's create, with its instance's around it when it carries it."""
        item = self.to_bulk_item()
        if not self.carries:
            return [item]
        inst = self.instance
        register, start = inst.tracer.opening_items(inst)
        # The instance finishes when its span does: the same moment, formatted once.
        ended = item["details"]["finished_at"]
        return [register, start, item, finish_item(inst.id, instance_status(self.status), ended)]


_NO_KWARGS: Mapping[str, Any] = MappingProxyType({})


def begin(
    spec: Spec, bound: bool, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> CallSpan | None:
    """Open the span of one call, under the current span or as the root of a new instance.

    Returns:
        the span, or ``None`` when the SDK failed to open one (contained: the
        call then runs untraced).

    Raises:
        PrefactorTerminatedError: the platform terminated the open instance.
        SchemaValidationError: strict mode, and the params break their schema.
    """
    fresh: InstanceState | None = None
    span_class = CallSpan
    try:
        parent = _get_span()
        if parent is not None:
            inst = parent.instance
            tracer = inst.tracer
        else:
            tracer = TRACER.get()
        plan = spec.plan
        if plan.generation != tracer.generation:
            plan = spec.compile(tracer)
        if parent is None:
            if spec.new_instance is not None:  # an @agent's: registered and started now
                inst = fresh = spec.new_instance(tracer)
            else:
                inst = fresh = tracer.deferred_instance()
                span_class = RootCall
        elif inst.terminated:
            raise PrefactorTerminatedError(inst.termination_reason)
        elif parent.pending:
            emit_pending(parent)
        if plan.eager_params:  # checked here, so that a violation raises in the caller
            params = plan.params_now(bound, args, kwargs)
            try:
                violations = inst.tracer.check(inst, spec.span_type, "params", params)
            except SchemaValidationError:
                if fresh is not None:  # the call does not happen: nor does its instance
                    fresh.tracer.finish_instance(fresh, "failed")
                raise
            span = span_class(plan, inst, parent, parent is None, bound, (), _NO_KWARGS)
            span.params = params
            span.params_checked = True
            span.violations = violations
            return span
        for value in args:
            if type(value) not in ATOMIC:
                break
        else:
            if not kwargs:  # the shared empty mapping: the call's own dict is not kept alive
                return span_class(plan, inst, parent, parent is None, bound, args, _NO_KWARGS)
            if all(type(v) in ATOMIC for v in kwargs.values()):
                return span_class(plan, inst, parent, parent is None, bound, args, kwargs)
        # An argument could change after the call: capture now, check later.
        span = span_class(plan, inst, parent, parent is None, bound, (), _NO_KWARGS)
        span.params = plan.params_now(bound, args, kwargs)
        return span
    except DELIBERATE:
        raise
    except Exception as exc:
        if fresh is not None:  # opened for this call, which now runs untraced
            _abandon(fresh)
        contain(exc, "open a span", spec.span_type)
        return None


def _abandon(inst: InstanceState) -> None:
    """Finish an instance whose root span could not be opened (best effort)."""
    try:
        inst.tracer.finish_instance(inst, "failed")
    except Exception:  # contained by the caller's guard already; nothing more to do
        return
