"""``SpanContext``: the explicit span lifecycle of the prefactor-core API.

A span is prepared when made (its PFID is known at once, so ``span.id`` is
final before ``start``), started with its params, and finished with its
result. Every step only queues work: like a ``@traced`` span, a started span
sends its create when it finishes, as one record in its final state, unless a
child starts first and sends it early (children never reach the server before
their parent). Leaving the ``async with`` block starts and finishes whatever
the user did not: an exception escaping the block finishes the span
``failed`` with the error's type and message and then propagates unchanged; a
cancelled task finishes it ``cancelled``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from prefactor._errors import PrefactorTerminatedError
from prefactor._ids import SEQUENCE
from prefactor._records import CreateSpan, FinishSpan, FinishStatus, Lazy, Violation
from prefactor._schemas.registry import Side
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.state import InstanceState, SpanState, emit_finish, emit_pending

__all__ = ["SpanContext", "error_result", "to_ns"]

logger = logging.getLogger("prefactor.tracing")


def to_ns(value: datetime | None) -> int:
    """Epoch nanoseconds of ``value``, or now (a naive datetime counts as UTC)."""
    if value is None:
        return time.time_ns()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


class _Deferred(Lazy):
    """One side of an explicit span, captured and checked in the exporter's thread.

    Lenient mode only: ``data`` is a snapshot already (see
    :meth:`~prefactor._tracing.capture.Capturer.snapshot_mapping`), either a
    copy still to capture or a finished capture. ``None`` is no payload, and
    is checked as ``{}``.
    """

    __slots__ = ("captured", "data", "inst", "side", "span_type")

    def __init__(
        self,
        inst: InstanceState,
        span_type: str,
        side: Side,
        data: dict[str, Any] | None,
        captured: bool,
    ) -> None:
        self.inst = inst
        self.span_type = span_type
        self.side = side
        self.data = data
        self.captured = captured

    def resolve(self) -> tuple[Any, tuple[Violation, ...]]:
        tracer = self.inst.tracer
        data = self.data
        payload = data if data is None or self.captured else tracer.capturer.capture_mapping(data)
        checked = payload if payload is not None else {}
        return payload, tracer.check(self.inst, self.span_type, self.side, checked)


class _ExplicitState(SpanState):
    """The state of a :class:`SpanContext`, whose lenient payloads are snapshots.

    In lenient mode ``params`` and the result are kept as snapshots and
    captured and checked only when the record is exported: the caller pays
    for a copy of a flat dict and no extra object. Each side's mode says what
    its value is: ``None`` a finished payload (strict mode, or a failure's
    result), ``False`` a copy still to capture, ``True`` a capture still to
    check.
    """

    __slots__ = ("params_mode", "result_mode")

    def __init__(self, instance: InstanceState, span_type: str, owner: SpanContext) -> None:
        # SpanState's fields set here rather than through its __init__: one frame less.
        now = time.time_ns()
        self._id = None
        self.seq = next(SEQUENCE.counter)  # the id, encoded when first read (see SpanState)
        self.id_ns = now
        self.instance = instance
        self.span_type = span_type
        self.owner = owner
        self.started = now
        self.params = None
        self.violations = ()
        self.parent = None
        self.pending = None
        self.params_mode: bool | None = None
        self.result_mode: bool | None = None

    def create_params(self) -> Any:
        mode = self.params_mode
        if mode is None:
            return self.params
        return _Deferred(self.instance, self.span_type, "params", self.params, mode)

    def payload_of(self, result: Any) -> Any:
        mode = self.result_mode
        if mode is None:
            return result
        return _Deferred(self.instance, self.span_type, "result", result, mode)


def error_result(exc: BaseException) -> dict[str, Any]:
    """The result recorded for a span that failed with ``exc``."""
    return {"error": {"type": type(exc).__name__, "message": str(exc)}}


_State = Literal["prepared", "started", "finished"]


class SpanContext:
    """One span of an agent instance, driven explicitly; an async context manager.

    Made by ``instance.span(...)`` or ``client.span(...)``. ``start``,
    ``complete``, ``fail``, ``cancel`` and ``finish`` are coroutines for
    compatibility with prefactor-core, but none of them waits for I/O.
    """

    __slots__ = (
        "_default_payload",
        "_instance",
        "_parent",
        "_parent_state",
        "_result",
        "_schema_name",
        "_state",
        "_status",
        "_token",
        "span_state",
    )

    def __init__(
        self,
        instance: InstanceState,
        schema_name: str,
        *,
        parent_span_id: str | None = None,
        payload: Mapping[str, Any] | None = None,
    ) -> None:
        self._instance = instance
        self._schema_name = schema_name
        self._parent = parent_span_id
        self._parent_state: SpanState | None = None
        self._default_payload = payload
        # What set_result() gathered; None until it is called (most spans never do).
        self._result: dict[str, Any] | None = None
        self._status: FinishStatus = "complete"
        self._state: _State = "prepared"
        self._token: Any = None
        self.span_state = _ExplicitState(instance, schema_name, self)

    @property
    def id(self) -> str:
        """The span's id: a PFID, final from the moment the span is prepared."""
        return self.span_state.id

    @property
    def schema_name(self) -> str:
        """The span type, e.g. ``"agent:llm"``."""
        return self._schema_name

    @property
    def status(self) -> str:
        """``prepared``, ``started`` or ``finished``."""
        return self._state

    def __repr__(self) -> str:
        return f"<SpanContext {self.id} {self._schema_name} {self._state}>"

    # --- lifecycle ------------------------------------------------------------------------

    def start_now(
        self, payload: Mapping[str, Any] | None = None, started_at: datetime | None = None
    ) -> None:
        """Synchronous :meth:`start`."""
        if self._state != "prepared":
            return
        inst = self._instance
        if inst.terminated:
            raise PrefactorTerminatedError(inst.termination_reason)
        parent = self._parent_state
        if parent is not None:
            owner = parent.owner
            if isinstance(owner, SpanContext) and owner._state == "prepared":
                owner.start_now()
            if parent.pending:
                emit_pending(parent)
        tracer = inst.tracer
        data = payload if payload is not None else self._default_payload
        params: Any
        violations: tuple[Violation, ...] = ()
        if tracer.strict:  # checked here, so that a violation raises into the caller
            params = tracer.capturer.capture_mapping(data) if data is not None else {}
            violations = tracer.check(inst, self._schema_name, "params", params)
        else:  # a snapshot, captured and checked when exported
            params, self.span_state.params_mode = tracer.capturer.snapshot_mapping(
                data if data is not None else {}
            )
        self._state = "started"
        self.span_state.hold(
            time.time_ns() if started_at is None else to_ns(started_at),
            params,
            violations,
            parent if parent is not None else self._parent,
        )

    def finish_now(
        self,
        status: FinishStatus | None = None,
        result: Mapping[str, Any] | None = None,
        timestamp: datetime | None = None,
    ) -> None:
        """Synchronous :meth:`finish` with an explicit status and result."""
        if self._state == "finished":
            return
        status = status or self._status
        tracer = self._instance.tracer
        gathered: Mapping[str, Any] | None = self._result
        if self._result is not None and result is not None:
            self._result.update(result)
        elif result is not None:
            gathered = result  # captured below: a snapshot, never kept as is
        if self._state == "prepared":
            if status == "cancelled":
                self._cancel_unstarted(timestamp)
                return
            self.start_now()
        violations: tuple[Violation, ...] = ()
        captured: Any
        if status == "complete" and not tracer.strict:  # a snapshot, as the params
            if gathered:
                captured, self.span_state.result_mode = tracer.capturer.snapshot_mapping(gathered)
            else:
                captured, self.span_state.result_mode = None, True
        else:
            captured = tracer.capturer.capture_mapping(gathered) if gathered else None
            if status == "complete":  # strict: checked here, so that a violation raises
                violations = tracer.check(
                    self._instance, self._schema_name, "result", captured or {}
                )
        self._state = "finished"
        state = self.span_state
        # Break the cycle with the state (owner), so refcounting frees a finished span:
        # left to the cyclic collector, spans would outlive their export and be scanned.
        state.owner = None
        emit_finish(state, status, captured, violations, to_ns(timestamp) if timestamp else None)

    def _cancel_unstarted(self, timestamp: datetime | None) -> None:
        """The only way a span that never started ends: created pending, then cancelled."""
        inst = self._instance
        tracer = inst.tracer
        parent = self._parent_state
        if parent is not None and parent.pending:
            emit_pending(parent)
        data = self._default_payload
        captured = tracer.capturer.capture_mapping(data) if data is not None else {}
        now = to_ns(timestamp)
        self._state = "finished"
        self.span_state.owner = None  # see finish_now
        tracer.emit(
            CreateSpan(
                span_id=self.id,
                instance_id=inst.id,
                schema_name=self._schema_name,
                status="pending",
                started_at_ns=now,
                payload=captured,
                parent_span_id=SpanState.parent_of(parent if parent is not None else self._parent),
            )
        )
        tracer.emit(FinishSpan(self.id, inst.id, "cancelled", now))

    async def start(
        self, payload: Mapping[str, Any] | None = None, started_at: datetime | None = None
    ) -> None:
        """Start the span (``active``) with its params; a second call is ignored.

        Raises:
            PrefactorTerminatedError: the platform terminated the instance.
            SchemaValidationError: strict mode, and the params break the schema.
        """
        self.start_now(payload, started_at)

    def set_result(self, data: Mapping[str, Any]) -> None:
        """Merge ``data`` into the result the span will finish with."""
        if self._result is None:
            self._result = {}
        self._result.update(data)

    async def complete(
        self, result: Mapping[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span ``complete`` (starting it first if needed)."""
        self.finish_now("complete", result, timestamp)

    async def fail(
        self, result: Mapping[str, Any] | None = None, timestamp: datetime | None = None
    ) -> None:
        """Finish the span ``failed``; the result is not checked against the schema."""
        self.finish_now("failed", result, timestamp)

    async def cancel(self, timestamp: datetime | None = None) -> None:
        """Finish the span ``cancelled``; before ``start`` it is sent ``pending`` then cancelled."""
        self.finish_now("cancelled", None, timestamp)

    async def finish(self) -> None:
        """Finish with the current status (``complete`` unless set); idempotent."""
        self.finish_now()

    # --- async with -----------------------------------------------------------------------

    async def __aenter__(self) -> SpanContext:
        inst = self._instance
        if inst.terminated:
            raise PrefactorTerminatedError(inst.termination_reason)
        if self._parent is None:
            current = CURRENT_SPAN.get()
            if current is not None and current.instance is inst:
                self._parent_state = current
        self._token = CURRENT_SPAN.set(self.span_state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._state == "finished" and self._token is not None:  # exit(), its common case
            CURRENT_SPAN.reset(self._token)
            self._token = None
            return
        self.exit(exc)

    def exit(self, exc: BaseException | None) -> None:
        """Finish what the block left open; never replace the user's exception."""
        try:
            if self._state == "finished":
                return
            if exc is None:
                self.finish_now()
                return
            try:
                if isinstance(exc, Exception):
                    self.finish_now("failed", error_result(exc))
                else:  # CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit
                    self.finish_now("cancelled")
            except Exception:
                logger.exception("could not finish span %s after %r", self.id, type(exc))
        finally:
            if self._token is not None:
                CURRENT_SPAN.reset(self._token)
                self._token = None
