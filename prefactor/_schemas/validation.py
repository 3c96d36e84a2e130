"""Compiled JSON Schema validators: fast on the happy path, precise on failure, bounded always.

Every payload is first checked by ``jsonschema-rs`` (a compiled Draft 2020-12
validator: under a microsecond for a typical LLM-call payload here, against
about 90 µs for python-jsonschema's prebuilt validator). Only a payload that
fails is explained, by python-``jsonschema``, whose readable, path-qualified
messages users see; it also checks each schema once, when it is compiled, so a
malformed schema is refused at registration with a clear message instead of at
the first span.

Schemas may come from anyone who can reach ``prefactor serve``, so compiling
one never reaches outside it and checking a payload stays linear in its size:

* a ``$ref`` must resolve within the schema document: nothing is ever
  fetched, from the network or from files, and a schema whose references
  point elsewhere is refused when it is compiled;
* a schema nests at most :data:`MAX_SCHEMA_DEPTH` levels of objects and
  arrays, so neither engine can run out of stack on it;
* ``pattern``, ``patternProperties`` and ``uniqueItems`` are not linear in
  python-jsonschema (a backtracking regex engine, pairwise comparison), so a
  schema using them is explained by the fast engine instead, whose regexes
  run in linear time (patterns with backreferences or lookaround give up
  after a bounded number of steps) and whose ``uniqueItems`` hashes. Its
  messages read slightly differently (``"x" does not match "^a"``).

A captured payload may carry the capturer's markers (a string cut at the size
cap, a list's ``…[N more items]``, ``[REDACTED]``: see
:mod:`prefactor._schemas.markers`). A violation located at a marker is not the
user's: :meth:`CompiledSchema.errors` leaves it out, so the SDK (``Tracer.check``)
and the server's store, which both ask it, never flag a payload for having
been truncated.

What a violation says is bounded too, because it travels with the span: a
reason quotes at most :data:`MAX_REASON_LENGTH` characters (python-jsonschema
would quote the whole offending value, so a 10,000-character string or a
large object would be repeated in every violation), and a payload lists at
most :data:`MAX_VIOLATIONS` of them.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from prefactor._errors import PrefactorError
from prefactor._forksafe import renewed_lock
from prefactor._schemas.markers import ELLIPSIS, is_marked

# Both engines are imported when a schema is first compiled: importing the decorators
# must not pay for them.
if TYPE_CHECKING:
    import jsonschema
    import referencing

__all__ = [
    "MAX_REASON_LENGTH",
    "MAX_SCHEMA_DEPTH",
    "MAX_VIOLATIONS",
    "CompiledSchema",
    "SchemaDefinitionError",
    "compile_schema",
    "find_markers",
    "format_path",
]

MAX_SCHEMA_DEPTH = 64
"""How many levels of objects and arrays a schema document may nest."""
MAX_REASON_LENGTH = 300
"""Characters of a violation's reason kept: its start and its end, which says what failed."""
MAX_VIOLATIONS = 100
"""Violations listed per payload; a last entry at ``$`` says that more were left out."""

# python-jsonschema runs these in more than linear time: the regex keywords with
# Python's backtracking `re` (``^(a+)+$`` against 40 characters takes hours), and
# uniqueItems by comparing unhashable items pairwise.
_NOT_LINEAR_IN_PYTHON = frozenset({"pattern", "patternProperties", "uniqueItems"})

# The fast engine's regexes are linear-time automata unless a pattern needs
# backreferences or lookaround; those give up (a violation) after this many steps,
# a few milliseconds.
_BACKTRACK_LIMIT = 100_000


def _never_retrieve(uri: str) -> Any:
    raise ValueError(f"{uri} is outside the schema: references are never fetched")


def _no_such_resource(uri: str) -> referencing.Resource[Any]:
    import referencing.exceptions

    raise referencing.exceptions.NoSuchResource(ref=uri)  # type: ignore[call-arg]


