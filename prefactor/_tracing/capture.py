"""Safe capture: any Python value to a JSON-safe snapshot, never raising.

A capture is a new tree of dict/list/str/int/float/bool/None, built when the call
happens, so later mutation of the user's objects does not change what was recorded.

What each kind of value is recorded as is the contract table,
:data:`prefactor._schemas.forms.FORMS`, which the schemas derived from type hints read
too: the schema of a type accepts what the capturer records for its values. Every
captured value is something the JSON encoder can write (no int beyond 64 bits, no
lone surrogate, no ``NaN``).

Size caps and secrets leave visible markers (see :mod:`prefactor._schemas.markers`):
long strings end in ``"…[truncated N chars]"``, long lists end with the item
``"…[N more items]"``, long mappings with the key ``"…"`` (value ``"…[N more items]"``),
and once a payload's size budget is spent the remaining values become
``"…[size budget exceeded]"``. A reference cycle becomes ``"<cycle>"``, a container
deeper than ``max_depth`` ``"<max depth: T>"``, a value whose every conversion raised
``"<unrepresentable T>"``.

Secrets (the rules are :mod:`prefactor._redaction`): values under secret-looking keys
(``api_key``, ``password``, ``pwd``, ``otp``, ``access_token``, ``authorization``,
``cookie``, ...) become ``"[REDACTED]"`` at every depth (``None`` stays ``None``), and
the password of a URL in any string (``postgres://bob:hunter2@db``) becomes
``[REDACTED]``. Counting keys such as ``max_tokens`` or ``token_count`` are kept.

**The result shape** (:meth:`Capturer.capture_result`): a returned mapping, pydantic
model (not a ``RootModel``) or dataclass is recorded as its captured fields; any other
value ``v`` as ``{"value": capture(v)}``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from itertools import islice
from typing import Any

from prefactor._errors import PrefactorConfigError
from prefactor._redaction import (
    DEFAULT_REDACT_KEYS,
    REDACTED,
    KeyRules,
    default_key_rules,
    redact_credentials,
)
from prefactor._schemas.forms import (
    INT_MAX,
    INT_MIN,
    JSON,
    NONFINITE,
    encodable,
    float_form,
    int_form,
    key_form,
    ordered,
    records_fields,
    row_for,
    safe_repr,
    text_form,
)
from prefactor._schemas.markers import (
    BUDGET_MARKER,
    CYCLE,
    ELLIPSIS,
    is_more_items,
    marked_head,
    max_depth_marker,
    more_items,
    truncated,
    unrepresentable,
)

__all__ = [
    "ATOMIC",
    "DEFAULT_REDACT_KEYS",
    "REDACTED",
    "Capturer",
    "JSONValue",
    "capture",
    "capture_mapping",
    "capture_result",
    "is_atomic",
]

JSONValue = JSON

# The exact types whose values cannot change after a call: keeping a reference to one
# is a snapshot, and its capture may wait for the exporter's thread.
ATOMIC = frozenset({str, int, float, bool, type(None)})

_SCALAR_COST = 8  # rough JSON size of a number/bool/null plus punctuation
# orjson refuses to write JSON nested deeper than 255 levels; leave room for the envelope.
MAX_DEPTH_LIMIT = 200


def is_atomic(value: Any) -> bool:
    """Whether ``value`` is a JSON scalar by exact type (str, int, float, bool, None).

    Such a value cannot change after the call, so keeping it is a snapshot; it may
    still need capturing (see :meth:`Capturer.passes_through`).
    """
    return type(value) in ATOMIC


class _Walk:
    """The mutable state of one capture: budget left and containers on the current path."""

    __slots__ = ("budget", "path")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.path: set[int] = set()


class Capturer:
    """Turns any value into a JSON-safe snapshot with size caps and secret redaction.

    Args:
        max_string_length: characters kept of a string before the truncation marker.
        max_items: items kept of a list/mapping/set before the "more items" marker.
        max_depth: container nesting captured before the depth marker (at most 200).
        max_total_size: approximate JSON size budget (characters) of one payload.
        max_repr_length: characters kept of the ``repr`` of an unknown object.
        bytes_preview: bytes shown (base64) of a bytes value.
        redact: whether secrets are redacted (secret-looking keys, URL passwords).
        redact_keys: regexes (searched case-insensitively in the normalised key) that
            mark a key secret; replaces :data:`DEFAULT_REDACT_KEYS`.
        extra_redact_keys: regexes added to ``redact_keys`` (or to the defaults).

    Raises:
        PrefactorConfigError: a limit is negative, or ``max_depth`` is over 200.
    """

    __slots__ = (
        "_keys",
        "_names_cache",
        "bytes_preview",
        "max_depth",
        "max_items",
        "max_repr_length",
        "max_string_length",
        "max_total_size",
        "redact",
    )

    def __init__(
        self,
        *,
        max_string_length: int = 10_000,
        max_items: int = 1_000,
        max_depth: int = 20,
        max_total_size: int = 256 * 1024,
        max_repr_length: int = 1_000,
        bytes_preview: int = 48,
        redact: bool = True,
        redact_keys: Iterable[str] | None = None,
        extra_redact_keys: Iterable[str] = (),
    ) -> None:
        limits = {
            "max_string_length": max_string_length,
            "max_items": max_items,
            "max_depth": max_depth,
            "max_total_size": max_total_size,
            "max_repr_length": max_repr_length,
            "bytes_preview": bytes_preview,
        }
        for name, limit in limits.items():
            if limit < 0:
                raise PrefactorConfigError(f"Capturer {name} must be 0 or more, got {limit}")
        if max_depth > MAX_DEPTH_LIMIT:
            raise PrefactorConfigError(
                f"Capturer max_depth must be at most {MAX_DEPTH_LIMIT} (the JSON encoder's "
                f"nesting limit), got {max_depth}"
            )
        self.max_string_length = max_string_length
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_total_size = max_total_size
        self.max_repr_length = max_repr_length
        self.bytes_preview = bytes_preview
        self.redact = redact
        extra = frozenset(extra_redact_keys)
        if redact_keys is None and not extra:
            self._keys = default_key_rules()  # shared: its memo serves every default capturer
        else:
            base = DEFAULT_REDACT_KEYS if redact_keys is None else frozenset(redact_keys)
            self._keys = KeyRules(base | extra)
        self._names_cache: dict[tuple[str, ...], bool] = {}

    # -- public API ------------------------------------------------------------------------

    def passes_through(self, value: Any) -> bool:
        """Whether ``value`` is its own capture (``capture(value)`` would return it as is).

        ``True`` only for a str, int, float, bool or ``None`` (by exact type) that no rule
        changes: a string within the length cap that JSON can carry and that holds no
        ``@`` (which might start a URL's credentials), an int within 64 bits, a finite
        float. ``False`` means "capture it". Shortcuts elsewhere (the decorator's) ask
        this rather than keep rules of their own.

        The fast path (:meth:`capture_params`) and the walk's loops inline the same
        tests (a call per value would cost more than the tests);
        ``tests/tracing/test_capture_params_fast_path.py`` holds them to this method.
        """
        t = type(value)
        if t is str:
            return (
                len(value) <= self.max_string_length
                and (value.isascii() or encodable(value))
                and not (self.redact and "@" in value)
            )
        if t is int:
            return INT_MIN <= value <= INT_MAX  # type: ignore[no-any-return]
        if t is float:
            return value - value == 0.0  # type: ignore[no-any-return]  # not NaN or inf
        return t is bool or value is None

    def capture(self, value: Any) -> JSONValue:
        """A JSON-safe snapshot of ``value``; never raises."""
        if self.passes_through(value):
            return value  # type: ignore[no-any-return]
        return self._guarded(value, _Walk(self.max_total_size))

    def capture_mapping(self, mapping: Mapping[Any, Any]) -> dict[str, JSONValue]:
        """Capture a mapping (e.g. bound arguments), redacting secret keys; never raises."""
        if type(mapping) is dict and len(mapping) <= self.max_items:
            out = self.capture_params(tuple(mapping), mapping.values())
            if out is not None:
                return out
        walk = _Walk(self.max_total_size)
        walk.path.add(id(mapping))
        try:
            return self._mapping(mapping, 0, walk)
        except Exception:
            return {ELLIPSIS: unrepresentable(mapping)}

    def capture_result(self, value: Any) -> dict[str, JSONValue]:
        """The result payload: a mapping/model/dataclass's fields, else ``{"value": ...}``."""
        if self.passes_through(value):  # the common result, spared the type tests below
            return {"value": value}
        if type(value) is dict or isinstance(value, Mapping):
            return self.capture_mapping(value)
        captured = self._guarded(value, _Walk(self.max_total_size))
        if not records_fields(type(value)):
            return {"value": captured}
        if isinstance(captured, dict):
            return captured
        return {ELLIPSIS: captured}  # a marker: the fields could not be recorded

    def snapshot_mapping(self, data: Mapping[Any, Any]) -> tuple[dict[Any, Any], bool]:
        """``data`` as it is now, as cheaply as later changes to it allow.

        Returns ``(copy, False)`` when ``data`` is a dict of atomic values (a
        shallow copy is then a snapshot, and its capture can wait for the
        exporter's thread), else ``(capture, True)``: captured now.
        """
        if type(data) is dict:
            for value in data.values():
                if type(value) not in ATOMIC:
                    break
            else:
                return data.copy(), False
        return self.capture_mapping(data), True

    def capture_params(
        self, names: tuple[str, ...], values: Collection[Any]
    ) -> dict[str, Any] | None:
        """``dict(zip(names, values))`` when that is already its own capture, else ``None``.

        The strict hot path: a function's parameter names and the scalar
        arguments of one call (and the fast path of :meth:`capture_mapping`). It
        gives up (the caller then takes the general path) on a value that does not
        :meth:`pass through <passes_through>`, on a name that is secret-looking or
        not plain text, and when the values exceed the size budget.
        """
        if len(values) != len(names):
            return None
        blocked = self._names_cache.get(names)
        if blocked is None:
            blocked = any(
                type(name) is not str or not encodable(name) or self.is_secret_key(name)
                for name in names
            )
            if len(self._names_cache) > 4096:  # key sets repeat; a bounded memo keeps this cheap
                self._names_cache.clear()
            self._names_cache[names] = blocked
        if blocked:
            return None
        limit = self.max_string_length
        budget = self.max_total_size
        counting = len(values) * (limit + 64) > budget
        redact = self.redact
        out: dict[str, Any] = {}  # filled in the loop: dict(zip(...)) costs more
        for name, value in zip(names, values):  # noqa: B905 (lengths checked; strict= costs)
            # The tests of passes_through, inlined: a call per value would cost more.
            t = type(value)
            if t is str:
                if (
                    len(value) > limit
                    or not (value.isascii() or encodable(value))
                    or (redact and "@" in value)
                ):
                    return None
            elif t is int:
                if not INT_MIN <= value <= INT_MAX:
                    return None
            elif t is float:
                if value - value != 0.0:  # NaN or an infinity
                    return None
            elif t is not bool and value is not None:
                return None
            if counting:
                budget -= len(name) + (len(value) + 6 if t is str else _SCALAR_COST)
            out[name] = value
        return out if budget >= 0 else None

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are redacted (``False`` when redaction is off)."""
        return self.redact and self._keys.matches(key)

    # -- internals -------------------------------------------------------------------------

    def _guarded(self, value: Any, walk: _Walk) -> JSONValue:
        try:
            return self._walk(value, 0, walk)
        except Exception:
            return unrepresentable(value)

    def _string(self, text: str, walk: _Walk) -> str:
        limit = min(self.max_string_length, max(walk.budget, 0))
        cut = len(text) > limit
        if cut:  # unless it was cut before, or is a float's own form ("-Infinity", which
            # the float's schema accepts whole): capturing a capture changes nothing
            start = marked_head(text)
            cut = (start is None or start > limit) and text not in NONFINITE
        if cut and limit == 0:
            walk.budget = -1
            return BUDGET_MARKER
        head = text_form(text[:limit] if cut else text)
        if self.redact:
            head = redact_credentials(head, cut=cut)
        walk.budget -= len(head) + 2
        return f"{head}{truncated(len(text) - limit)}" if cut else head

    def _walk(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        t = type(value)
        if t is str:
            return self._string(value, walk)
        if walk.budget < 0:
            return BUDGET_MARKER
        if t is int:
            walk.budget -= _SCALAR_COST
            if INT_MIN <= value <= INT_MAX:
                return value  # type: ignore[no-any-return]
            return self._string(str(int_form(value)), walk)
        if t is float:
            walk.budget -= _SCALAR_COST
            return float_form(value)
        if t is bool or value is None:
            walk.budget -= _SCALAR_COST
            return value  # type: ignore[no-any-return]
        if t is dict or t is list or t is tuple:  # the common containers skip the row lookup
            return self._enter(value, depth, walk)
        row = row_for(t)
        if row.kind == "leaf" and row.form is not None:
            return self._walk(row.form(value, self.bytes_preview), depth, walk)
        if row.kind == "repr":
            return self._string(self._repr(value), walk)
        return self._enter(value, depth, walk)

    def _enter(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        """Capture a container, guarding against depth and reference cycles."""
        if depth >= self.max_depth:
            return max_depth_marker(value)
        key = id(value)
        path = walk.path
        if key in path:
            return CYCLE
        path.add(key)
        try:
            t = type(value)
            if t is dict:
                return self._mapping(value, depth, walk)
            if t is list or t is tuple:
                return self._sequence(value, len(value), depth, walk)
            return self._container(value, depth, walk)
        finally:
            path.discard(key)

    def _container(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        kind = row_for(type(value)).kind
        if kind == "mapping":
            return self._mapping(value, depth, walk)
        if kind == "set":  # the first items met, sorted: a large set costs what a list does
            return self._sequence(ordered(islice(value, self.max_items)), len(value), depth, walk)
        if kind in ("sequence", "view"):
            return self._sequence(value, len(value), depth, walk)
        if kind == "model":
            try:
                dumped = value.model_dump()
            except Exception:  # cycles, failing serializers: walk the fields ourselves
                dumped = {name: getattr(value, name, None) for name in type(value).model_fields}
            return self._walk(dumped, depth, walk)
        # A dataclass (the only other container kind).
        names = value.__dataclass_fields__
        return self._mapping({name: getattr(value, name, None) for name in names}, depth, walk)

    def _mapping(self, value: Mapping[Any, Any], depth: int, walk: _Walk) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        total = len(value)
        cap = self.max_items
        limit = self.max_string_length
        redact = self.redact
        memo = self._keys.memo if redact else None
        for count, (raw_key, item) in enumerate(value.items()):
            if count >= cap:
                # A capture captured again keeps its own marker.
                kept = raw_key == ELLIPSIS and count + 1 == total and is_more_items(item)
                out[ELLIPSIS] = item if kept else more_items(total - count)
                break
            if walk.budget < 0:
                out[ELLIPSIS] = more_items(total - count, budget=True)
                break
            if type(raw_key) is str and raw_key.isascii():
                key = raw_key
            else:
                key = text_form(key_form(raw_key))
            if memo is not None and item is not None:
                secret = memo.get(key)
                if secret is None:
                    secret = self._keys.matches(key)
                if secret:
                    out[key] = REDACTED
                    walk.budget -= len(key) + 16
                    continue
            t = type(item)
            # Inlined scalar cases (the tests of passes_through): most values in agent
            # payloads are short strings and numbers.
            if (
                t is str
                and len(item) <= limit
                and len(item) < walk.budget
                and (item.isascii() or encodable(item))
                and not (redact and "@" in item)
            ):
                walk.budget -= len(key) + len(item) + 6
                out[key] = item
            elif (t is int and INT_MIN <= item <= INT_MAX) or t is bool or item is None:
                walk.budget -= len(key) + _SCALAR_COST
                out[key] = item
            elif t is dict or t is list:
                walk.budget -= len(key) + 4
                out[key] = self._enter(item, depth + 1, walk)
            else:
                walk.budget -= len(key) + 4
                try:
                    out[key] = self._walk(item, depth + 1, walk)
                except Exception:
                    out[key] = unrepresentable(item)
        return out

    def _sequence(self, items: Iterable[Any], total: int, depth: int, walk: _Walk) -> JSONValue:
        """Capture the first ``max_items`` of ``items`` (of ``total``), then the marker."""
        out: list[JSONValue] = []
        append = out.append
        limit = self.max_string_length
        redact = self.redact
        for item in islice(items, self.max_items):
            if walk.budget < 0:
                append(more_items(total - len(out), budget=True))
                return out
            t = type(item)
            # Inlined scalar cases, as in _mapping.
            if (
                t is str
                and len(item) <= limit
                and len(item) < walk.budget
                and (item.isascii() or encodable(item))
                and not (redact and "@" in item)
            ):
                walk.budget -= len(item) + 3
                append(item)
            elif (t is int and INT_MIN <= item <= INT_MAX) or t is bool or item is None:
                walk.budget -= _SCALAR_COST
                append(item)
            elif t is dict or t is list:
                append(self._enter(item, depth + 1, walk))
            else:
                try:
                    append(self._walk(item, depth + 1, walk))
                except Exception:
                    append(unrepresentable(item))
        kept = len(out)
        if kept < total:
            # A capture captured again (a list one item over the cap) keeps its own marker.
            last = items[kept] if kept + 1 == total and type(items) is list else None
            append(last if is_more_items(last) else more_items(total - kept))
        return out

    def _repr(self, value: Any) -> str:
        text = safe_repr(value)
        limit = self.max_repr_length
        return text if len(text) <= limit else f"{text[:limit]}{truncated(len(text) - limit)}"


_default = Capturer()


def capture(value: Any) -> JSONValue:
    """Capture ``value`` with the default :class:`Capturer`."""
    return _default.capture(value)


def capture_mapping(mapping: Mapping[Any, Any]) -> dict[str, JSONValue]:
    """Capture a mapping with the default :class:`Capturer` (keys redacted)."""
    return _default.capture_mapping(mapping)


def capture_result(value: Any) -> dict[str, JSONValue]:
    """The result payload of ``value`` with the default :class:`Capturer`."""
    return _default.capture_result(value)
