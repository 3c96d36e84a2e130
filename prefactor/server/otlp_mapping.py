"""What an ingested span means: its kind, span type, params, result and status.

One function per convention family reads the attributes it knows:

* **prefactor** (spans our own ``OtlpSink`` sent, marked ``prefactor.span.type``):
  type, ids, status, params, result and violations come back exactly as they
  were recorded. A span with ``prefactor.instance.id`` but no type is an
  instance's own span: it makes the instance, not a span.
* **GenAI** (``gen_ai.operation.name``) and **OpenInference**
  (``openinference.span.kind``): ``invoke_agent`` / ``AGENT`` spans are
  ``agent:<name>``, ``execute_tool`` / ``TOOL`` spans ``tool:<name>`` with the
  arguments as params and ``{"value": result}`` as result, ``chat`` (also
  ``text_completion``, ``generate_content``) / ``LLM`` spans ``llm`` with model,
  messages and token usage.
* anything else is a generic ``otel:<span name>`` span whose params hold the
  span's name and all its attributes, so nothing is dropped.

A span that ended in error is ``failed`` and its result is the error record
our SDK writes, ``{"error": {"type", "message"}}``, from ``error.type`` (or
the ``exception`` event) and the status message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from prefactor._ids import is_pfid
from prefactor._otel import semconv as sc
from prefactor.server.otlp_decode import IngestSpan

__all__ = ["MAX_NAME", "Agent", "Mapped", "ToolDefinition", "map_span", "tool_definitions"]

Kind = Literal["instance", "agent", "tool", "llm", "generic"]
_LLM_OPERATIONS = frozenset({"chat", "text_completion", "generate_content"})
_AGENT_OPERATIONS = frozenset({"invoke_agent", "invoke_workflow"})
_STATUSES = frozenset({"complete", "failed", "cancelled"})
_OWN_KINDS: dict[str, Kind] = {"agent": "agent", "tool": "tool", "llm": "llm"}
MAX_NAME = 200
"""The longest span name kept in a span type."""


@dataclass(frozen=True, slots=True)
class Agent:
    """Who ran: the agent id, its name and version."""

    agent_id: str
    name: str
    version: str | None


@dataclass(frozen=True, slots=True)
class ToolDefinition:
    """A tool the agent could call, with the JSON Schema of its arguments."""

    name: str
    description: str | None
    parameters: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Mapped:
    """An ingested span in our terms."""

    kind: Kind
    span_type: str
    status: str
    params: dict[str, Any]
    result: dict[str, Any] | None
    agent: Agent | None = None
    span_id: str | None = None  # our own id, for spans our SDK sent
    instance_id: str | None = None
    violations: list[dict[str, Any]] | None = None
    tools: list[ToolDefinition] = field(default_factory=list)


def _type(kind: str, name: str) -> str:
    """A span type named after a span: names beyond ``MAX_NAME`` characters are cut.

    Types are labels and keys of schema versions; the span's whole name stays in
    its params (generic spans) or attributes.
    """
    return f"{kind}:{name[:MAX_NAME]}"


def _json(value: Any) -> Any:
    """A JSON-encoded attribute decoded; the text itself when it is not JSON."""
    if not isinstance(value, str):
        return value
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        return value


def _object(value: Any, key: str) -> dict[str, Any]:
    decoded = _json(value)
    return decoded if isinstance(decoded, dict) else {key: decoded}


def _present(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _unflatten(attrs: Mapping[str, Any], prefix: str) -> list[Any]:
    """OpenInference's flattened lists (``llm.input_messages.0.message.role``) as a list."""
    root: dict[str, Any] = {}
    start = prefix + "."
    for key, value in attrs.items():
        if not key.startswith(start):
            continue
        node = root
        parts = key[len(start) :].split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = value
    return [_listify(root[k]) for k in sorted(root, key=_index)]


def _index(key: str) -> tuple[int, str]:
    return (int(key), "") if key.isdigit() else (1 << 30, key)


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def _messages(attrs: Mapping[str, Any], genai_key: str, oi_prefix: str) -> Any:
    if genai_key in attrs:
        return _json(attrs[genai_key])
    flat = _unflatten(attrs, oi_prefix)
    if flat:
        return [entry.get("message", entry) if isinstance(entry, dict) else entry for entry in flat]
    return None


