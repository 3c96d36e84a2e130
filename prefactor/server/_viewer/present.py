"""What the viewer's templates show, computed in Python: filters, waterfalls, JSON trees.

The templates only lay these out; every number (a bar's position, a
duration) and every decision (which JSON node is open, which is flagged) is
made here, where it is tested.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from prefactor._render import duration_ms, error_of, format_duration, span_tree
from prefactor._schemas.validation import format_path
from prefactor.server._store_views import INSTANCE_STATUSES, RunFilter, RunRow, SpanLine
from prefactor.server.store_common import store_time

__all__ = [
    "WINDOWS",
    "FilterForm",
    "JsonNode",
    "SchemaField",
    "SpanDetail",
    "Waterfall",
    "WaterfallRow",
    "decode_position",
    "json_tree",
    "marks_of",
    "parse_filter",
    "pretty_json",
    "run_duration",
    "schema_fields",
    "schema_type",
    "short_time",
    "span_detail",
    "waterfall",
]

TERMINAL_RUN = frozenset({"complete", "failed", "cancelled", "terminated"})
WINDOWS: dict[str, tuple[str, timedelta]] = {
    "15m": ("last 15 minutes", timedelta(minutes=15)),
    "1h": ("last hour", timedelta(hours=1)),
    "24h": ("last 24 hours", timedelta(days=1)),
    "7d": ("last 7 days", timedelta(days=7)),
    "30d": ("last 30 days", timedelta(days=30)),
}
_OPEN_DEPTH = 2  # JSON containers this shallow start open
_OPEN_MAX_CHILDREN = 40  # larger containers start closed, unless they hold a violation
_MIN_BAR_PERCENT = 0.25  # a zero-length span still shows as a sliver
_MAX_TICK_STEPS = 8


@dataclass(frozen=True, slots=True)
class FilterForm:
    """The runs page's filter as the user chose it, for the form and for links."""

    agent: str = ""
    status: str = ""
    window: str = ""

    def query(self, **extra: str) -> dict[str, str]:
        """The filter (and ``extra``) as query parameters, empty ones left out."""
        params = {"agent": self.agent, "status": self.status, "window": self.window, **extra}
        return {k: v for k, v in params.items() if v}

    @property
    def active(self) -> bool:
        """Whether anything is filtered."""
        return bool(self.agent or self.status or self.window)


def parse_filter(query: Mapping[str, str], now: datetime) -> tuple[RunFilter, FilterForm]:
    """The runs filter of a query string; unknown statuses and windows are ignored."""
    agent = query.get("agent", "").strip()
    status = query.get("status", "")
    status = status if status in INSTANCE_STATUSES else ""
    window = query.get("window", "")
    window = window if window in WINDOWS else ""
    since = store_time(now - WINDOWS[window][1]) if window else None
    return (
        RunFilter(agent_id=agent or None, status=status or None, since=since),
        FilterForm(agent, status, window),
    )


def decode_position(text: str | None) -> int | None:
    """A page position from a query value (a run's ``rowid``), or ``None`` for anything else."""
    if not text or not text.isdigit() or len(text) > 19:
        return None
    return int(text)


def short_time(value: str | None) -> str:
    """A store time as ``2026-02-09 13:05:01`` (UTC); empty when unknown."""
    if not value:
        return ""
    return value[:19].replace("T", " ")


def run_duration(run: RunRow, now: str) -> str:
    """How long a run took, or has been running (ending in ``…``); empty before it starts."""
    if run.started_at is None:
        return ""
    if run.finished_at is not None:
        return format_duration(duration_ms(run.started_at, run.finished_at))
    if run.status in TERMINAL_RUN:
        return ""
    return format_duration(duration_ms(run.started_at, now)) + " …"


# --- waterfall ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WaterfallRow:
    """One span of the waterfall: its place in the tree and its bar, in percent of the run."""

    span: SpanLine
    depth: int
    left: float
    width: float
    duration: str
    running: bool
    error: tuple[str, str] | None


@dataclass(frozen=True, slots=True)
class Waterfall:
    """A run's spans as bars on one time axis.

    Attributes:
        rows: the spans in tree order.
        ticks: the axis' ``(percent, label)`` marks.
        total: the axis' length, for people.
        tick_percent: the distance between two ticks, in percent of the axis.
    """

    rows: list[WaterfallRow]
    ticks: list[tuple[float, str]]
    total: str
    tick_percent: float


