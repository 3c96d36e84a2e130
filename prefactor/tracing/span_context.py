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

from prefactor.errors import PrefactorTerminatedError
from prefactor.export.records import CreateSpan, FinishSpan, FinishStatus, Violation
from prefactor.ids import generate_pfid
from prefactor.tracing.context import CURRENT_SPAN
from prefactor.tracing.state import InstanceState, SpanState, emit_finish, emit_pending

__all__ = ["SpanContext", "error_result", "to_ns"]

logger = logging.getLogger("prefactor.tracing")


def to_ns(value: datetime | None) -> int:
    """Epoch nanoseconds of ``value``, or now (a naive datetime counts as UTC)."""
    if value is None:
        return time.time_ns()
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp() * 1_000_000) * 1000


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
        self._result: dict[str, Any] = {}
        self._status: FinishStatus = "complete"
        self._state: _State = "prepared"
        self._token: Any = None
        self.span_state = SpanState(generate_pfid(instance.partition), instance, schema_name, self)

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
        captured = tracer.capturer.capture_mapping(data) if data is not None else {}
        violations = tracer.check(inst, self._schema_name, "params", captured)
        self._state = "started"
        self.span_state.hold(to_ns(started_at), captured, violations, self._parent)

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
        if result is not None:
            self._result.update(result)
        if self._state == "prepared":
            if status == "cancelled":
                self._cancel_unstarted(timestamp)
                return
            self.start_now()
        captured = tracer.capturer.capture_mapping(self._result) if self._result else None
        violations: tuple[Violation, ...] = ()
        if status == "complete":
            violations = tracer.check(self._instance, self._schema_name, "result", captured or {})
        self._state = "finished"
        emit_finish(self.span_state, status, captured, violations, to_ns(timestamp))

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
        tracer.emit(
            CreateSpan(
                span_id=self.id,
                instance_id=inst.id,
                schema_name=self._schema_name,
                status="pending",
                started_at_ns=now,
                payload=captured,
                parent_span_id=self._parent,
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
                self._parent = current.id
                self._parent_state = current
        self._token = CURRENT_SPAN.set(self.span_state)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
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
