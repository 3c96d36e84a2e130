"""Compiled JSON Schema validators: fast on the happy path, precise on failure.

Every payload is first checked by ``jsonschema-rs`` (a compiled Draft 2020-12
validator: under a microsecond for a typical LLM-call payload here, against
about 90 µs for python-jsonschema's prebuilt validator). Only a payload that
fails is handed to python-``jsonschema``, which produces the readable,
path-qualified messages users see; it also checks each schema once, when it
is compiled, so a malformed schema is refused at registration with a clear
message instead of at the first span.

A captured payload may carry the capturer's markers (a string cut at the size
cap, a list's ``…[N more items]``, ``[REDACTED]``: see
`prefactor._schemas.markers`). A violation located at a marker is not the
user's: :meth:`CompiledSchema.errors` leaves it out, so the SDK (``Tracer.check``)
and the server's store, which both ask it, never flag a payload for having
been truncated.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema_rs

from prefactor._schemas.markers import ELLIPSIS, is_marked

__all__ = [
    "CompiledSchema",
    "SchemaDefinitionError",
    "compile_schema",
    "find_markers",
    "format_path",
]


class SchemaDefinitionError(ValueError):
    """A JSON Schema is itself invalid (not a payload: the schema)."""


def format_path(parts: Iterable[Any]) -> str:
    """Render a JSON path the way error messages show it: ``$.messages[0].role``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            text = str(part)
            if text.isidentifier():
                out.append(f".{text}")
            else:
                out.append(f"[{json.dumps(text, ensure_ascii=False)}]")
    return "".join(out)


def find_markers(payload: Any) -> list[tuple[str, str]]:
    """Every capture marker in ``payload`` as ``(json_path, text)``, in document order.

    This is how to tell that a payload was cut, redacted or had values replaced:
    an empty list means it holds everything as it was passed.
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), payload)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, dict):
            stack.extend(((*path, key), item) for key, item in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, i), value[i]) for i in range(len(value) - 1, -1, -1))
        elif is_marked(value):
            found.append((format_path(path), value))
    return found


def _cut(instance: Any) -> bool:
    """Whether a container lost items to a cap (a ``"…"`` key, or a last marker item)."""
    if isinstance(instance, dict):
        return ELLIPSIS in instance
    if isinstance(instance, list) and instance:
        last = instance[-1]
        return type(last) is str and last.startswith(ELLIPSIS + "[")
    return False


def _exempt(error: jsonschema.ValidationError) -> bool:
    """Whether ``error`` is the capturer's doing rather than the payload's.

    It is when it is located at a marker, when it judges the size or the keys of a
    container the caps cut (anything but its type), when it compares a container that
    holds a marker with a constant (``enum``, ``const``), or, for ``anyOf``/``oneOf``,
    when some alternative fails only in such ways.
    """
    if error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_exempt(sub) for sub in subs) for subs in branches.values())
    instance = error.instance
    if is_marked(instance):
        return True
    if instance == ELLIPSIS and "propertyNames" in error.schema_path:
        return True
    if error.validator in ("enum", "const") and isinstance(instance, dict | list):
        return bool(find_markers(instance))
    return error.validator != "type" and _cut(instance)


def fast_accepts(fast: Any, payload: Any) -> bool:
    """Whether a fast engine's ``is_valid`` (or ``None``) accepts ``payload``.

    ``False`` means "not known to be valid": no fast engine, a violation, or a
    value the engine cannot read (ask :meth:`CompiledSchema.errors`).
    """
    if fast is None:
        return False
    try:
        return fast(payload) is True
    except (ValueError, TypeError, OverflowError):
        return False


class CompiledSchema:
    """One checked schema with its fast and its explaining validator."""

    __slots__ = ("_fast", "_slow", "fast_is_valid", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        schema = dict(schema)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = format_path(exc.absolute_path)
            raise SchemaDefinitionError(f"invalid JSON Schema at {where}: {exc.message}") from None
        self.schema = schema
        self._slow = cls(schema)
        try:
            self._fast: Any = jsonschema_rs.validator_for(schema)
        except (ValueError, TypeError):  # a schema the fast engine cannot compile: stay correct
            self._fast = None
        # The fast engine's own check, for callers on a hot path: it may raise
        # ValueError, TypeError or OverflowError on a value it cannot read, and
        # is None without a fast engine. is_valid() handles both.
        self.fast_is_valid: Any = self._fast.is_valid if self._fast is not None else None

    def is_valid(self, instance: Any) -> bool:
        """Whether ``instance`` satisfies the schema as written: the quick check.

        ``True`` means :meth:`errors` is empty. ``False`` means "ask :meth:`errors`": a
        payload that breaks the schema only at capture markers has no errors.
        """
        if self._fast is not None:
            try:
                return self._fast.is_valid(instance) is True
            except (ValueError, TypeError, OverflowError):
                pass  # a value the fast engine cannot read: let the reference engine judge
        return bool(self._slow.is_valid(instance))

    def errors(self, instance: Any) -> list[tuple[str, str]]:
        """Every violation as ``(json_path, reason)``, sorted by path; empty when valid.

        A violation located at a capture marker (see :func:`find_markers`) is not
        one: truncating a payload never makes it invalid.
        """
        if self.is_valid(instance):
            return []
        return self._explain(instance)

    def _explain(self, instance: Any) -> list[tuple[str, str]]:
        raw = list(self._slow.iter_errors(instance))
        if not raw:  # the engines disagree: still say that it failed
            return [("$", "does not match the schema")]
        return sorted(
            (format_path(err.absolute_path), err.message) for err in raw if not _exempt(err)
        )


_cache: dict[str, CompiledSchema] = {}
_cache_lock = threading.Lock()


def compile_schema(schema: Mapping[str, Any]) -> CompiledSchema:
    """Check and compile ``schema`` once; equal schemas share one compiled validator.

    Raises:
        SchemaDefinitionError: the schema is not a valid JSON Schema.
    """
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
    compiled = _cache.get(key)
    if compiled is None:
        compiled = CompiledSchema(schema)
        with _cache_lock:
            if len(_cache) > 4096:  # bounded: schemas are few, but a server sees many clients
                _cache.clear()
            _cache[key] = compiled
    return compiled
