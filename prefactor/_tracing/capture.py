"""Safe capture: any Python value to a JSON-safe snapshot, never raising.

A capture is a new tree of dict/list/str/int/float/bool/None, built when the call
happens, so later mutation of the user's objects does not change what was recorded.

Conversions: pydantic models (``model_dump(mode="json")``), dataclasses (their fields),
mappings (keys made strings), lists/tuples/sets (sets sorted by ``repr``), datetimes,
dates and times (ISO 8601), timedelta (seconds), UUID/Decimal/Path (``str``), Enum (its
value), bytes (``{"$bytes": <length>, "base64": <first bytes, base64>}``), exceptions
(``{"type": ..., "message": ...}``), non-finite floats (``"NaN"``, ``"Infinity"``,
``"-Infinity"``); anything else becomes its ``repr`` (truncated), or
``"<unrepresentable T>"`` when even that fails. A reference cycle becomes ``"<cycle>"``,
a container deeper than ``max_depth`` ``"<max depth: T>"``.

Size caps leave visible markers: long strings end in ``"…[truncated N chars]"``, long
lists end with the item ``"…[N more items]"``, long mappings with the key ``"…"``
(value ``"N more items"``), and once a payload's size budget is spent the remaining
values become ``"…[size budget exceeded]"``.

Secret-looking keys (``api_key``, ``password``, ``access_token``, ``authorization``,
``cookie``, ...) have their values replaced by ``"[REDACTED]"`` at every depth; ``None``
values stay ``None``. Counting keys such as ``max_tokens``, ``tokens_used`` or
``token_count`` are not secrets and are kept.

**The result shape** (:meth:`Capturer.capture_result`): a returned mapping, pydantic
model or dataclass is recorded as its captured fields; any other value ``v`` as
``{"value": capture(v)}``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import math
import re
import uuid
from collections.abc import Iterable, Mapping, Set
from decimal import Decimal
from pathlib import PurePath
from typing import Any, TypeAlias

import pydantic

__all__ = [
    "ATOMIC_TYPES",
    "DEFAULT_REDACT_KEYS",
    "REDACTED",
    "Capturer",
    "JSONValue",
    "capture",
    "capture_mapping",
    "capture_result",
    "is_atomic",
    "more_items",
    "truncated",
]

JSONValue: TypeAlias = "dict[str, JSONValue] | list[JSONValue] | str | int | float | bool | None"

REDACTED = "[REDACTED]"
CYCLE = "<cycle>"
BUDGET_MARKER = "…[size budget exceeded]"

# Regexes searched in a normalised key: lower case, camelCase split, "-", "." and " " as "_".
# A word that is also a counter ("token", "auth", "session") only matches at the end of
# the key, so "access_token" is a secret while "token_count"/"max_tokens" are not.
DEFAULT_REDACT_KEYS: frozenset[str] = frozenset(
    {
        r"pass(word|wd|phrase)",
        r"secret",
        r"api_?key",
        r"private_?key",
        r"credential",
        r"authori[sz]ation",
        r"cookie",
        r"token$",
        r"(access|refresh|bearer|auth|id|session|csrf)_?token",
        r"auth$",
        r"session$",
        r"session_?(key|token|secret)",
        r"jwt",
        r"bearer",
    }
)

ATOMIC_TYPES: frozenset[type] = frozenset({str, int, float, bool, type(None)})
"""The exact types of JSON scalars: values of them never change once made."""
_ATOMIC = ATOMIC_TYPES
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[-.\s]+")
_SCALAR_COST = 8  # rough JSON size of a number/bool/null plus punctuation


def is_atomic(value: Any) -> bool:
    """Whether ``value`` is a JSON scalar by exact type (str, int, float, bool, None)."""
    return type(value) in _ATOMIC


def truncated(head: str, more: int) -> str:
    """``head`` marked as the start of a string of which ``more`` characters were cut."""
    return f"{head}…[truncated {more} chars]"


def more_items(count: int) -> str:
    """The item that ends a list capped with ``count`` items left out."""
    return f"…[{count} more items]"


def _type_name(value: Any) -> str:
    return type(value).__qualname__


def _nonfinite(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


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
        max_depth: container nesting captured before the depth marker.
        max_total_size: approximate JSON size budget (characters) of one payload.
        max_repr_length: characters kept of the ``repr`` of an unknown object.
        bytes_preview: bytes shown (base64) of a bytes value.
        redact: whether secret-looking keys are redacted.
        redact_keys: regexes (searched case-insensitively in the normalised key) that
            mark a key secret; defaults to :data:`DEFAULT_REDACT_KEYS`.
    """

    __slots__ = (
        "_key_cache",
        "_names_cache",
        "_redact_re",
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
    ) -> None:
        self.max_string_length = max_string_length
        self.max_items = max_items
        self.max_depth = max_depth
        self.max_total_size = max_total_size
        self.max_repr_length = max_repr_length
        self.bytes_preview = bytes_preview
        self.redact = redact
        patterns = DEFAULT_REDACT_KEYS if redact_keys is None else frozenset(redact_keys)
        joined = "|".join(f"(?:{p})" for p in sorted(patterns))
        self._redact_re = re.compile(joined, re.IGNORECASE) if patterns else None
        self._key_cache: dict[str, bool] = {}
        self._names_cache: dict[tuple[str, ...], bool] = {}

    # -- public API ------------------------------------------------------------------------

    def capture(self, value: Any) -> JSONValue:
        """A JSON-safe snapshot of ``value``; never raises."""
        t = type(value)
        if t is str:
            if len(value) <= self.max_string_length:
                return value  # type: ignore[no-any-return]
        elif t is int or t is bool or value is None:
            return value  # type: ignore[no-any-return]
        elif t is float:
            return value if math.isfinite(value) else _nonfinite(value)
        return self._guarded(value, _Walk(self.max_total_size))

    def capture_mapping(self, mapping: Mapping[Any, Any]) -> dict[str, JSONValue]:
        """Capture a mapping (e.g. bound arguments), redacting secret keys; never raises."""
        if type(mapping) is dict and len(mapping) <= self.max_items:
            out = self._flat_dict(mapping)
            if out is not None:
                return out
        walk = _Walk(self.max_total_size)
        walk.path.add(id(mapping))
        try:
            return self._mapping(mapping, 0, walk)
        except Exception:
            return {"…": f"<unrepresentable {_type_name(mapping)}>"}

    def capture_result(self, value: Any) -> dict[str, JSONValue]:
        """The result payload: a mapping/model/dataclass's fields, else ``{"value": ...}``."""
        if type(value) in _ATOMIC:  # the common result, spared the isinstance checks below
            return {"value": self.capture(value)}
        if isinstance(value, Mapping):
            return self.capture_mapping(value)
        if isinstance(value, pydantic.BaseModel) or (
            dataclasses.is_dataclass(value) and not isinstance(value, type)
        ):
            captured = self._guarded(value, _Walk(self.max_total_size))
            if isinstance(captured, dict):
                return captured
            return {"value": captured}
        return {"value": self.capture(value)}

    def snapshot_mapping(self, data: Mapping[Any, Any]) -> tuple[dict[Any, Any], bool]:
        """``data`` as it is now, as cheaply as later changes to it allow.

        Returns ``(copy, False)`` when ``data`` is a dict of atomic values (a
        shallow copy is then a snapshot, and its capture can wait for the
        exporter's thread), else ``(capture, True)``: captured now.
        """
        if type(data) is dict:
            for value in data.values():
                if type(value) not in _ATOMIC:
                    break
            else:
                return data.copy(), False
        return self.capture_mapping(data), True

    def capture_params(
        self, names: tuple[str, ...], values: tuple[Any, ...]
    ) -> dict[str, Any] | None:
        """``dict(zip(names, values))`` when that is already its own capture, else ``None``.

        The strict hot path: a function's parameter names and the scalar
        arguments of one call. It gives up (the caller then takes the general
        path) on any value that is not a short string, an int, a bool,
        ``None`` or a finite float, on a secret-looking name, and when the
        values could exceed the size budget.
        """
        if self.redact:
            secret = self._names_cache.get(names)
            if secret is None:
                secret = any(self.is_secret_key(name) for name in names)
                if len(self._names_cache) > 4096:
                    self._names_cache.clear()
                self._names_cache[names] = secret
            if secret:
                return None
        limit = self.max_string_length
        if len(values) * (limit + 64) > self.max_total_size or len(values) != len(names):
            return None
        out: dict[str, Any] = {}  # filled in the loop: dict(zip(...)) costs twice as much
        for name, value in zip(names, values):  # noqa: B905 (lengths checked; strict= costs)
            t = type(value)
            if t is str:
                if len(value) > limit:
                    return None
            elif t is float:
                if value - value != 0.0:  # NaN or an infinity
                    return None
            elif t is not int and t is not bool and value is not None:
                return None
            out[name] = value
        return out

    def is_secret_key(self, key: str) -> bool:
        """Whether values under ``key`` are redacted (``False`` when redaction is off)."""
        if not self.redact or self._redact_re is None:
            return False
        found = self._key_cache.get(key)
        if found is None:
            normal = _SEPARATORS.sub("_", _CAMEL.sub("_", key)).lower()
            found = self._redact_re.search(normal) is not None
            if len(self._key_cache) > 4096:  # keys repeat; a bounded memo keeps this cheap
                self._key_cache.clear()
            self._key_cache[key] = found
        return found

    # -- internals -------------------------------------------------------------------------

    def _flat_dict(self, mapping: dict[Any, Any]) -> dict[str, JSONValue] | None:
        """The fast path: str keys and short scalar values only; ``None`` if anything else.

        One pass: every value is checked and copied, secret keys redacted on
        the way (their verdict memoised per key). The size budget is only
        counted when the mapping is long enough to exceed it at all.
        """
        limit = self.max_string_length
        budget = self.max_total_size
        counting = len(mapping) * (limit + 64) > budget
        redact = self.redact
        cache = self._key_cache
        out: dict[str, JSONValue] = {}
        for key, value in mapping.items():
            t = type(value)
            if t is str:
                if len(value) > limit:
                    return None
            elif not (
                t is int or t is bool or value is None or (t is float and math.isfinite(value))
            ):
                return None
            if type(key) is not str:
                return None
            if counting:
                budget -= len(key) + (len(value) + 6 if t is str else _SCALAR_COST)
            secret: bool | None = False
            if redact and value is not None:
                secret = cache.get(key)
                if secret is None:
                    secret = self.is_secret_key(key)
            out[key] = REDACTED if secret else value
        return out if budget >= 0 else None

    def _guarded(self, value: Any, walk: _Walk) -> JSONValue:
        try:
            return self._walk(value, 0, walk)
        except Exception:
            return self._unrepresentable(value)

    def _unrepresentable(self, value: Any) -> str:
        try:
            return f"<unrepresentable {_type_name(value)}>"
        except Exception:
            return "<unrepresentable>"

    def _string(self, text: str, walk: _Walk) -> str:
        limit = min(self.max_string_length, max(walk.budget, 0))
        if len(text) > limit:
            if limit == 0:
                walk.budget = -1
                return BUDGET_MARKER
            walk.budget -= limit
            return truncated(text[:limit], len(text) - limit)
        walk.budget -= len(text) + 2
        return text

    def _walk(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        t = type(value)
        if t is str:
            return self._string(value, walk)
        if walk.budget < 0:
            return BUDGET_MARKER
        if t is int or t is bool or value is None:
            walk.budget -= _SCALAR_COST
            return value  # type: ignore[no-any-return]
        if t is float:
            walk.budget -= _SCALAR_COST
            return value if math.isfinite(value) else _nonfinite(value)
        if t is dict or t is list or t is tuple:  # the common containers skip the type tests
            return self._enter(value, depth, walk)
        return self._other(value, depth, walk)

    def _other(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        if isinstance(value, enum.Enum):
            return self._walk(value.value, depth, walk)
        if isinstance(value, str):  # str subclasses: record the plain text
            return self._string(str.__str__(value), walk)
        if isinstance(value, bool | int):
            walk.budget -= _SCALAR_COST
            return bool(value) if isinstance(value, bool) else int(value)
        if isinstance(value, float):
            return self._walk(float(value), depth, walk)
        scalar = self._scalar(value, walk)
        if scalar is not None:
            return scalar
        return self._enter(value, depth, walk)

    def _enter(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        """Capture a container, guarding against depth and reference cycles."""
        if depth >= self.max_depth:
            return f"<max depth: {_type_name(value)}>"
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
                return self._sequence(value, depth, walk)
            return self._container(value, depth, walk)
        finally:
            path.discard(key)

    def _scalar(self, value: Any, walk: _Walk) -> JSONValue:
        """Values with a fixed text form, or ``None`` when ``value`` is not one of them."""
        if isinstance(value, dt.datetime | dt.date | dt.time):
            return self._string(value.isoformat(), walk)
        if isinstance(value, uuid.UUID | Decimal | PurePath):
            return self._string(str(value), walk)
        if isinstance(value, dt.timedelta):
            walk.budget -= _SCALAR_COST
            return value.total_seconds()
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value[: self.bytes_preview])
            walk.budget -= len(data) * 2 + 30
            size = value.nbytes if isinstance(value, memoryview) else len(value)
            return {"$bytes": size, "base64": base64.b64encode(data).decode("ascii")}
        if isinstance(value, BaseException):
            message = self._safe_str(value)
            return {"type": _type_name(value), "message": self._string(message, walk)}
        return None

    def _container(self, value: Any, depth: int, walk: _Walk) -> JSONValue:
        if isinstance(value, Mapping):
            return self._mapping(value, depth, walk)
        if isinstance(value, list | tuple):
            return self._sequence(value, depth, walk)
        if isinstance(value, Set):
            return self._sequence(sorted(value, key=self._safe_repr), depth, walk)
        if isinstance(value, pydantic.BaseModel):
            try:
                dumped = value.model_dump(mode="json")
            except Exception:  # cycles, unserialisable fields: walk the fields ourselves
                dumped = {name: getattr(value, name, None) for name in type(value).model_fields}
            return self._walk(dumped, depth, walk)
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self._mapping(fields, depth, walk)
        return self._string(self._repr(value), walk)

    def _mapping(self, value: Mapping[Any, Any], depth: int, walk: _Walk) -> dict[str, JSONValue]:
        out: dict[str, JSONValue] = {}
        total = len(value)
        limit = self.max_string_length
        secrets = self._key_cache if self.redact else None
        for count, (raw_key, item) in enumerate(value.items()):
            if count >= self.max_items:
                out["…"] = f"{total - count} more items"
                break
            if walk.budget < 0:
                out["…"] = f"{total - count} more items: size budget exceeded"
                break
            key = raw_key if type(raw_key) is str else self._key(raw_key)
            if secrets is not None and item is not None:
                secret = secrets.get(key)
                if secret is None:
                    secret = self.is_secret_key(key)
                if secret:
                    out[key] = REDACTED
                    walk.budget -= len(key) + 16
                    continue
            t = type(item)
            # Inlined scalar cases: most values in agent payloads are short strings/numbers.
            if t is str and len(item) <= limit and len(item) < walk.budget:
                walk.budget -= len(key) + len(item) + 6
                out[key] = item
            elif t is int or t is bool or item is None:
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
                    out[key] = self._unrepresentable(item)
        return out

    def _sequence(self, value: list[Any] | tuple[Any, ...], depth: int, walk: _Walk) -> JSONValue:
        out: list[JSONValue] = []
        limit = self.max_string_length
        for index, item in enumerate(value):
            if index >= self.max_items:
                out.append(more_items(len(value) - index))
                break
            if walk.budget < 0:
                out.append(f"…[{len(value) - index} more items: size budget exceeded]")
                break
            t = type(item)
            if t is str and len(item) <= limit and len(item) < walk.budget:
                walk.budget -= len(item) + 3
                out.append(item)
            elif t is int or t is bool or item is None:
                walk.budget -= _SCALAR_COST
                out.append(item)
            elif t is dict or t is list:
                out.append(self._enter(item, depth + 1, walk))
            else:
                try:
                    out.append(self._walk(item, depth + 1, walk))
                except Exception:
                    out.append(self._unrepresentable(item))
        return out

    def _key(self, key: Any) -> str:
        if isinstance(key, enum.Enum):
            key = key.value
        if type(key) in _ATOMIC:
            return str(key)
        return self._safe_str(key)

    def _repr(self, value: Any) -> str:
        text = self._safe_repr(value)
        limit = self.max_repr_length
        return text if len(text) <= limit else truncated(text[:limit], len(text) - limit)

    def _safe_repr(self, value: Any) -> str:
        try:
            text = repr(value)
        except Exception:
            return self._unrepresentable(value)
        return text if type(text) is str else self._unrepresentable(value)

    def _safe_str(self, value: Any) -> str:
        try:
            text = str(value)
        except Exception:
            return self._unrepresentable(value)
        return text if type(text) is str else self._unrepresentable(value)


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