@functools.cache
def _local_only() -> referencing.Registry[Any]:
    """A registry that fetches nothing (python-jsonschema's default fetches http(s), files)."""
    import referencing

    return referencing.Registry(retrieve=_no_such_resource)  # type: ignore[call-arg]


class SchemaDefinitionError(PrefactorError, ValueError):
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
    when some alternative fails only in such ways (when the fast engine explained the
    payload, which does not list the alternatives: when the value holds a marker).
    """
    instance = error.instance
    if error.validator in ("anyOf", "oneOf"):
        if not error.context:  # explained by the fast engine, which gives no alternatives
            return is_marked(instance) or bool(find_markers(instance))
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        return any(all(_exempt(sub) for sub in subs) for subs in branches.values())
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


def _python_is_linear(schema: Mapping[str, Any]) -> bool:
    """Whether python-jsonschema checks ``schema`` in linear time.

    Raises:
        SchemaDefinitionError: the schema nests deeper than :data:`MAX_SCHEMA_DEPTH`.
    """
    linear = True
    stack: list[tuple[Any, int]] = [(schema, 1)]
    while stack:  # iterative: a hostile schema may be far deeper than the call stack
        node, depth = stack.pop()
        if depth > MAX_SCHEMA_DEPTH:
            raise SchemaDefinitionError(
                f"invalid JSON Schema: it nests deeper than {MAX_SCHEMA_DEPTH} levels"
            )
        if isinstance(node, Mapping):
            linear = linear and _NOT_LINEAR_IN_PYTHON.isdisjoint(node)
            children: Iterable[Any] = node.values()
        elif isinstance(node, list | tuple):
            children = node
        else:
            continue
        stack.extend(
            (child, depth + 1) for child in children if isinstance(child, Mapping | list | tuple)
        )
    return linear


class _FastExplainer:
    """Explains a payload with the fast engine, as python-jsonschema errors."""

    __slots__ = ("_fast",)

    def __init__(self, fast: Any) -> None:
        self._fast = fast

    def is_valid(self, instance: Any) -> bool:
        return fast_accepts(self._fast.is_valid, instance)

    def iter_errors(self, instance: Any) -> Iterator[jsonschema.ValidationError]:
        import jsonschema

        try:
            found = list(self._fast.iter_errors(instance))
        except (ValueError, TypeError, OverflowError) as exc:
            yield jsonschema.ValidationError(f"holds a value the validator cannot read: {exc}")
            return
        for err in found:
            keyword = err.schema_path[-1] if err.schema_path else None
            yield jsonschema.ValidationError(
                err.message,
                validator=keyword if isinstance(keyword, str) else "",
                path=err.instance_path,
                schema_path=err.schema_path,
                instance=err.instance,
            )


class _ReferenceExplainer:
    """python-jsonschema's explanation; the fast engine's where python cannot finish one."""

    __slots__ = ("_fallback", "_validator")

    def __init__(self, validator: Any, fallback: _FastExplainer) -> None:
        self._validator = validator
        self._fallback = fallback

    def is_valid(self, instance: Any) -> bool:
        import referencing.exceptions

        try:
            return bool(self._validator.is_valid(instance))
        except (RecursionError, referencing.exceptions.Unresolvable):
            return self._fallback.is_valid(instance)

    def iter_errors(self, instance: Any) -> Iterable[jsonschema.ValidationError]:
        import referencing.exceptions

        # A recursive schema checked against a deep payload outruns Python's stack.
        try:
            return list(self._validator.iter_errors(instance))
        except (RecursionError, referencing.exceptions.Unresolvable):
            return list(self._fallback.iter_errors(instance))


class CompiledSchema:
    """One checked schema with its fast and its explaining validator.

    Raises:
        SchemaDefinitionError: the schema is not a valid JSON Schema, nests too deep, or
            refers to anything outside itself.
    """

    __slots__ = ("_fast", "_slow", "fast_is_valid", "schema")

    def __init__(self, schema: Mapping[str, Any]) -> None:
        import jsonschema
        import jsonschema_rs

        schema = dict(schema)
        python_is_linear = _python_is_linear(schema)
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            where = format_path(exc.absolute_path)
            raise SchemaDefinitionError(f"invalid JSON Schema at {where}: {exc.message}") from None
        try:
            self._fast: Any = jsonschema_rs.validator_for(
                schema,
                retriever=_never_retrieve,
                pattern_options=jsonschema_rs.FancyRegexOptions(backtrack_limit=_BACKTRACK_LIMIT),
            )
        except (ValueError, TypeError) as exc:  # an outside $ref, an unknown $schema...
            reason = str(exc).strip().splitlines()[0]
            raise SchemaDefinitionError(f"invalid JSON Schema: {reason}") from None
        self.schema = schema
        fast = _FastExplainer(self._fast)
        self._slow: _FastExplainer | _ReferenceExplainer = (
            _ReferenceExplainer(cls(schema, registry=_local_only()), fast)
            if python_is_linear
            else fast
        )
        # The fast engine's own check, for callers on a hot path: it may raise
        # ValueError, TypeError or OverflowError on a value it cannot read, which
        # is_valid() handles.
        self.fast_is_valid: Any = self._fast.is_valid

    def is_valid(self, instance: Any) -> bool:
        """Whether ``instance`` satisfies the schema as written: the quick check.

        ``True`` means :meth:`errors` is empty. ``False`` means "ask :meth:`errors`": a
        payload that breaks the schema only at capture markers has no errors.
        """
        try:
            return self._fast.is_valid(instance) is True
        except (ValueError, TypeError, OverflowError):
            pass  # a value the fast engine cannot read: let the explaining engine judge
        return self._slow.is_valid(instance)

    def errors(self, instance: Any) -> list[tuple[str, str]]:
        """Every violation as ``(json_path, reason)``, sorted by path; empty when valid.

        A violation located at a capture marker (see :func:`find_markers`) is not
        one: truncating a payload never makes it invalid.
        """
        if self.is_valid(instance):
            return []
        return self._explain(instance)

    def _explain(self, instance: Any) -> list[tuple[str, str]]:
        found = more = False
        kept: list[tuple[str, str]] = []
        for err in self._slow.iter_errors(instance):
            found = True
            if _exempt(err):
                continue
            if len(kept) == MAX_VIOLATIONS:
                more = True
                break
            kept.append((format_path(err.absolute_path), _bounded(err.message)))
        if not found:  # the engines disagree: still say that it failed
            return [("$", "does not match the schema")]
        kept.sort()
        if more:
            kept.append(("$", f"more violations not listed (the first {MAX_VIOLATIONS} are)"))
        return kept


def _bounded(reason: str) -> str:
    """``reason`` cut to :data:`MAX_REASON_LENGTH` characters in its middle, where the value is."""
    if len(reason) <= MAX_REASON_LENGTH:
        return reason
    tail = MAX_REASON_LENGTH // 3
    left_out = f" …[{len(reason) - MAX_REASON_LENGTH:,} characters]… "
    head = MAX_REASON_LENGTH - tail - len(left_out)
    return f"{reason[:head]}{left_out}{reason[-tail:]}"


_cache: dict[str, CompiledSchema] = {}
_cache_lock = renewed_lock(sys.modules[__name__], "_cache_lock")


def compile_schema(schema: Mapping[str, Any]) -> CompiledSchema:
    """Check and compile ``schema`` once; equal schemas share one compiled validator.

    Raises:
        SchemaDefinitionError: the schema is not a valid JSON Schema, nests too deep, or
            refers to anything outside itself.
    """
    _python_is_linear(schema)  # refuse a too-deep schema before serialising it for the key
    key = json.dumps(schema, sort_keys=True, separators=(",", ":"), default=str)
    compiled = _cache.get(key)
    if compiled is None:
        compiled = CompiledSchema(schema)
        with _cache_lock:
            if len(_cache) > 4096:  # bounded: schemas are few, but a server sees many clients
                _cache.clear()
            _cache[key] = compiled
    return compiled
