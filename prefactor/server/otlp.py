"""OTLP ingest: ``POST /v1/traces`` turned into agent instances and spans of the store.

One trace is one agent instance. Its root span (no parent, or a parent in
another process) registers the instance, starts it at the root's start and
finishes it with the root's status; the agent comes from the root when it is
an agent span, else from the trace's first agent span, else from the
resource's ``service.name``. Every other span is created under its parent
(:mod:`prefactor.server.otlp_mapping` says which span type and payloads).
Ids are derived from the OTLP ids (:mod:`prefactor._otel.ids`), and every
write carries an idempotency key made of them, so a request a Collector
retries stores nothing twice.

Spans end children first, and a trace may arrive over many requests in any
order. The store needs a span's parent (and its instance) before the span,
so a span whose parent has not arrived waits here, in memory, until it does.
Waiting is bounded:

* a trace whose root has not arrived within ``orphan_timeout`` (a crashed
  run never sends its root) is stored anyway: its earliest waiting span
  stands in as the root and the instance stays ``active``; a root arriving
  later is stored as a top-level span and finishes the instance;
* a span whose parent never arrives is stored under the root after
  ``orphan_timeout``;
* past ``max_waiting`` waiting spans, the oldest traces are stored early
  the same way; a settled trace is remembered (for late spans) until it has
  been idle for ``orphan_timeout``, or while fewer than ``max_traces`` are.

Timeouts are checked on every request and when the server stops
(:meth:`OtlpIngest.flush`), so waiting spans are never lost on a clean stop.
With several servers, send every span of a trace to the same one (the
Collector's load-balancing exporter routes by trace id).

Tool schemas travel along: the tools a trace describes (``gen_ai.tool.definitions``,
OpenInference ``tool.parameters``) become the params schemas of their
``tool:<name>`` span types in the instance's schema version, so the store
flags the tool calls that break them.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from prefactor._config import DEFAULT_AGENT_ID
from prefactor._otel.ids import instance_pfid, span_pfid
from prefactor._records import iso_from_ns
from prefactor.server.otlp_decode import IngestSpan, OtlpDecodeError, decode_request, status_body
from prefactor.server.otlp_mapping import Agent, Mapped, ToolDefinition, map_span
from prefactor.server.otlp_write import write_items
from prefactor.server.store import Store

__all__ = ["DEFAULT_ORPHAN_TIMEOUT", "IngestResult", "OtlpIngest", "answer_export"]

DEFAULT_ORPHAN_TIMEOUT = 600.0
"""Seconds a span waits for its parent (or its trace's root) before it is stored without."""


@dataclass(frozen=True, slots=True)
class IngestResult:
    """What one request did: spans stored, waiting, and refused (with the first reason)."""

    stored: int
    waiting: int
    rejected: int
    reason: str = ""

    def response(self) -> ExportTraceServiceResponse:
        """The OTLP answer: ``partial_success`` when some spans were refused."""
        answer = ExportTraceServiceResponse()
        if self.rejected:
            answer.partial_success.rejected_spans = self.rejected
            answer.partial_success.error_message = self.reason
        return answer


@dataclass(slots=True)
class _Trace:
    """One trace on its way into the store."""

    trace_id: bytes
    touched: float
    waiting: dict[bytes, IngestSpan] = field(default_factory=dict)
    meanings: dict[bytes, Mapped] = field(default_factory=dict)  # of the waiting spans
    # OTLP span id -> our span id (None for an instance's own span: its children are top-level).
    stored: dict[bytes, str | None] = field(default_factory=dict)
    instance_id: str | None = None
    root_span: str | None = None
    finished: bool = False
    closed: bool = False  # the instance declares span types: others are flagged, not refused


@dataclass(slots=True)
class _Write:
    """The store items one request produced, kept apart by kind.

    Written instances first, then every span, then the finishes: the store
    then writes the request's spans in one run of creates (one statement),
    and every instance exists before its spans, every parent before its
    children (creates keep their order).
    """

    instances: list[dict[str, Any]] = field(default_factory=list)
    creates: list[dict[str, Any]] = field(default_factory=list)
    finishes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def items(self) -> list[dict[str, Any]]:
        return [*self.instances, *self.creates, *self.finishes]


def _key(trace: _Trace, suffix: str) -> str:
    return f"otlp-{trace.trace_id.hex()}{suffix}"


class OtlpIngest:
    """Assembles OTLP spans into the store's instances and spans; thread-safe.

    Args:
        store: where instances and spans are written (through its public methods).
        orphan_timeout: seconds a span waits for its parent or root.
        max_waiting: spans held waiting at most; past it, the oldest traces are stored early.
        max_traces: settled traces remembered for late spans.
        clock: monotonic seconds (tests pass a fake one).
    """

    def __init__(
        self,
        store: Store,
        *,
        orphan_timeout: float = DEFAULT_ORPHAN_TIMEOUT,
        max_waiting: int = 100_000,
        max_traces: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._timeout = orphan_timeout
        self._max_waiting = max_waiting
        self._max_traces = max_traces
        self._clock = clock
        self._lock = threading.Lock()
        self._traces: OrderedDict[bytes, _Trace] = OrderedDict()
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Spans received and not yet stored."""
        return self._waiting

    def ingest(self, spans: Iterable[IngestSpan]) -> IngestResult:
        """Store what can be stored of ``spans`` (and of traces that timed out meanwhile)."""
        with self._lock:
            now = self._clock()
            touched: dict[bytes, _Trace] = {}
            for span in spans:
                trace = self._traces.get(span.trace_id)
                if trace is None:
                    trace = self._traces[span.trace_id] = _Trace(span.trace_id, now)
                if span.span_id in trace.stored or span.span_id in trace.waiting:
                    continue  # a replay of a span already here
                trace.waiting[span.span_id] = span
                trace.meanings[span.span_id] = map_span(span)
                self._waiting += 1
                trace.touched = now
                self._traces.move_to_end(span.trace_id)
                touched[span.trace_id] = trace
            write = _Write()
            for trace in touched.values():
                self._settle(trace, write, force=False)
            self._expire(now, write)
            return self._apply(write)

    def flush(self) -> IngestResult:
        """Store every waiting span now, as if its wait had timed out (the server is stopping)."""
        with self._lock:
            write = _Write()
            for trace in list(self._traces.values()):
                if trace.waiting:
                    self._settle(trace, write, force=True)
            return self._apply(write)

    # --- assembly ---------------------------------------------------------------------------

    def _expire(self, now: float, write: _Write) -> None:
        """Store the waiting spans of traces past their wait; forget traces idle past it."""
        for trace in list(self._traces.values()):
            over = self._waiting > self._max_waiting
            if not over and now - trace.touched < self._timeout:
                break  # ordered by last touch: the rest are younger
            if trace.waiting:
                self._settle(trace, write, force=True)
                # Kept for another wait: its root (or a parent) may still come.
                trace.touched = now
                self._traces.move_to_end(trace.trace_id)
            else:
                del self._traces[trace.trace_id]
        while len(self._traces) > self._max_traces:
            oldest = next(iter(self._traces.values()))
            if oldest.waiting:
                self._settle(oldest, write, force=True)
            del self._traces[oldest.trace_id]

    def _settle(self, trace: _Trace, write: _Write, *, force: bool) -> None:
        """Queue the writes of every waiting span whose parent is known (``force``: all of them)."""
        if trace.instance_id is None:
            waiting = _by_start(trace.waiting.values())
            root = next((s for s in waiting if s.is_root), None)
            if root is None and force:
                # The earliest span whose parent is not waiting; in a cycle of parents, any.
                root = next((s for s in waiting if s.parent_id not in trace.waiting), waiting[0])
            if root is None:
                return
            self._register(trace, root, write, is_root=root.is_root)
        while trace.waiting:
            ready = [s for s in trace.waiting.values() if self._ready(trace, s, force=force)]
            if not ready:
                if not force:
                    return
                # Forced, and every waiting span waits for another: a cycle of parents.
                # Break it at its earliest span, which goes under the root.
                ready = _by_start(trace.waiting.values())[:1]
            for span in _by_start(ready):
                meaning = trace.meanings[span.span_id]
                if meaning.kind == "instance":  # an instance's own span, after a stand-in root
                    trace.stored[span.span_id] = None
                    self._done(trace, span)
                else:
                    parent: str | None = None
                    if not span.is_root:
                        parent = trace.stored.get(span.parent_id or b"", trace.root_span)
                    self._span(trace, span, meaning, parent, write)
                if span.is_root and not trace.finished:
                    self._finish(trace, span, write, status=meaning.status)

    @staticmethod
    def _ready(trace: _Trace, span: IngestSpan, *, force: bool) -> bool:
        """Whether ``span`` can be written now: its parent is stored (or, forced, not coming)."""
        if span.is_root or span.parent_id in trace.stored:
            return True
        return force and span.parent_id not in trace.waiting

    def _done(self, trace: _Trace, span: IngestSpan) -> None:
        """``span`` no longer waits."""
        if trace.waiting.pop(span.span_id, None) is not None:
            del trace.meanings[span.span_id]
            self._waiting -= 1

    def _register(self, trace: _Trace, root: IngestSpan, write: _Write, *, is_root: bool) -> None:
        mapped = trace.meanings[root.span_id]
        waiting = [trace.meanings[s.span_id] for s in _by_start(trace.waiting.values())]
        agent = mapped.agent if mapped.kind in ("agent", "instance") else None
        if agent is None:
            agent = next((m.agent for m in waiting if m.kind == "agent" and m.agent), None)
        if agent is None:
            service = root.service_name
            agent = Agent(service or DEFAULT_AGENT_ID, service or "agent", None)
        instance_id = mapped.instance_id or instance_pfid(trace.trace_id, root.start_ns)
        trace.instance_id = instance_id
        register: dict[str, Any] = {
            "_type": "agent_instances/register",
            "idempotency_key": _key(trace, "-r"),
            "id": instance_id,
            "agent_id": agent.agent_id,
            "agent_version": {
                "name": agent.name,
                "external_identifier": agent.version or "unversioned",
            },
            "update_current_version": False,
        }
        schema_version = _schema_version(waiting)
        if schema_version is not None:
            register["agent_schema_version"] = schema_version
            trace.closed = True
        write.instances.append(register)
        write.instances.append(
            {
                "_type": "agent_instances/start",
                "idempotency_key": _key(trace, "-s"),
                "agent_instance_id": instance_id,
                "timestamp": iso_from_ns(root.start_ns),
            }
        )
        if mapped.kind == "instance":
            trace.stored[root.span_id] = None
            self._done(trace, root)
            self._finish(trace, root, write, status=mapped.status)
            return
        self._span(trace, root, mapped, None, write)
        trace.root_span = trace.stored[root.span_id]
        if is_root:
            self._finish(trace, root, write, status=mapped.status)

    def _span(
        self, trace: _Trace, span: IngestSpan, mapped: Mapped, parent: str | None, write: _Write
    ) -> None:
        assert trace.instance_id is not None
        span_id = mapped.span_id or span_pfid(trace.trace_id, span.span_id, span.start_ns)
        details: dict[str, Any] = {
            "id": span_id,
            "agent_instance_id": trace.instance_id,
            "schema_name": mapped.span_type,
            "status": mapped.status,
            "payload": mapped.params,
            "parent_span_id": parent,
            "started_at": iso_from_ns(span.start_ns),
            "finished_at": iso_from_ns(span.end_ns),
        }
        if mapped.result is not None:
            details["result_payload"] = mapped.result
        if mapped.violations:
            details["schema_violations"] = mapped.violations
        elif trace.closed:
            # Declaring (no) violations asks the store to store and flag what breaks the
            # instance's schemas rather than refuse it, on stores that still refuse.
            details["schema_violations"] = []
        write.creates.append(
            {
                "_type": "agent_spans/create",
                "idempotency_key": _key(trace, span.span_id.hex()),
                "details": details,
            }
        )
        trace.stored[span.span_id] = span_id
        self._done(trace, span)

    def _finish(self, trace: _Trace, root: IngestSpan, write: _Write, *, status: str) -> None:
        trace.finished = True
        write.finishes.append(
            {
                "_type": "agent_instances/finish",
                "idempotency_key": _key(trace, "-f"),
                "agent_instance_id": trace.instance_id,
                "status": status if status in ("complete", "failed", "cancelled") else "complete",
                "timestamp": iso_from_ns(root.end_ns),
            }
        )

    # --- writing ----------------------------------------------------------------------------

    def _apply(self, write: _Write) -> IngestResult:
        rejected, reason = write_items(self._store, write.items)
        return IngestResult(len(write.creates) - rejected, self._waiting, rejected, reason)


def _by_start(spans: Iterable[IngestSpan]) -> list[IngestSpan]:
    return sorted(spans, key=lambda s: (s.start_ns, s.span_id))


def _schema_version(mapped: list[Mapped]) -> dict[str, Any] | None:
    """A schema version declaring the trace's tools (with their argument schemas) and its types.

    ``None`` (an open version: nothing checked) when the trace describes no tool.
    """
    tools: dict[str, ToolDefinition] = {}
    for entry in mapped:
        for tool in entry.tools:
            if tool.parameters is not None:
                tools.setdefault(f"tool:{tool.name}", tool)
    if not tools:
        return None
    types = [
        {
            "name": name,
            "params_schema": tool.parameters,
            "title": f"Tool: {tool.name}",
            **({"description": tool.description} if tool.description else {}),
        }
        for name, tool in sorted(tools.items())
    ]
    for name in sorted({m.span_type for m in mapped if m.kind != "instance"} - set(tools)):
        types.append({"name": name, "params_schema": {"type": "object"}})
    return {"span_type_schemas": types}


def answer_export(
    ingest: OtlpIngest, body: bytes, *, content_type: str, content_encoding: str, max_bytes: int
) -> tuple[int, bytes, str]:
    """Handle one ``POST /v1/traces`` body: ``(HTTP status, response body, media type)``.

    Success is 200 with an ``ExportTraceServiceResponse`` in the request's
    encoding; a body that cannot be read is 400 (413, 415) with a ``Status``.
    """
    is_json = content_type.split(";", maxsplit=1)[0].strip().lower() == "application/json"
    media = "application/json" if is_json else "application/x-protobuf"
    try:
        decoded, is_json = decode_request(
            body, content_type=content_type, content_encoding=content_encoding, max_bytes=max_bytes
        )
    except OtlpDecodeError as exc:
        return exc.status, status_body(str(exc), json=is_json), media
    result = ingest.ingest(decoded.spans)
    if decoded.rejected:
        result = IngestResult(
            result.stored,
            result.waiting,
            result.rejected + decoded.rejected,
            result.reason or decoded.reason,
        )
    response = result.response()
    if is_json:
        return 200, orjson.dumps(json_format.MessageToDict(response)), media
    return 200, response.SerializeToString(), media