def _has_content(messages: Any) -> bool:
    """Whether messages carry more than roles (OpenInference may record roles alone)."""
    return isinstance(messages, list) and any(
        isinstance(m, dict) and set(m) - {"role"} for m in messages
    )


def _error(span: IngestSpan) -> dict[str, Any]:
    kind = span.attributes.get(sc.ERROR_TYPE) or span.exception_type or "_OTHER"
    message = span.status_message or span.exception_message or ""
    return {"error": {"type": str(kind), "message": message}}


def tool_definitions(attrs: Mapping[str, Any]) -> list[ToolDefinition]:
    """Tools described on a span: ``gen_ai.tool.definitions``, OpenInference's ``tool.*``."""
    found: list[ToolDefinition] = []
    raw = _json(attrs.get(sc.TOOL_DEFINITIONS))
    entries: list[Any] = raw if isinstance(raw, list) else []
    entries += [e.get("tool", {}).get("json_schema") for e in _unflatten(attrs, "llm.tools")]
    for raw_entry in entries:
        entry = _json(raw_entry)
        if not isinstance(entry, dict):
            continue
        nested = entry.get("function")
        function: dict[str, Any] = nested if isinstance(nested, dict) else entry
        name = function.get("name")
        parameters = _json(function.get("parameters"))
        if isinstance(name, str) and name:
            found.append(
                ToolDefinition(
                    name,
                    function.get("description"),
                    parameters if isinstance(parameters, dict) else None,
                )
            )
    if attrs.get(sc.OI_SPAN_KIND) == "TOOL" and isinstance(attrs.get(sc.OI_TOOL_NAME), str):
        parameters = _json(attrs.get(sc.OI_TOOL_PARAMETERS))
        found.append(
            ToolDefinition(
                attrs[sc.OI_TOOL_NAME],
                attrs.get(sc.OI_TOOL_DESCRIPTION),
                parameters if isinstance(parameters, dict) else None,
            )
        )
    return found


def _agent(span: IngestSpan) -> Agent:
    attrs = span.attributes
    name = attrs.get(sc.AGENT_NAME) or attrs.get("agent.name")
    if not isinstance(name, str) or not name:
        name = span.name.removeprefix("invoke_agent ").strip() or "agent"
    agent_id = attrs.get(sc.AGENT_ID)
    version = attrs.get(sc.AGENT_VERSION)
    return Agent(
        agent_id=agent_id if isinstance(agent_id, str) and agent_id else name,
        name=name,
        version=str(version) if version is not None else None,
    )


def _ours(span: IngestSpan) -> Mapped:
    attrs = span.attributes
    span_type = attrs.get(sc.PF_SPAN_TYPE)
    status = attrs.get(sc.PF_SPAN_STATUS)
    if status not in _STATUSES:
        status = "failed" if span.error else "complete"
    instance_id = attrs.get(sc.PF_INSTANCE_ID)
    own_id = attrs.get(sc.PF_SPAN_ID)
    is_tool = isinstance(span_type, str) and span_type.startswith("tool:")
    params_key, result_key = (
        (sc.TOOL_CALL_ARGUMENTS, sc.TOOL_CALL_RESULT) if is_tool else (sc.PF_PARAMS, sc.PF_RESULT)
    )
    result = _json(attrs[result_key]) if result_key in attrs else None
    if result is None and status != "complete":
        result = _error(span)
    violations = _json(attrs.get(sc.PF_SCHEMA_VIOLATIONS))
    agent = _agent(span) if span_type is None or sc.AGENT_NAME in attrs else None
    kind: Kind = "instance"
    if span_type is not None:
        kind = _OWN_KINDS.get(str(span_type).partition(":")[0], "generic")
    return Mapped(
        kind=kind,
        span_type=str(span_type or "instance"),
        status=str(status),
        params=_object(attrs.get(params_key), "value") if params_key in attrs else {},
        result=result if isinstance(result, dict) or result is None else {"value": result},
        agent=agent,
        span_id=own_id if is_pfid(own_id) else None,
        instance_id=instance_id if is_pfid(instance_id) else None,
        violations=violations if isinstance(violations, list) else None,
        tools=tool_definitions(attrs),
    )