def _tick_step(total_ms: float) -> float:
    """A round step (1, 2 or 5 times a power of ten, in ms): three to eight steps per run."""
    step = 0.001
    while total_ms / step > _MAX_TICK_STEPS:
        for factor in (2, 2.5, 2):
            step *= factor
            if total_ms / step <= _MAX_TICK_STEPS:
                break
    return step


def _tick_label(ms: float) -> str:
    """An axis label: ``0``, ``50µs``, ``250ms``, ``1.5s``, ``2m``."""
    if ms == 0:
        return "0"
    if ms < 1:
        return f"{round(ms * 1000, 3):g}µs"
    if ms < 1000:
        return f"{round(ms, 6):g}ms"
    if ms < 120_000:
        return f"{round(ms / 1000, 6):g}s"
    return f"{round(ms / 60_000, 3):g}m"


def waterfall(run: RunRow, spans: Sequence[SpanLine], now: str) -> Waterfall:
    """Place each span's bar by its start and duration within the run.

    The axis runs from the earliest of the run's and its spans' starts to the
    latest end; a span still running ends at ``now``.
    """
    starts = [s.started_at for s in spans]
    if run.started_at is not None:
        starts.append(run.started_at)
    origin = min(starts) if starts else run.inserted_at
    ends = [s.finished_at or now for s in spans]
    ends.append(run.finished_at or (now if run.status not in TERMINAL_RUN else origin))
    total_ms = max(duration_ms(origin, max(ends)) or 0.0, 0.001)
    rows = []
    for node in span_tree(spans, key=getattr):
        span: SpanLine = node.span
        running = span.finished_at is None and span.status in ("active", "pending")
        end = span.finished_at or (now if running else span.started_at)
        start_ms = max(duration_ms(origin, span.started_at) or 0.0, 0.0)
        length_ms = max(duration_ms(span.started_at, end) or 0.0, 0.0)
        left = min(start_ms / total_ms * 100, 100.0)
        width = max(min(length_ms / total_ms * 100, 100.0 - left), _MIN_BAR_PERCENT)
        rows.append(
            WaterfallRow(
                span=span,
                depth=node.depth,
                left=round(min(left, 100.0 - _MIN_BAR_PERCENT), 3),
                width=round(width, 3),
                duration=format_duration(length_ms) + (" …" if running else ""),
                running=running,
                error=error_of(span.status, span.error_payload),
            )
        )
    step = _tick_step(total_ms)
    count = int(total_ms / step * 1.0001) + 1
    ticks = [(round(i * step / total_ms * 100, 3), _tick_label(i * step)) for i in range(count)]
    return Waterfall(rows, ticks, format_duration(total_ms), round(step / total_ms * 100, 4))


# --- JSON tree ----------------------------------------------------------------------------


@dataclass(slots=True)
class JsonNode:
    """One value of a JSON document, for a collapsible view.

    Attributes:
        label: the property name or ``[index]`` under its parent; ``None`` at the root.
        path: its JSON path, written as schema violations write them (``$.a[0].b``).
        kind: ``object``, ``array``, ``string``, ``number``, ``boolean`` or ``null``.
        text: a scalar's JSON text, or a container's size (``3 keys``, ``2 items``).
        children: a container's members; ``None`` for a scalar.
        marks: the reasons of the schema violations at this path.
        open: whether a container starts expanded.
    """

    label: str | None
    path: str
    kind: str
    text: str
    children: list[JsonNode] | None = None
    marks: list[str] = field(default_factory=list)
    open: bool = False


def _scalar(value: Any) -> tuple[str, str]:
    if value is None:
        return "null", "null"
    if isinstance(value, bool):
        return "boolean", "true" if value else "false"
    if isinstance(value, int | float):
        return "number", repr(value)
    if isinstance(value, str):
        return "string", '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return "string", repr(value)


