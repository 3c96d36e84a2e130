"""The capture contract: the JSON each kind of Python value is recorded as, and its schema.

One table, :data:`FORMS`, serves both sides. The capturer
(:class:`prefactor._tracing.capture.Capturer`) finds a value's row by its type and
records the row's form; schema derivation (:mod:`prefactor._schemas.derive`) replaces
pydantic's JSON Schema for the row's pydantic core-schema types with the row's schema of
that form. A row that changes how a value is recorded therefore changes its schema with
it, and the property test in ``tests/schemas/test_contract_property.py`` holds the two
together for every type it can draw.

Where a value cannot be recorded as it is, the form carries a marker
(:mod:`prefactor._schemas.markers`); a violation located at one is not counted.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import ipaddress
import math
import sys
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    ItemsView,
    Iterable,
    Iterator,
    KeysView,
    Mapping,
    Sequence,
    Set,
    ValuesView,
)
from decimal import Decimal
from pathlib import PurePath
from typing import Any, Literal, TypeAlias

from prefactor._errors import PrefactorError
from prefactor._redaction import REDACTED, default_key_rules, redact_credentials
from prefactor._schemas.markers import ESCAPE_GROWTH, marker, unrepresentable

__all__ = [
    "FORMS",
    "INT_MAX",
    "INT_MIN",
    "NONFINITE",
    "Form",
    "NoForm",
    "encodable",
    "float_form",
    "int_form",
    "json_form",
    "key_form",
    "ordered",
    "records_fields",
    "row_for",
    "safe_repr",
    "safe_str",
    "text_form",
]

JSON: TypeAlias = "dict[str, JSON] | list[JSON] | str | int | float | bool | None"
Schema: TypeAlias = dict[str, Any]
Kind = Literal["leaf", "mapping", "model", "dataclass", "sequence", "view", "set", "repr"]

# --- encodable forms ----------------------------------------------------------------

NONFINITE = ("NaN", "Infinity", "-Infinity")
# The range the JSON encoder (orjson) writes: signed and unsigned 64-bit integers.
INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


# --- leaf forms --------------------------------------------------------------------------


def _converted(convert: Callable[[Any], Any], value: Any) -> str:
    try:
        text = convert(value)
    except Exception:
        return unrepresentable(value)
    return text if type(text) is str else unrepresentable(value)


def safe_str(value: Any) -> str:
    """``str(value)``, or the unrepresentable marker when that fails."""
    return _converted(str, value)


def safe_repr(value: Any) -> str:
    """``repr(value)``, or the unrepresentable marker when that fails."""
    return _converted(repr, value)


def encodable(text: str) -> bool:
    """Whether the JSON encoder can write ``text`` (it holds no lone surrogate).

    ASCII is known in constant time; anything else is checked with the UTF-16 codec,
    the fastest strict check CPython has (well under a microsecond per 1,000 chars).
    """
    if text.isascii():
        return True
    try:
        text.encode("utf-16-le")
    except UnicodeEncodeError:
        return False
    return True


def text_form(text: str) -> str:
    """``text`` as JSON can carry it: lone surrogates escaped (``\\udcff``), with a marker.

    ``os.fsdecode`` makes such strings from file names that are not UTF-8.
    """
    if encodable(text):
        return text
    escaped = text.encode("utf-8", "backslashreplace").decode("utf-8")
    count = (len(escaped) - len(text)) // ESCAPE_GROWTH
    return f"{escaped}{marker(f'escaped {count} lone surrogate' + ('s' if count > 1 else ''))}"


def int_form(value: int) -> int | str:
    """An int the encoder can write, else its digits as text with a marker."""
    if INT_MIN <= value <= INT_MAX:
        return value
    try:
        digits = str(value)
    except ValueError:  # more digits than the interpreter converts
        return marker(f"int of {value.bit_length()} bits")
    return f"{digits}{marker('int beyond 64 bits')}"


def float_form(value: float) -> float | str:
    """A finite float as it is; ``nan``, ``inf``, ``-inf`` as ``"NaN"``, ``"Infinity"``, ..."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return NONFINITE[0]
    return NONFINITE[1] if value > 0 else NONFINITE[2]


def _bytes_form(value: bytes | bytearray | memoryview, preview: int) -> JSON:
    size = value.nbytes if isinstance(value, memoryview) else len(value)
    head = bytes(value[:preview])
    return {"$bytes": size, "base64": base64.b64encode(head).decode("ascii")}


