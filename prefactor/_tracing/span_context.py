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
from prefactor._records import CreateSpan, FinishSpan, FinishStatus, Violation
from prefactor._schemas.registry import Side
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.guard import DELIBERATE, contain
from prefactor._tracing.state import (
    Deferred,
    InstanceState,
    SpanState,
    emit_finish,
    emit_pending,
    error_result,
)

__all__ = ["SpanContext", "to_ns"]

logger = logging.getLogger("prefactor.tracing")


def to_ns(value: datetime | None) -> int:
    """Epoch nanoseconds of ``value``, or now (a naive datetime counts as UTC)."""
    if value is None:
        return time.time_ns()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


class _Uncaptured(Deferred):
    """One side of an explicit span kept as a shallow copy: captured in the exporter's thread."""

    __slots__ = ()

    def payload(self) -> Any:
        data = self.data
        return data if data is None else self.inst.tracer.capturer.capture_mapping(data)


class _ExplicitState(SpanState):
    """The state of a :class:`SpanContext`, whose lenient payloads are snapshots.

    In lenient mode ``params`` and the result are kept as snapshots and
    captured and checked only when the record is exported: the caller pays
    for a copy of a flat dict and no extra object. Each side's mode says what
    its value is: ``None`` a finished payload (strict mode, or a failure's
    result), ``False`` a copy still to capture (:class:`_Uncaptured`),
    ``True`` a capture still to check (:class:`Deferred`).
    """

    __slots__ = ("params_mode", "result_mode")

    def __init__(self, instance: InstanceState, span_type: str, owner: SpanContext) -> None:
        # SpanState's fields set here rather than through its __init__: one frame less.
        now = time.time_ns()
        self._id = None
        self.seq = next(SEQUENCE.counter)  # the id, encoded when first read (see SpanState)
        self.id_ns = now
        self.instance = instance
        self.instance_id = instance.id
        self.span_type = span_type
        self.owner = owner
        self.started = now
        self.params = None
        self.violations = ()
        self.parent = None
        # Pending until started: a child opening under it starts it (see emit_pending).
        self.pending = {"create": True}
        self.params_mode: bool | None = None
        self.result_mode: bool | None = None

    def create_params(self) -> Any:
        return self._side("params", self.params, self.params_mode)

    def payload_of(self, result: Any) -> Any:
        return self._side("result", result, self.result_mode)

    def _side(self, side: Side, data: Any, mode: bool | None) -> Any:
        if mode is None:
            return data
        deferred = Deferred if mode else _Uncaptured
        return deferred(self.instance, self.span_type, side, data)


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
        state = self.span_state
        data = payload if payload is not None else self._default_payload
        params: Any = None
        violations: tuple[Violation, ...] = ()
        if inst.terminated:
            raise PrefactorTerminatedError(inst.termination_reason)
        try:
            parent = self._parent_state
            if parent is not None and parent.pending:
                emit_pending(parent)
            tracer = inst.tracer
            if tracer.strict:  # checked here, so that a violation raises into the caller
                params = tracer.capturer.capture_mapping(data) if data is not None else {}
                violations = tracer.check(inst, self._schema_name, "params", params)
            else:  # a snapshot, captured and checked when exported
                params, state.params_mode = tracer.capturer.snapshot_mapping(
                    data if data is not None else {}
                )
        except DELIBERATE:
            raise
        except Exception as exc:  # start it all the same, without its params
            contain(exc, "start a span", self._schema_name)
        self._state = "started"
        state.hold(
            time.time_ns() if started_at is None else to_ns(started_at),
            params,
            violations,
            self._parent_state if self._parent_state is not None else self._parent,
        )

    def start_for_child(self) -> None:
        """Start the span now if it has not started: a child span is opening under it."""
        if self._state == "prepared":
            self.start_now()

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
        captured: Any = None
        violations: tuple[Violation, ...] = ()
        try:
            tracer = self._instance.tracer
            if status == "complete" and not tracer.strict:  # a snapshot, as the params
                if gathered:
                    captured, self.span_state.result_mode = tracer.capturer.snapshot_mapping(
                        gathered
                    )
                else:
                    captured, self.span_state.result_mode = None, True
            else:
                captured = tracer.capturer.capture_mapping(gathered) if gathered else None
                if status == "complete":  # strict: checked here, so that a violation raises
                    violations = tracer.check(
                        self._instance, self._schema_name, "result", captured or {}
                    )
        except DELIBERATE:
            raise
        except Exception as exc:  # finish it all the same, without its result
            contain(exc, "finish a span", self._schema_name)
            captured, self.span_state.result_mode = None, None
        self._end(status, captured, violations, timestamp)

    def _end(
        self,
        status: FinishStatus,
        result: Any,
        violations: tuple[Violation, ...] = (),
        timestamp: datetime | None = None,
    ) -> None:
        """Send the span's end with a result that is final (or deferred by ``result_mode``)."""
        self._state = "finished"
        state = self.span_state
        # Break the cycle with the state (owner), so refcounting frees a finished span:
        # left to the cyclic collector, spans would outlive their export and be scanned.
        state.owner = None
        try:
            emit_finish(state, status, result, violations, to_ns(timestamp) if timestamp else None)
        except Exception as exc:
            contain(exc, "finish a span", self._schema_name)

    def _cancel_unstarted(self, timestamp: datetime | None) -> None:
        """The only way a span that never started ends: created pending, then cancelled."""
        inst = self._instance
        tracer = inst.tracer
        parent = self._parent_state
        self._state = "finished"
        self.span_state.owner = None  # see _end
        try:
            if parent is not None and parent.pending:
                emit_pending(parent)
            data = self._default_payload
            captured = tracer.capturer.capture_mapping(data) if data is not None else {}
            now = to_ns(timestamp)
            tracer.emit(
                CreateSpan(
                    span_id=self.id,
                    instance_id=inst.id,
                    schema_name=self._schema_name,
                    status="pending",
                    started_at_ns=now,
                    payload=captured,
                    parent_span_id=SpanState.parent_of(
                        parent if parent is not None else self._parent
                    ),
                )
            )
            tracer.emit(FinishSpan(self.id, inst.id, "cancelled", now))
        except Exception as exc:
            contain(exc, "cancel a span", self._schema_name)

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
            elif isinstance(exc, Exception):
                self._fail(exc)
            else:  # CancelledError, KeyboardInterrupt, SystemExit, GeneratorExit
                self.finish_now("cancelled")
        except DELIBERATE:
            # Raised on purpose, but only into a block that ended well; the block's own
            # exception, if it has one, is what the caller sees.
            if exc is None:
                raise
        finally:
            if self._token is not None:
                CURRENT_SPAN.reset(self._token)
                self._token = None

    def _fail(self, exc: Exception) -> None:
        """Finish ``failed`` with ``exc``'s error record (never checked against the schema)."""
        if self._state == "prepared":
            self.start_now()
        try:
            payload = error_result(self._instance.tracer.capturer, exc)
        except Exception as err:  # a capturer that raises: finish without the record
            payload = None
            contain(err, "record a span's error", self._schema_name)
        self.span_state.result_mode = None
        self._end("failed", payload)
