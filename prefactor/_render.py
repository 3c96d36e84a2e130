"""Text renderings of an agent instance and its span tree, for terminals and tests.

Input is the wire shape (``AgentInstance`` and ``AgentSpan`` as dicts, as the
API and the store return them), so the same function serves the quick start,
``prefactor show`` and anything that reads a server. The rules for reading a
span (its place in the tree, its error, its duration) are here once; the web
viewer uses them too.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

__all__ = [
    "TreeNode",
    "duration_ms",
    "error_of",
    "format_duration",
    "render_instance",
    "render_instance_line",
    "span_tree",
]

# A value shown inline when its JSON fits this many characters, else indented.
_INLINE_JSON = 100


def _ts(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    return None


def duration_ms(start: Any, end: Any) -> float | None:
    """Milliseconds between two timestamps (ISO strings or datetimes), if both are known."""
    a, b = _ts(start), _ts(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds() * 1000


def format_duration(ms: float | None) -> str:
    """A duration for people: ``45µs``, ``812.0ms``, ``12.35s``, ``4m 05s``; ``…`` if unknown."""
    if ms is None:
        return "…"
    if ms < 1:
        return f"{ms * 1000:.0f}µs"
    if ms < 10_000:
        return f"{ms:.1f}ms"
    if ms < 600_000:
        return f"{ms / 1000:.2f}s"
    minutes, seconds = divmod(round(ms / 1000), 60)
    return f"{minutes}m {seconds:02d}s"


def _duration(start: Any, end: Any) -> str:
    return format_duration(duration_ms(start, end))


def error_of(status: str, result: Any) -> tuple[str, str] | None:
    """A failed or cancelled span's error as ``(type, message)``; ``None`` for other spans.

    The SDK records an error as ``{"error": {"type", "message"}}``; any other
    result of a failed span (another SDK's) is shown whole as the message.
    """
    if status not in ("failed", "cancelled"):
        return None
    error = result.get("error") if isinstance(result, Mapping) else None
    if isinstance(error, Mapping) and isinstance(error.get("type"), str):
        return error["type"], str(error.get("message", ""))
    if result is None:
        return None
    return "error", json.dumps(result, ensure_ascii=False, default=str)


@dataclass(frozen=True, slots=True)
class TreeNode:
    """A span in tree order.

    Attributes:
        span: the span as given.
        depth: 0 for a root.
        last: whether it is its parent's last child.
        ancestors_last: ``last`` of each ancestor, root first.
        has_children: whether any span names it as parent.
    """

    span: Any
    depth: int
    last: bool
    ancestors_last: tuple[bool, ...]
    has_children: bool


def span_tree(
    spans: Sequence[Any], *, key: Callable[[Any, str], Any] | None = None
) -> Iterator[TreeNode]:
    """Spans depth first, children in start order; a span whose parent is absent is a root.

    Args:
        spans: mappings with ``id``, ``parent_span_id`` and ``started_at`` (or
            objects with those attributes when ``key`` reads them).
        key: ``key(span, name)`` reads a field (``getattr`` for objects);
            ``span.get(name)`` by default.
    """
    read = key or (lambda span, name: span.get(name))
    ids = {read(s, "id") for s in spans}
    children: dict[Any, list[Any]] = {}
    for span in spans:
        parent = read(span, "parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: str(read(s, "started_at") or ""))

    def walk(parent: Any, ancestors: tuple[bool, ...]) -> Iterator[TreeNode]:
        group = children.get(parent, [])
        for index, span in enumerate(group):
            last = index == len(group) - 1
            span_id = read(span, "id")
            yield TreeNode(span, len(ancestors), last, ancestors, span_id in children)
            yield from walk(span_id, (*ancestors, last))

    return walk(None, ())


def render_instance_line(instance: Mapping[str, Any]) -> str:
    """One line for an instance: id, agent, status, span count, duration."""
    counts = instance.get("span_counts") or {}
    return (
        f"{instance['id']}  {instance.get('agent_id', '?')}  [{instance.get('status', '?')}]"
        f"  {counts.get('total', 0)} spans"
        f"  {_duration(instance.get('started_at'), instance.get('finished_at'))}"
    )


def _json_lines(label: str, value: Any) -> list[str]:
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) <= _INLINE_JSON:
        return [f"{label}: {text}"]
    pretty = json.dumps(value, ensure_ascii=False, default=str, indent=2).splitlines()
    return [f"{label}:", *("  " + line for line in pretty)]


def _detail_lines(span: Mapping[str, Any], error: tuple[str, str] | None) -> list[str]:
    """Params, and the result unless the span's line already shows it as an error."""
    lines = _json_lines("params", span.get("payload"))
    if error is None and span.get("result_payload") is not None:
        lines.extend(_json_lines("result", span.get("result_payload")))
    return lines


def render_instance(
    instance: Mapping[str, Any], spans: Sequence[Mapping[str, Any]], *, verbose: bool = False
) -> str:
    """The instance's header line and its span tree, children in start order.

    Each span shows its type, status and duration; a failed span its error's
    type and message after ``✗``; a span sent with schema violations is marked
    ``!`` with each violation's side, path and reason.

    Args:
        instance: the instance in the API's shape.
        spans: its spans in the API's shape.
        verbose: also print each span's params, and its result unless it failed, under it.
    """
    lines = [render_instance_line(instance)]
    for node in span_tree(spans):
        span = node.span
        prefix = "".join("   " if last else "│  " for last in node.ancestors_last)
        text = (
            f"{prefix}{'└─ ' if node.last else '├─ '}{span['schema_name']} [{span['status']}]"
            f" {_duration(span.get('started_at'), span.get('finished_at'))}"
        )
        error = error_of(span.get("status", ""), span.get("result_payload"))
        if error is not None:
            text += f"  ✗ {error[0]}: {error[1]}"
        violations = span.get("schema_violations") or []
        if violations:
            text += "  ! " + "; ".join(
                f"{v.get('side')} {v.get('path')}: {v.get('reason')}" for v in violations
            )
        lines.append(text)
        if verbose:
            inner = (
                prefix + ("   " if node.last else "│  ") + ("│  " if node.has_children else "   ")
            )
            lines.extend(inner + line for line in _detail_lines(span, error))
    return "\n".join(lines)