def _exception_form(value: BaseException, preview: int) -> JSON:
    return {"type": type(value).__qualname__, "message": safe_str(value)}


def key_form(key: Any) -> str:
    """A mapping key as JSON object keys must be: text (an Enum key by its value)."""
    if isinstance(key, enum.Enum):
        key = key.value
    if type(key) is str:
        return key
    if isinstance(key, str):
        return str.__str__(key)
    return safe_str(key)


def ordered(items: Iterable[Any]) -> list[Any]:
    """``items`` sorted when they can be (naturally, else by type and ``repr``), else as given.

    Keeps the record of a set the same from run to run.
    """
    kept = list(items)
    try:
        return sorted(kept)
    except Exception:  # mixed types, or comparisons that raise
        pass
    try:
        return sorted(kept, key=lambda v: (type(v).__qualname__, safe_repr(v)))
    except Exception:
        return kept


# --- the schemas of the forms --------------------------------------------------------------


def _float_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    if core.get("allow_inf_nan") is False:
        return default  # FiniteFloat and friends: the names are not values of the type
    # An enum, not a pattern: python-jsonschema explains enums in linear time.
    return {"anyOf": [default, {"enum": list(NONFINITE)}]}


_BYTES_SCHEMA: Schema = {
    "type": "object",
    "description": "bytes: the length and the first bytes, base64",
    "properties": {
        "$bytes": {"type": "integer", "minimum": 0},
        "base64": {"type": "string", "contentEncoding": "base64"},
    },
    "required": ["$bytes", "base64"],
}


def _bytes_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    return dict(_BYTES_SCHEMA)


def _set_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    # Distinct values may capture alike (two NaNs, long strings cut at the same place).
    return {key: value for key, value in default.items() if key != "uniqueItems"}


def _forms_of(values: Iterable[Any]) -> list[JSON] | None:
    try:
        return [json_form(v) for v in values]
    except NoForm:
        return None


def _listed_schema(default: Schema, forms: list[JSON] | None, plain: list[Any]) -> Schema:
    """``default`` with its ``enum``/``const`` listing ``forms`` instead of ``plain``."""
    if forms == plain:
        return default
    rest = {k: v for k, v in default.items() if k not in ("enum", "const", "type")}
    if forms is None:  # a value with no JSON form of its own: any value
        return rest
    return {**rest, "const": forms[0]} if len(forms) == 1 else {**rest, "enum": forms}


def _literal_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    expected = list(core.get("expected", ()))
    return _listed_schema(default, _forms_of(expected), expected)


def _enum_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    values = [member.value for member in core.get("members", ())]
    return _listed_schema(default, _forms_of(values), default.get("enum", []))


def _dict_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    keys = core.get("keys_schema", {})
    if "propertyNames" in default and not _text_keys(keys):
        # Keys are recorded as text; a schema of non-text keys (IntEnum, int) cannot hold.
        return {k: v for k, v in default.items() if k != "propertyNames"}
    return default


def _text_keys(core: Mapping[str, Any]) -> bool:
    kind = core.get("type")
    if kind == "str":
        return True
    if kind == "literal":
        return all(type(v) is str for v in core.get("expected", ()))
    return kind == "enum" and core.get("sub_type") == "str"


def _iterator_schema(default: Schema, core: Mapping[str, Any]) -> Schema:
    recorded = {"type": "string", "description": "an iterator, recorded as its repr"}
    return {"anyOf": [default, recorded]}


# --- the table -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Form:
    """One row of the contract.

    Attributes:
        value: the Python values of the row (for the docs).
        recorded: what they are recorded as (for the docs).
        schema_text: the schema of that form (for the docs).
        kind: how the capturer handles them: ``"leaf"`` (``form`` gives JSON, which is
            then capped like any value), a container kind, or ``"repr"``.
        types: the classes of the row (a subclass belongs to the first row it matches).
        form: for leaves, ``(value, bytes_preview) -> JSON``.
        core: pydantic core-schema types whose JSON Schema this row replaces.
        schema: ``(pydantic's schema, core schema) -> schema of the recorded form``.
        test: the row's class test beside ``types``, for what they cannot say
            (dataclasses; pydantic's classes, looked up once pydantic is loaded).
    """

    value: str
    recorded: str
    schema_text: str
    kind: Kind
    types: tuple[type, ...] = ()
    form: Callable[[Any, int], Any] | None = None
    core: tuple[str, ...] = ()
    schema: Callable[[Schema, Mapping[str, Any]], Schema] | None = None
    test: Callable[[type], bool] | None = None

    def covers(self, tp: type) -> bool:
        """Whether values of class ``tp`` belong to this row."""
        if self.types and issubclass(tp, self.types):
            return True
        return self.test is not None and self.test(tp)


