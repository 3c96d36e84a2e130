"""Our records as OpenTelemetry spans: which span each record becomes, and its attributes.

The sink feeds the wire items of one instance's records (``to_bulk_item()``,
the form every record type shares) to that instance's :class:`InstanceTrack`,
which answers with the spans that are complete. An OTLP span is sent once,
ended, so a span created ``active`` waits in the track until its finish; a
span created in its final state is complete at once.

The mapping (GenAI semantic conventions v1.41.0, see
:mod:`prefactor._otel.semconv`):

* an instance and its root ``agent:<name>`` span are one span, ``invoke_agent
  {gen_ai.agent.name}``, whose span id is derived from the instance id. The
  root is the instance's first top-level span when its type is ``agent:``;
  an instance without one (the explicit core API) gets a span of its own,
  without ``prefactor.span.type``, sent when the instance finishes, and its
  top-level spans are its children;
* ``tool:<name>`` spans are ``execute_tool {gen_ai.tool.name}`` with the
  tool's name, description and type, and params/result as
  ``gen_ai.tool.call.arguments`` / ``.result``;
* nested ``agent:<name>`` spans are ``invoke_agent <name>``; any other span
  is named by its span type, with params/result as ``prefactor.params`` /
  ``prefactor.result``;
* every span carries ``prefactor.span.type``, ``prefactor.span.id``,
  ``prefactor.span.status``, ``prefactor.instance.id``, the instance's
  ``prefactor.schema_version`` and its ``prefactor.schema_violations``;
* ``failed`` and ``cancelled`` spans end with status ERROR, its message the
  error's, and ``error.type`` the exception's type name (``_OTHER`` when the
  result holds none).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

import orjson

from prefactor._otel import semconv as sc
from prefactor._otel.ids import span_id_for, trace_id_for

__all__ = ["AttributeValue", "InstanceTrack", "OtelSpan", "ns_from_iso"]

AttributeValue: TypeAlias = "str | bool | int | float | list[str]"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_TERMINAL = frozenset({"complete", "failed", "cancelled"})


def ns_from_iso(text: str) -> int:
    """Epoch nanoseconds of an ISO-8601 timestamp (naive means UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _json(value: Any) -> str:
    # Payloads are captured JSON-safe; anything else is written as text rather than lost.
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


@dataclass(slots=True)
class OtelSpan:
    """One ended span, ready to encode: ids, name, times, attributes, status."""

    trace_id: bytes
    span_id: bytes
    parent_span_id: bytes | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: bool = False
    status_message: str = ""


@dataclass(slots=True)
class _Agent:
    """What the register record says about the instance's agent."""

    name: str = "agent"
    agent_id: str | None = None
    version: str | None = None
    schema_version: str | None = None
    tool_descriptions: dict[str, str] = field(default_factory=dict)
    tool_definitions: str | None = None


def _agent_from(item: Mapping[str, Any]) -> _Agent:
    version = item.get("agent_version") or {}
    schemas = item.get("agent_schema_version") or {}
    descriptions: dict[str, str] = {}
    definitions: list[dict[str, Any]] = []
    for entry in schemas.get("span_type_schemas") or []:
        name = entry.get("name", "")
        if not name.startswith("tool:"):
            continue
        if entry.get("description"):
            descriptions[name] = entry["description"]
        definitions.append(
            {
                "type": "function",
                "name": name[len("tool:") :],
                "description": entry.get("description"),
                "parameters": entry.get("params_schema"),
            }
        )
    return _Agent(
        name=str(version.get("name") or item.get("agent_id") or "agent"),
        agent_id=item.get("agent_id"),
        version=version.get("external_identifier"),
        schema_version=schemas.get("external_identifier"),
        tool_descriptions=descriptions,
        tool_definitions=_json(definitions) if definitions else None,
    )


@dataclass(slots=True)
class InstanceTrack:
    """One instance's progress through its records; :meth:`feed` answers completed spans.

    The sink works on a :meth:`copy` and keeps it only once the spans it
    answered were delivered, so a batch retried after a failure is fed to the
    same state again and answers the same spans.

    Args:
        instance_id: the instance.
        payloads: put params and results on the spans.
    """

    instance_id: str
    payloads: bool = True
    agent: _Agent = field(default_factory=_Agent)
    started_ns: int | None = None
    root: str | None = None
    top_seen: bool = False
    finished: bool = False
    open: dict[str, dict[str, Any]] = field(default_factory=dict)
    trace_id: bytes = b""

    def __post_init__(self) -> None:
        if not self.trace_id:
            self.trace_id = trace_id_for(self.instance_id)

    def copy(self) -> InstanceTrack:
        """A copy whose open spans can change without touching this track."""
        return dataclasses.replace(self, open=dict(self.open))

    def feed(self, item: Mapping[str, Any]) -> list[OtelSpan]:
        """Apply one wire item; the spans it completes (none, one, or the instance's own)."""
        kind = item.get("_type")
        if kind == "agent_spans/create":
            details = item["details"]
            return self._create(details)
        if kind == "agent_spans/finish":
            details = self.open.pop(item["agent_span_id"], None)
            if details is None:
                return []  # its create never came here (dropped, or sent by another process)
            merged = {
                **details,
                "status": item.get("status") or "complete",
                "finished_at": item.get("timestamp"),
            }
            if "result_payload" in item:
                merged["result_payload"] = item["result_payload"]
            if item.get("schema_violations"):
                merged["schema_violations"] = [
                    *(details.get("schema_violations") or []),
                    *item["schema_violations"],
                ]
            return [self._span(merged)]
        if kind == "agent_instances/register":
            self.agent = _agent_from(item)
        elif kind == "agent_instances/start":
            self.started_ns = _time(item.get("timestamp"))
        elif kind == "agent_instances/finish":
            self.finished = True
            if self.root is None:
                return [self._instance_span(item)]
        return []

    # --- spans --------------------------------------------------------------------------------

    def _create(self, details: Mapping[str, Any]) -> list[OtelSpan]:
        if details.get("parent_span_id") is None:
            if not self.top_seen and str(details.get("schema_name", "")).startswith("agent:"):
                self.root = details["id"]
            self.top_seen = True
        if details.get("status") in _TERMINAL:
            return [self._span(details)]
        self.open[details["id"]] = dict(details)
        return []

    def _otel_id(self, span_id: str | None) -> bytes | None:
        if span_id is None:
            return None
        return span_id_for(self.instance_id if span_id == self.root else span_id)

    def _span(self, details: Mapping[str, Any]) -> OtelSpan:
        span_id: str = details["id"]
        span_type = str(details.get("schema_name", "span"))
        status = str(details.get("status", "complete"))
        is_root = span_id == self.root
        parent = details.get("parent_span_id")
        if parent is None and not is_root:
            parent = self.root or self.instance_id  # under the instance's span
        attrs = self._common(span_type, status)
        attrs[sc.PF_SPAN_ID] = span_id
        violations = details.get("schema_violations")
        if violations:
            attrs[sc.PF_SCHEMA_VIOLATIONS] = _json(violations)
        params, result = details.get("payload"), details.get("result_payload")
        if span_type.startswith("tool:"):
            name = span_type[len("tool:") :]
            title = f"execute_tool {name}"
            attrs[sc.OPERATION] = "execute_tool"
            attrs[sc.TOOL_NAME] = name
            attrs[sc.TOOL_TYPE] = "function"
            description = self.agent.tool_descriptions.get(span_type)
            if description:
                attrs[sc.TOOL_DESCRIPTION] = description
            keys = (sc.TOOL_CALL_ARGUMENTS, sc.TOOL_CALL_RESULT)
        elif span_type.startswith("agent:"):
            name = self.agent.name if is_root else span_type[len("agent:") :]
            title = f"invoke_agent {name}"
            if is_root:
                self._agent_attributes(attrs)
            else:
                attrs[sc.OPERATION] = "invoke_agent"
                attrs[sc.AGENT_NAME] = name
            keys = (sc.PF_PARAMS, sc.PF_RESULT)
        else:
            title = span_type
            keys = (sc.PF_PARAMS, sc.PF_RESULT)
        if self.payloads:
            if params is not None:
                attrs[keys[0]] = _json(params)
            if result is not None:
                attrs[keys[1]] = _json(result)
        start = _time(details.get("started_at")) or self.started_ns or 0
        end = _time(details.get("finished_at")) or start
        span = OtelSpan(
            self.trace_id,
            self._otel_id(span_id) or b"",
            self._otel_id(parent),
            title,
            start,
            max(end, start),
            attrs,
        )
        if status != "complete":
            _fail(span, status, result)
        return span

    def _instance_span(self, item: Mapping[str, Any]) -> OtelSpan:
        """The instance's own span, for an instance without a root ``agent:`` span."""
        attrs = self._common(None, str(item.get("status") or "complete"))
        self._agent_attributes(attrs)
        end = _time(item.get("timestamp")) or 0
        start = self.started_ns if self.started_ns is not None else end
        span = OtelSpan(
            self.trace_id,
            span_id_for(self.instance_id),
            None,
            f"invoke_agent {self.agent.name}",
            start,
            max(end, start),
            attrs,
        )
        if item.get("status") not in (None, "complete"):
            _fail(span, str(item["status"]), None)
        return span

    def _common(self, span_type: str | None, status: str) -> dict[str, AttributeValue]:
        attrs: dict[str, AttributeValue] = {sc.PF_INSTANCE_ID: self.instance_id}
        if span_type is not None:
            attrs[sc.PF_SPAN_TYPE] = span_type
        attrs[sc.PF_SPAN_STATUS] = status
        if self.agent.schema_version:
            attrs[sc.PF_SCHEMA_VERSION] = self.agent.schema_version
        return attrs

    def _agent_attributes(self, attrs: dict[str, AttributeValue]) -> None:
        agent = self.agent
        attrs[sc.OPERATION] = "invoke_agent"
        attrs[sc.AGENT_NAME] = agent.name
        if agent.agent_id:
            attrs[sc.AGENT_ID] = agent.agent_id
        if agent.version:
            attrs[sc.AGENT_VERSION] = agent.version
        if agent.tool_definitions is not None:
            attrs[sc.TOOL_DEFINITIONS] = agent.tool_definitions


def _time(text: Any) -> int | None:
    return ns_from_iso(text) if isinstance(text, str) else None


def _fail(span: OtelSpan, status: str, result: Any) -> None:
    """Mark ``span`` as ended in error: ERROR status, ``error.type`` and the error's message."""
    error = result.get("error") if isinstance(result, Mapping) else None
    error_type, message = ("cancelled" if status == "cancelled" else "_OTHER"), status
    if isinstance(error, Mapping):
        error_type = str(error.get("type") or error_type)
        message = str(error.get("message") or "")
    span.error = True
    span.status_message = message
    span.attributes[sc.ERROR_TYPE] = error_type