def json_tree(
    value: Any, marks: Mapping[str, Sequence[str]] | None = None, *, open_depth: int = _OPEN_DEPTH
) -> JsonNode:
    """``value`` as a tree of :class:`JsonNode`, flagging the nodes at ``marks``' paths.

    A container starts open when it is shallower than ``open_depth`` and small,
    or when a flagged node is inside it, so a violation is visible without a
    click.
    """
    marks = marks or {}

    def build(label: str | None, key_path: tuple[Any, ...], item: Any, depth: int) -> JsonNode:
        path = format_path(key_path)
        node_marks = list(marks.get(path, ()))
        if isinstance(item, Mapping):
            children = [build(str(k), (*key_path, str(k)), v, depth + 1) for k, v in item.items()]
            text = f"{len(children)} key{'s' if len(children) != 1 else ''}"
            kind = "object"
        elif isinstance(item, list | tuple):
            children = [build(f"[{i}]", (*key_path, i), v, depth + 1) for i, v in enumerate(item)]
            text = f"{len(children)} item{'s' if len(children) != 1 else ''}"
            kind = "array"
        else:
            kind, text = _scalar(item)
            return JsonNode(label, path, kind, text, None, node_marks)
        holds_mark = any(
            m[len(path) : len(path) + 1] in (".", "[") and m.startswith(path) for m in marks
        )
        opened = holds_mark or (depth < open_depth and len(children) <= _OPEN_MAX_CHILDREN)
        return JsonNode(label, path, kind, text, children, node_marks, opened)

    return build(None, (), value, 0)


def marks_of(violations: Sequence[Mapping[str, Any]] | None, side: str) -> dict[str, list[str]]:
    """The reasons of one side's schema violations, by JSON path."""
    found: dict[str, list[str]] = {}
    for violation in violations or ():
        if violation.get("side") == side:
            found.setdefault(str(violation.get("path", "$")), []).append(
                str(violation.get("reason", ""))
            )
    return found


# --- a span's details -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpanDetail:
    """The selected span as its detail pane shows it."""

    id: str
    schema_name: str
    title: str | None
    summary: str | None
    status: str
    started_at: str
    parent_span_id: str | None
    duration: str
    error: tuple[str, str] | None
    violations: list[Mapping[str, Any]]
    params: JsonNode
    params_raw: str
    result: JsonNode | None
    result_raw: str


def schema_type(schema: Any) -> str:
    """A JSON Schema's type in a few words: ``string``, ``array of integer``, ``"a" | "b"``."""
    if not isinstance(schema, Mapping):
        return "any"
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(json.dumps(v, ensure_ascii=False) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"], ensure_ascii=False)
    for combined in ("anyOf", "oneOf"):
        if isinstance(schema.get(combined), list):
            return " | ".join(schema_type(s) for s in schema[combined])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(str(k) for k in kind)
    if kind == "array" and isinstance(schema.get("items"), Mapping):
        return f"array of {schema_type(schema['items'])}"
    if isinstance(kind, str):
        return kind
    if "$ref" in schema:
        return str(schema["$ref"])
    return "any"


@dataclass(frozen=True, slots=True)
class SchemaField:
    """A top-level property of an object schema, for a glance at what a span takes."""

    name: str
    type: str
    required: bool
    default: str | None


def schema_fields(schema: Mapping[str, Any]) -> list[SchemaField]:
    """The top-level properties of an object schema, in its order; empty for other schemas."""
    properties = schema.get("properties")
    if not isinstance(properties, Mapping):
        return []
    required = schema.get("required")
    needed = set(required) if isinstance(required, list) else set()
    return [
        SchemaField(
            name=str(name),
            type=schema_type(prop),
            required=name in needed,
            default=(
                json.dumps(prop["default"], ensure_ascii=False)
                if isinstance(prop, Mapping) and "default" in prop
                else None
            ),
        )
        for name, prop in properties.items()
    ]


def pretty_json(value: Any) -> str:
    """``value`` as indented JSON text (anything JSON cannot hold as its ``str``)."""
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)


def span_detail(span: Mapping[str, Any], now: str) -> SpanDetail:
    """A span in the API's shape, ready for the detail pane.

    A failed span's result is its error record, shown as the error rather than
    as a result; each violation flags the node at its path in the side's tree.
    """
    status = str(span["status"])
    result = span.get("result_payload")
    error = error_of(status, result)
    violations = list(span.get("schema_violations") or [])
    running = span.get("finished_at") is None and status in ("active", "pending")
    ms = duration_ms(span["started_at"], span.get("finished_at") or now)
    payload = span.get("payload")
    return SpanDetail(
        id=span["id"],
        schema_name=span["schema_name"],
        title=span.get("schema_title"),
        summary=span.get("summary"),
        status=status,
        started_at=span["started_at"],
        parent_span_id=span.get("parent_span_id"),
        duration=format_duration(ms) + (" …" if running else ""),
        error=error,
        violations=violations,
        params=json_tree(payload, marks_of(violations, "params")),
        params_raw=pretty_json(payload),
        result=None
        if error is not None or result is None
        else json_tree(result, marks_of(violations, "result")),
        result_raw=pretty_json(result),
    )