def _is_dataclass(tp: type) -> bool:
    return dataclasses.is_dataclass(tp)


# pydantic is imported by schema derivation, not by capturing: a class is one of its
# classes only once it is loaded (no value can be one before), so the rows that name
# them look them up then. Rows are remembered per class, and a class's bases never change.
def _loaded(module: str, *names: str) -> tuple[type, ...]:
    found = sys.modules.get(module)
    return () if found is None else tuple(getattr(found, name) for name in names)


def _is_pydantic_url(tp: type) -> bool:
    urls = (*_loaded("pydantic_core", "Url", "MultiHostUrl"), *_loaded("pydantic", "AnyUrl"))
    return bool(urls) and issubclass(tp, urls)


def _is_pydantic_model(tp: type) -> bool:
    model = _loaded("pydantic", "BaseModel")
    return bool(model) and issubclass(tp, model)


def _duration(value: dt.timedelta) -> Any:
    from pydantic_core import to_jsonable_python  # ISO 8601, as pydantic writes durations

    return to_jsonable_python(value)


_TEXT = "its `str()`"

FORMS: tuple[Form, ...] = (
    Form("`None`, `bool`", "itself", "pydantic's", "leaf", (type(None), bool), lambda v, p: v),
    Form(
        "`Enum` member",
        "its value, recorded by its own row",
        "pydantic's, listing each value's recorded form",
        "leaf",
        (enum.Enum,),
        lambda v, p: v.value,
        core=("enum",),
        schema=_enum_schema,
    ),
    Form(
        "`str`",
        "itself; over the length cap cut with `…[truncated N chars]`; lone surrogates "
        "escaped with `…[escaped N lone surrogates]`; a URL's password `[REDACTED]`",
        "pydantic's (markers exempt)",
        "leaf",
        (str,),
        lambda v, p: str.__str__(v),
    ),
    Form(
        "`int`",
        "itself; beyond 64 bits, its digits with `…[int beyond 64 bits]`",
        "pydantic's (markers exempt)",
        "leaf",
        (int,),
        lambda v, p: int_form(int(v)),
    ),
    Form(
        "`float`",
        'itself; `nan`, `inf`, `-inf` as `"NaN"`, `"Infinity"`, `"-Infinity"`',
        'a number, or one of those three strings (`{"anyOf": [{"type": "number"}, {"enum": '
        '["NaN", "Infinity", "-Infinity"]}]}`)',
        "leaf",
        (float,),
        lambda v, p: float_form(float(v)),
        core=("float",),
        schema=_float_schema,
    ),
    Form(
        "`bytes`, `bytearray`, `memoryview`",
        '`{"$bytes": <length>, "base64": <the first 48 bytes>}`',
        "an object with those two properties",
        "leaf",
        (bytes, bytearray, memoryview),
        _bytes_form,
        core=("bytes",),
        schema=_bytes_schema,
    ),
    Form(
        "`datetime`, `date`, `time`",
        "ISO 8601 text (`isoformat()`)",
        "pydantic's: a string, `format` `date-time`, `date`, `time`",
        "leaf",
        (dt.datetime, dt.date, dt.time),
        lambda v, p: v.isoformat(),
    ),
    Form(
        "`timedelta`",
        'ISO 8601 duration text, as pydantic writes it (`"PT1M30S"`)',
        "pydantic's: a string, `format` `duration`",
        "leaf",
        (dt.timedelta,),
        lambda v, p: _duration(v),
    ),
    Form(
        "`Decimal`, `UUID`, `Path`, IP addresses, pydantic URLs",
        _TEXT,
        "pydantic's: a string",
        "leaf",
        (
            Decimal,
            uuid.UUID,
            PurePath,
            ipaddress.IPv4Address,
            ipaddress.IPv6Address,
            ipaddress.IPv4Network,
            ipaddress.IPv6Network,
            ipaddress.IPv4Interface,
            ipaddress.IPv6Interface,
        ),
        lambda v, p: str(v),
        test=_is_pydantic_url,
    ),
    Form(
        "exception",
        '`{"type": <class name>, "message": <str()>}`',
        "any value",
        "leaf",
        (BaseException,),
        _exception_form,
    ),
    Form(
        "pydantic model",
        "its fields (`model_dump()`, each value by its own row)",
        "pydantic's",
        "model",
        test=_is_pydantic_model,
    ),
    Form("dataclass", "its fields", "pydantic's", "dataclass", test=_is_dataclass),
    Form(
        "mapping",
        'an object, keys as text; over the item cap, the key `"…"` says how many more',
        "pydantic's (`propertyNames` only for text keys)",
        "mapping",
        (Mapping,),
        core=("dict",),
        schema=_dict_schema,
    ),
    Form(
        "`dict.keys()`, `.values()`, `.items()`",
        "a list, in the dict's order",
        "(not an annotation)",
        "view",
        (KeysView, ValuesView, ItemsView),
    ),
    Form(
        "`set`, `frozenset`",
        "a list, sorted when its items compare (a large set: the first items met, sorted)",
        "pydantic's array, without `uniqueItems`",
        "set",
        (Set,),
        core=("set", "frozenset"),
        schema=_set_schema,
    ),
    Form(
        "`list`, `tuple`, other sequences",
        "a list; over the item cap, a last item `…[N more items]`",
        "pydantic's (markers exempt)",
        "sequence",
        (Sequence,),
    ),
    Form(
        "iterator, generator",
        "its `repr()` (never consumed)",
        "`Iterable[T]`: an array of T or a string",
        "repr",
        (Iterator, AsyncIterator),
        core=("generator",),
        schema=_iterator_schema,
    ),
    Form(
        "`Literal[...]`",
        "each value by its own row",
        "the values' recorded forms",
        "leaf",
        core=("literal",),
        schema=_literal_schema,
    ),
    Form("anything else", "its `repr()`, truncated", "any value", "repr", (object,)),
)

