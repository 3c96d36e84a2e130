"""Text renderings of an agent instance and its span tree, for terminals and tests.

Input is the wire shape (``AgentInstance`` and ``AgentSpan`` as dicts, as the
API and the store return them), so the same function serves the quick start,
``prefactor show`` and anything that reads a server.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["duration_ms", "render_instance", "render_instance_line"]


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


def _duration(start: Any, end: Any) -> str:
    ms = duration_ms(start, end)
    if ms is None:
        return "…"
    return f"{ms:.1f}ms" if ms < 10_000 else f"{ms / 1000:.2f}s"


def render_instance_line(instance: Mapping[str, Any]) -> str:
    """One line for an instance: id, agent, status, span count, duration."""
    counts = instance.get("span_counts") or {}
    return (
        f"{instance['id']}  {instance.get('agent_id', '?')}  [{instance.get('status', '?')}]"
        f"  {counts.get('total', 0)} spans"
        f"  {_duration(instance.get('started_at'), instance.get('finished_at'))}"
    )


def render_instance(instance: Mapping[str, Any], spans: Sequence[Mapping[str, Any]]) -> str:
    """The instance's header line and its span tree, children in start order.

    Each span shows its type, status and duration; a span sent with schema
    violations is marked ``!`` with each violation's side, path and reason.
    """
    children: dict[str | None, list[Mapping[str, Any]]] = {}
    ids = {s["id"] for s in spans}
    for span in spans:
        parent = span.get("parent_span_id")
        children.setdefault(parent if parent in ids else None, []).append(span)
    for group in children.values():
        group.sort(key=lambda s: str(s.get("started_at") or ""))
    lines = [render_instance_line(instance)]

    def walk(parent: str | None, prefix: str) -> None:
        group = children.get(parent, [])
        for index, span in enumerate(group):
            last = index == len(group) - 1
            branch = "└─ " if last else "├─ "
            text = (
                f"{prefix}{branch}{span['schema_name']} [{span['status']}]"
                f" {_duration(span.get('started_at'), span.get('finished_at'))}"
            )
            violations = span.get("schema_violations") or []
            if violations:
                text += "  ! " + "; ".join(
                    f"{v.get('side')} {v.get('path')}: {v.get('reason')}" for v in violations
                )
            lines.append(text)
            walk(span["id"], prefix + ("   " if last else "│  "))

    walk(None, "")
    return "\n".join(lines)