def map_span(span: IngestSpan) -> Mapped:
    """Read one ingested span."""
    attrs = span.attributes
    if sc.PF_SPAN_TYPE in attrs or sc.PF_INSTANCE_ID in attrs:
        return _ours(span)
    operation = attrs.get(sc.OPERATION)
    oi_kind = attrs.get(sc.OI_SPAN_KIND)
    status = "failed" if span.error else "complete"
    failure = _error(span) if span.error else None
    tools = tool_definitions(attrs)
    if operation in _AGENT_OPERATIONS or oi_kind == "AGENT":
        agent = _agent(span)
        params = _present(
            messages=_json(attrs.get(sc.INPUT_MESSAGES)),
            system_instructions=_json(attrs.get(sc.SYSTEM_INSTRUCTIONS)),
            input=_json(attrs.get(sc.OI_INPUT_VALUE)),
        )
        result = failure or _present(
            messages=_json(attrs.get(sc.OUTPUT_MESSAGES)),
            output=_json(attrs.get(sc.OI_OUTPUT_VALUE, attrs.get("final_result"))),
        )
        return Mapped(
            "agent", _type("agent", agent.name), status, params, result, agent, tools=tools
        )
    if operation == "execute_tool" or oi_kind == "TOOL":
        name = attrs.get(sc.TOOL_NAME) or attrs.get(sc.OI_TOOL_NAME)
        if not isinstance(name, str) or not name:
            name = span.name.removeprefix("execute_tool ").strip() or "tool"
        arguments = attrs.get(sc.TOOL_CALL_ARGUMENTS, attrs.get(sc.OI_INPUT_VALUE))
        params = _object(arguments, "arguments") if arguments is not None else {}
        raw = attrs.get(sc.TOOL_CALL_RESULT, attrs.get(sc.OI_OUTPUT_VALUE))
        outcome = failure or ({"value": _json(raw)} if raw is not None else None)
        return Mapped("tool", _type("tool", name), status, params, outcome, tools=tools)
    if operation in _LLM_OPERATIONS or oi_kind == "LLM":
        inputs = _messages(attrs, sc.INPUT_MESSAGES, sc.OI_LLM_INPUT_MESSAGES)
        outputs = _messages(attrs, sc.OUTPUT_MESSAGES, sc.OI_LLM_OUTPUT_MESSAGES)
        params = _present(
            model=attrs.get(sc.REQUEST_MODEL) or attrs.get(sc.OI_LLM_MODEL_NAME),
            provider=attrs.get(sc.PROVIDER_NAME)
            or attrs.get(sc.SYSTEM)
            or attrs.get(sc.OI_LLM_PROVIDER)
            or attrs.get(sc.OI_LLM_SYSTEM),
            messages=inputs,
            input=None if _has_content(inputs) else _json(attrs.get(sc.OI_INPUT_VALUE)),
            system_instructions=_json(attrs.get(sc.SYSTEM_INSTRUCTIONS)),
            tools=[tool.name for tool in tools] or None,
        )
        usage = _present(
            input_tokens=attrs.get(sc.USAGE_INPUT_TOKENS, attrs.get(sc.OI_LLM_TOKENS_PROMPT)),
            output_tokens=attrs.get(sc.USAGE_OUTPUT_TOKENS, attrs.get(sc.OI_LLM_TOKENS_COMPLETION)),
            total_tokens=attrs.get(sc.OI_LLM_TOKENS_TOTAL),
        )
        result = failure or _present(
            model=attrs.get(sc.RESPONSE_MODEL),
            messages=outputs,
            output=None if _has_content(outputs) else _json(attrs.get(sc.OI_OUTPUT_VALUE)),
            finish_reasons=attrs.get(sc.RESPONSE_FINISH_REASONS),
            usage=usage or None,
        )
        return Mapped("llm", "llm", status, params, result, tools=tools)
    generic = {"name": span.name, "attributes": dict(attrs)}
    return Mapped("generic", _type("otel", span.name), status, generic, failure, tools=tools)