_rows: dict[type, Form] = {}


def row_for(tp: type) -> Form:
    """The first row of :data:`FORMS` that covers ``tp`` (remembered per class)."""
    row = _rows.get(tp)
    if row is None:
        row = next(r for r in FORMS if r.covers(tp))
        if len(_rows) > 4096:  # classes made at run time must not grow this forever
            _rows.clear()
        _rows[tp] = row
    return row


def records_fields(tp: Any) -> bool:
    """Whether a result of class ``tp`` is recorded as its own fields (not under ``"value"``).

    Mappings (TypedDicts included), pydantic models other than ``RootModel``, and
    dataclasses; anything else is recorded as ``{"value": ...}``.
    """
    if not isinstance(tp, type):
        return False
    if _is_pydantic_model(tp):
        return not issubclass(tp, sys.modules["pydantic"].RootModel)
    return dataclasses.is_dataclass(tp) or issubclass(tp, Mapping)


# --- constants: defaults and literal values ------------------------------------------------


class NoForm(PrefactorError):
    """A constant has no recorded form of its own (an object recorded by its ``repr``).

    Internal: derivation catches it and leaves the constant out.
    """


_CONSTANT_DEPTH = 32
_PREVIEW = 48


def json_form(value: Any, depth: int = 0) -> JSON:
    """The recorded form of a constant (a default, a ``Literal`` value), without size caps.

    Secrets are redacted as the default capturer redacts them.

    Raises:
        NoForm: ``value`` (or something in it) would be recorded by its ``repr``, or it
            nests too deep.
    """
    if depth > _CONSTANT_DEPTH:
        raise NoForm
    t = type(value)
    if value is None or t is bool:
        return value  # type: ignore[no-any-return]
    if t is str:
        return redact_credentials(text_form(value))
    if t is int:
        return int_form(value)
    if t is float:
        return float_form(value)
    row = row_for(t)
    if row.kind == "leaf" and row.form is not None:
        return json_form(row.form(value, _PREVIEW), depth + 1)
    if row.kind == "mapping":
        secret = default_key_rules().matches
        out: dict[str, JSON] = {}
        for raw, item in value.items():
            key = key_form(raw)
            out[key] = REDACTED if item is not None and secret(key) else json_form(item, depth + 1)
        return out
    if row.kind in ("sequence", "view", "set"):
        items = ordered(value) if row.kind == "set" else value
        return [json_form(item, depth + 1) for item in items]
    raise NoForm
