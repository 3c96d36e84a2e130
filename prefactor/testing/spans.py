"""Read back what an agent produced: instances and span trees from wire items.

:class:`Trace` folds the bulk items a sink received (a ``MemorySink``'s
``items``) into instances and spans, as the server would store them: a span's
create and finish become one :class:`SpanRecord` with its final status,
params, result and schema violations. It answers the questions tests ask
(``trace.span("tool:search")``, ``span.children``) and renders the tree as
text for assertions and failure messages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = ["InstanceRecord", "SpanRecord", "Trace"]


@dataclass
class SpanRecord:
    """One span, folded from its create and finish items."""

    id: str
    instance_id: str
    type: str
    status: str
    params: dict[str, Any]
    parent_id: str | None = None
    result: dict[str, Any] | None = None
    started_at: str | None = None
    finished_at: str | None = None
    violations: list[dict[str, Any]] = field(default_factory=list)
    children: list[SpanRecord] = field(default_factory=list, repr=False)

    @property
    def duration_ms(self) -> float | None:
        """Milliseconds from start to finish, if both are known."""
        if not self.started_at or not self.finished_at:
            return None
        start = datetime.fromisoformat(self.started_at)
        end = datetime.fromisoformat(self.finished_at)
        return (end - start).total_seconds() * 1000

    @property
    def flagged(self) -> bool:
        """Whether the span was sent with schema violations."""
        return bool(self.violations)

    @property
    def name(self) -> str:
        """The type without its kind prefix: ``"search"`` for ``"tool:search"``."""
        return self.type.partition(":")[2] or self.type


@dataclass
class InstanceRecord:
    """One agent instance with its lifecycle and its spans."""

    id: str
    agent_id: str | None
    status: str = "pending"
    agent_version: dict[str, Any] = field(default_factory=dict)
    schema_version: dict[str, Any] | None = None
    quality: dict[str, Any] = field(default_factory=dict)
    spans: list[SpanRecord] = field(default_factory=list, repr=False)

    @property
    def roots(self) -> list[SpanRecord]:
        """The spans without a parent, in start order."""
        return [s for s in self.spans if s.parent_id is None]


class Trace:
    """Instances and spans folded from bulk wire items, in the order they were made."""

    def __init__(self, items: Iterable[Mapping[str, Any]]) -> None:
        self._instances: dict[str, InstanceRecord] = {}
        self._spans: dict[str, SpanRecord] = {}
        for item in items:
            self._apply(item)
        for span in self._spans.values():
            parent = self._spans.get(span.parent_id) if span.parent_id else None
            if parent is not None:
                parent.children.append(span)
            inst = self._instances.get(span.instance_id)
            if inst is None:
                inst = self._instances[span.instance_id] = InstanceRecord(span.instance_id, None)
            inst.spans.append(span)

    @classmethod
    def from_api(
        cls, instances: Iterable[Mapping[str, Any]], spans: Iterable[Mapping[str, Any]]
    ) -> Trace:
        """Fold what the REST API answers (``AgentInstance`` and ``AgentSpan`` objects).

        Args:
            instances: instance objects, in the order they were registered.
            spans: span objects, parents before their children.
        """
        listed = list(instances)
        items: list[Mapping[str, Any]] = [
            {"_type": "agent_instances/register", **inst} for inst in listed
        ]
        items.extend({"_type": "agent_spans/create", **span} for span in spans)
        trace = cls(items)
        for inst in listed:
            record = trace._instance(inst["id"])
            record.status = inst.get("status", record.status)
            record.quality = dict(inst.get("quality_payloads") or {})
        return trace

    def _apply(self, item: Mapping[str, Any]) -> None:
        kind = item["_type"]
        if kind == "agent_instances/register":
            self._instances[item["id"]] = InstanceRecord(
                id=item["id"],
                agent_id=item.get("agent_id"),
                agent_version=dict(item.get("agent_version") or {}),
                schema_version=item.get("agent_schema_version"),
            )
        elif kind == "agent_instances/start":
            self._instance(item["agent_instance_id"]).status = "active"
        elif kind == "agent_instances/finish":
            self._instance(item["agent_instance_id"]).status = item.get("status", "complete")
        elif kind == "agent_instances/record_quality":
            inst = self._instance(item["agent_instance_id"])
            if item.get("payload") is None:
                inst.quality.pop(item["name"], None)
            else:
                inst.quality[item["name"]] = item["payload"]
        elif kind == "agent_spans/create":
            d = item.get("details", item)
            self._spans[d["id"]] = SpanRecord(
                id=d["id"],
                instance_id=d["agent_instance_id"],
                type=d["schema_name"],
                status=d["status"],
                params=dict(d.get("payload") or {}),
                parent_id=d.get("parent_span_id"),
                result=d.get("result_payload"),
                started_at=d.get("started_at"),
                finished_at=d.get("finished_at"),
                violations=list(d.get("schema_violations") or []),
            )
        elif kind == "agent_spans/finish":
            span = self._spans[item["agent_span_id"]]
            span.status = item.get("status", "complete")
            span.finished_at = item.get("timestamp")
            if "result_payload" in item:
                span.result = item["result_payload"]
            span.violations.extend(item.get("schema_violations") or [])

    def _instance(self, instance_id: str) -> InstanceRecord:
        inst = self._instances.get(instance_id)
        if inst is None:
            inst = self._instances[instance_id] = InstanceRecord(instance_id, None)
        return inst

    @property
    def instances(self) -> list[InstanceRecord]:
        """Every instance, in the order it was registered."""
        return list(self._instances.values())

    @property
    def spans(self) -> list[SpanRecord]:
        """Every span, in the order it was created."""
        return list(self._spans.values())

    def spans_of_type(self, span_type: str) -> list[SpanRecord]:
        """The spans of one type (``"tool:search"``), in creation order."""
        return [s for s in self._spans.values() if s.type == span_type]

    def span(self, span_type: str) -> SpanRecord:
        """The one span of ``span_type``.

        Raises:
            LookupError: there is none, or more than one.
        """
        found = self.spans_of_type(span_type)
        if len(found) != 1:
            raise LookupError(
                f"expected one {span_type!r} span, found {len(found)}\n{self.render()}"
            )
        return found[0]

    def find(
        self, *, type: str | None = None, name: str | None = None, status: str | None = None
    ) -> list[SpanRecord]:
        """The spans matching every given criterion, in creation order.

        Args:
            type: the full span type (``"tool:search"``).
            name: the type without its prefix (``"search"``).
            status: ``"complete"``, ``"failed"``, ...
        """
        return [
            s
            for s in self._spans.values()
            if (type is None or s.type == type)
            and (name is None or s.name == name)
            and (status is None or s.status == status)
        ]

    def records(self) -> list[dict[str, Any]]:
        """Every span as a plain dict that compares equal run after run.

        Span and instance ids become ``"span-1"``, ``"span-2"``, ... and
        ``"instance-1"``, ... in the order they were recorded (a parent id maps
        to its span's token; an unknown one to ``None``); timestamps are left
        out. Keys: ``id``, ``parent_id``, ``instance_id``, ``type``,
        ``status``, ``params``, ``result``, ``violations``.
        """
        instance_tokens = {inst.id: f"instance-{n}" for n, inst in enumerate(self.instances, 1)}
        span_tokens = {span.id: f"span-{n}" for n, span in enumerate(self._spans.values(), 1)}
        return [
            {
                "id": span_tokens[span.id],
                "parent_id": span_tokens.get(span.parent_id) if span.parent_id else None,
                "instance_id": instance_tokens.get(span.instance_id),
                "type": span.type,
                "status": span.status,
                "params": dict(span.params),
                "result": dict(span.result) if span.result is not None else None,
                "violations": list(span.violations),
            }
            for span in self._spans.values()
        ]

    def get(self, span_id: str) -> SpanRecord:
        """The span with this id (``KeyError`` if unknown)."""
        return self._spans[span_id]

    def parent(self, span: SpanRecord) -> SpanRecord | None:
        """``span``'s parent, if it has one."""
        return self._spans.get(span.parent_id) if span.parent_id else None

    def render(self, *, durations: bool = False) -> str:
        """The span trees as indented text: ``type [status]`` per line, flags marked ``!``."""
        lines: list[str] = []
        for inst in self._instances.values():
            lines.append(f"instance {inst.agent_id or '?'} [{inst.status}]")
            for root in inst.roots:
                self._render(root, 1, lines, durations)
        return "\n".join(lines)

    def _render(self, span: SpanRecord, depth: int, lines: list[str], durations: bool) -> None:
        text = f"{'  ' * depth}{span.type} [{span.status}]"
        if durations and span.duration_ms is not None:
            text += f" {span.duration_ms:.1f}ms"
        if span.flagged:
            text += " ! " + "; ".join(
                f"{v['side']} {v['path']}: {v['reason']}" for v in span.violations
            )
        lines.append(text)
        for child in span.children:
            self._render(child, depth + 1, lines, durations)
