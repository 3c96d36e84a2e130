"""JSON Schemas derived from a function's signature and type hints.

The documented payload shapes, which the tracing layer produces and these schemas describe:

* **params** is an object with one key per bound parameter name (``self``/``cls`` of
  methods left out); a ``*args`` parameter adds the key ``"args"`` (a list) and a
  ``**kwargs`` parameter the key ``"kwargs"`` (an object), whatever their names in the
  signature: ``{"query": "...", "limit": 5, "args": [...], "kwargs": {...}}``.
* **result** is the returned mapping / pydantic model / dataclass / TypedDict itself, and
  ``{"value": <returned value>}`` for anything else. A generator's result is what it
  yielded: one joined string (``{"value": "..."}``, ``""`` for no yields) when it is
  annotated to yield ``str`` (see :func:`yields_text`), else the list of its items
  (``{"value": [...]}``). A function annotated ``-> None`` or without a return
  annotation has no result schema (:func:`result_schema_for` returns ``None``): its
  result is not validated. A return annotation that cannot be resolved (a name imported
  under ``TYPE_CHECKING``) gives a permissive object schema.

Values are described as the capturer records them: pydantic generates each schema, and
the contract table (:data:`prefactor._schemas.forms.FORMS`) replaces what pydantic would
write for a type the capturer records differently (``bytes``, ``float`` with ``NaN``,
sets, ``Literal`` and ``Enum`` values). Schemas carry no secrets: the default of a
parameter or field with a secret-looking name is left out, and a URL's password in any
default is redacted (the rules of :mod:`prefactor._redaction`).

Derivation never raises: a type pydantic cannot describe becomes ``{}`` (any value) with
a ``description`` naming the type, and a signature that cannot be inspected gives a
permissive object schema that says so.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection
from typing import Any, NotRequired

import pydantic
from pydantic import TypeAdapter
from pydantic.json_schema import GenerateJsonSchema
from typing_extensions import TypedDict, is_typeddict

from prefactor._redaction import default_key_rules
from prefactor._schemas.forms import FORMS, NoForm, json_form, records_fields

__all__ = [
    "ContractJsonSchema",
    "description_for",
    "params_schema_for",
    "result_schema_for",
    "yields_text",
]

_Schema = dict[str, Any]
_REF_TEMPLATE = "#/$defs/{model}"
_GENERATOR_ORIGINS = frozenset(
    {
        cabc.Iterator,
        cabc.Generator,
        cabc.AsyncIterator,
        cabc.AsyncGenerator,
    }
)
_ITERABLE_ORIGINS = frozenset({cabc.Iterable, cabc.AsyncIterable})
_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters)\s*:\s*$")
_ARG_LINE = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _replacing(core: str, row_schema: Callable[[_Schema, Any], _Schema]) -> Any:
    base = getattr(GenerateJsonSchema, f"{core}_schema")

    def method(self: GenerateJsonSchema, schema: Any) -> _Schema:
        return row_schema(base(self, schema), schema)

    method.__name__ = f"{core}_schema"
    return method


def _encode_default(self: GenerateJsonSchema, dft: Any) -> Any:
    try:
        return json_form(dft)
    except NoForm:
        return GenerateJsonSchema.encode_default(self, dft)


# pydantic's generator with the contract table's schemas for the types the capturer
# records differently, and defaults written in their recorded form.
ContractJsonSchema: type[GenerateJsonSchema] = type(
    "ContractJsonSchema",
    (GenerateJsonSchema,),
    {
        "encode_default": _encode_default,
        **{
            f"{core}_schema": _replacing(core, row.schema)
            for row in FORMS
            if row.schema is not None
            for core in row.core
        },
    },
)


def _scrub(schema: Any) -> None:
    """Drop the defaults and examples of secret-looking properties, at every depth."""
    secret = default_key_rules().matches
    if isinstance(schema, dict):
        properties = schema.get("properties")
        if isinstance(properties, dict):
            for name, prop in properties.items():
                if isinstance(prop, dict) and secret(name):
                    prop.pop("default", None)
                    prop.pop("examples", None)
        for value in schema.values():
            _scrub(value)
    elif isinstance(schema, list):
        for value in schema:
            _scrub(value)


def _target(func: Any) -> Any:
    """The plain function behind a classmethod/staticmethod object."""
    if isinstance(func, classmethod | staticmethod):
        return func.__func__
    return func


def _type_name(tp: Any) -> str:
    if isinstance(tp, str):
        return tp
    name = getattr(tp, "__qualname__", None) or getattr(tp, "__name__", None)
    return name if isinstance(name, str) and not typing.get_args(tp) else repr(tp)


def _hints(func: Any, sig: inspect.Signature) -> dict[str, Any]:
    """Resolved annotations; ones that do not resolve stay strings (later "any value")."""
    try:
        return typing.get_type_hints(func, include_extras=True)
    except Exception:  # one bad forward ref (or broken __annotations__): resolve one by one
        raw = {n: p.annotation for n, p in sig.parameters.items()}
        raw["return"] = sig.return_annotation
        namespace = getattr(func, "__globals__", None)
        return {
            n: _resolve(a, namespace) for n, a in raw.items() if a is not inspect.Parameter.empty
        }


def _resolve(annotation: Any, namespace: dict[str, Any] | None) -> Any:
    if not isinstance(annotation, str):
        return annotation
    holder = types.SimpleNamespace(__annotations__={"x": annotation})
    try:
        return typing.get_type_hints(holder, globalns=namespace, include_extras=True)["x"]
    except Exception:
        return annotation


def _portable_typeddict(tp: Any) -> Any:
    """A ``typing_extensions`` copy of a ``typing.TypedDict`` (pydantic refuses those < 3.12)."""
    hints = typing.get_type_hints(tp, include_extras=True)
    required = getattr(tp, "__required_keys__", frozenset(hints))
    fields: dict[str, Any] = {}
    for name, hint in hints.items():
        field = _portable_typeddict(hint) if is_typeddict(hint) else hint
        fields[name] = field if name in required else NotRequired[field]
    return TypedDict(tp.__name__, fields)  # type: ignore[operator]


class _Builder:
    """Schemas of several types that share one top-level ``$defs``."""

    def __init__(self) -> None:
        self.defs: _Schema = {}

    def schema(self, tp: Any) -> _Schema:
        if tp is Any or tp is object:
            return {}
        if isinstance(tp, str | typing.ForwardRef):
            name = tp if isinstance(tp, str) else tp.__forward_arg__
            return {"description": f"any value (unresolved annotation {name!r})"}
        try:
            produced = self._generate(tp)
        except Exception:  # arbitrary classes, callables, ...: describe, never fail
            return {"description": f"any value (type {_type_name(tp)} has no JSON Schema)"}
        defs = produced.pop("$defs", {})
        for key, value in defs.items():
            if self.defs.get(key, value) != value:
                # Two different types share a name: inline nothing, just stay permissive.
                return {"description": f"any value (type {_type_name(tp)})"}
        self.defs.update(defs)
        return produced

    @staticmethod
    def _generate(tp: Any) -> _Schema:
        try:
            adapter = TypeAdapter(tp)
        except pydantic.PydanticUserError:
            if not is_typeddict(tp):
                raise
            adapter = TypeAdapter(_portable_typeddict(tp))
        return adapter.json_schema(
            mode="serialization", ref_template=_REF_TEMPLATE, schema_generator=ContractJsonSchema
        )

    def finish(self, schema: _Schema) -> _Schema:
        if self.defs:
            schema["$defs"] = self.defs
        _scrub(schema)
        return schema


def _skip_first(func: Any, params: list[inspect.Parameter]) -> bool:
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    if params[0].name not in ("self", "cls"):
        return False
    parts = getattr(func, "__qualname__", "").split(".")
    return len(parts) > 1 and parts[-2] != "<locals>"


def _arg_docs(func: Any) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section."""
    doc = inspect.getdoc(func) or ""
    found: dict[str, str] = {}
    current: str | None = None
    indent: int | None = None
    inside = False
    for line in doc.splitlines():
        if _ARGS_HEADER.match(line):
            inside, current, indent = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent or (depth == 0 and line.rstrip().endswith(":")):
            inside = False
            continue
        match = _ARG_LINE.match(line.strip()) if depth == indent else None
        if match:
            current = match.group(1).lstrip("*")
            found[current] = match.group(3).strip()
        elif current is not None:
            found[current] = f"{found[current]} {line.strip()}".strip()
    return found


def _signature(func: Any) -> inspect.Signature | None:
    try:
        return inspect.signature(func)
    except (TypeError, ValueError):
        return None


def params_schema_for(
    func: Callable[..., Any],
    *,
    exclude: Collection[str] = (),
    skip_first: bool | None = None,
) -> _Schema:
    """The JSON Schema of ``func``'s params payload (see the module docstring for its shape).

    Args:
        func: a function, method, classmethod/staticmethod object or other callable.
        exclude: parameter names left out of the schema (and of ``required``).
        skip_first: leave out the first parameter; by default it is left out when it is
            named ``self``/``cls`` and ``func`` is defined in a class.
    """
    func = _target(func)
    sig = _signature(func)
    if sig is None:
        name = getattr(func, "__qualname__", repr(func))
        return {"type": "object", "description": f"parameters of {name} could not be inspected"}
    hints = _hints(func, sig)
    params = list(sig.parameters.values())
    if skip_first is None:
        skip_first = _skip_first(func, params)
    if skip_first and params:
        params = params[1:]
    docs = _arg_docs(func)
    builder = _Builder()
    properties: _Schema = {}
    required: list[str] = []
    for param in params:
        if param.name in exclude:
            continue
        hint = hints.get(param.name, inspect.Parameter.empty)
        item: _Schema = {} if hint is inspect.Parameter.empty else builder.schema(hint)
        prop: _Schema
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            key, prop = "args", {"type": "array", "items": item}
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            key, prop = "kwargs", {"type": "object", "additionalProperties": item}
        else:
            key, prop = param.name, item
            if param.default is inspect.Parameter.empty:
                required.append(key)
            else:
                # A default without a recorded form of its own is simply not shown.
                with contextlib.suppress(Exception):
                    prop["default"] = json_form(param.default)
        if param.name in docs and "description" not in prop:
            prop["description"] = docs[param.name]
        properties[key] = prop
    schema: _Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return builder.finish(schema)


def _is_object_like(tp: Any) -> bool:
    """Whether values of ``tp`` are recorded as their own fields (not under ``"value"``)."""
    return records_fields(tp) or records_fields(typing.get_origin(tp))


def _value_wrapper(item: _Schema) -> _Schema:
    return {"type": "object", "properties": {"value": item}, "required": ["value"]}


def _plain_type(tp: Any) -> Any:
    """``tp`` without ``Annotated``; a type variable as its bound (constraints: their union)."""
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    if isinstance(tp, typing.TypeVar):
        if tp.__bound__ is not None:
            return _plain_type(tp.__bound__)
        constraints = tp.__constraints__
        return typing.Union[constraints] if constraints else Any  # noqa: UP007
    return tp


def _union_members(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _unresolved(tp: Any) -> str | None:
    """The text of an annotation that could not be resolved (in ``tp`` or one of its members)."""
    if isinstance(tp, str):
        return tp
    if isinstance(tp, typing.ForwardRef):
        return tp.__forward_arg__
    for member in _union_members(tp) or ():
        found = _unresolved(member)
        if found is not None:
            return found
    return None


def _is_generator(func: Any) -> bool:
    target = inspect.unwrap(func)
    return inspect.isgeneratorfunction(target) or inspect.isasyncgenfunction(target)


def _yielded(tp: Any) -> Any:
    """The item type a generator's return annotation names (``Any`` when it names none)."""
    origin = typing.get_origin(tp) or tp
    if origin in _GENERATOR_ORIGINS or origin in _ITERABLE_ORIGINS:
        args = typing.get_args(tp)
        return _plain_type(args[0]) if args else Any
    return Any


def _return_hint(func: Any) -> Any:
    """The return annotation of ``func`` (``inspect.Parameter.empty`` when it has none)."""
    sig = _signature(func)
    if sig is None:
        return inspect.Parameter.empty
    return _hints(func, sig).get("return", inspect.Parameter.empty)


def yields_text(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is a generator whose result is recorded as one joined string.

    True when it is annotated to yield ``str`` (``Iterator[str]``,
    ``AsyncIterator[str]``, ``Generator[str, ...]``, ``Iterable[str]``, a ``str``
    subclass): its result is ``{"value": "<what it yielded, joined>"}``, ``""`` when it
    yielded nothing. Any other generator's result is the list of its items. The
    decorator decides with this when it is applied; :func:`result_schema_for` describes
    the same.
    """
    func = _target(func)
    if not _is_generator(func):
        return False
    item = _yielded(_plain_type(_return_hint(func)))
    return isinstance(item, type) and issubclass(item, str)


def result_schema_for(func: Callable[..., Any]) -> _Schema | None:
    """The JSON Schema of ``func``'s result payload, or ``None`` when it declares no result.

    See the module docstring for the result shape. ``Any``/``object``, a type variable
    without a bound and an annotation that cannot be resolved give a permissive object
    schema (the value may be recorded either way).
    """
    func = _target(func)
    hint = _return_hint(func)
    if hint is inspect.Parameter.empty:
        return None
    tp = _plain_type(hint)
    if tp is None or tp is type(None):
        return None
    unresolved = _unresolved(tp)
    if unresolved is not None:
        note = f"any result (unresolved annotation {unresolved!r})"
        return {"type": "object", "description": note}
    if tp is Any or tp is object:
        return {"type": "object", "description": "any result"}
    builder = _Builder()
    if _is_generator(func):  # the result of a generator is what it yielded, collected
        if yields_text(func):
            return _value_wrapper({"type": "string"})
        item = _yielded(tp)
        return builder.finish(_value_wrapper({"type": "array", "items": builder.schema(item)}))
    members = _union_members(tp)
    if members is not None and any(_is_object_like(m) for m in members):
        objects = [builder.schema(m) for m in members if _is_object_like(m)]
        others = [m for m in members if not _is_object_like(m)]
        if others:
            rest = others[0] if len(others) == 1 else typing.Union[tuple(others)]  # noqa: UP007
            objects.append(_value_wrapper(builder.schema(rest)))
        return builder.finish({"anyOf": objects})
    if _is_object_like(tp):
        return builder.finish(builder.schema(tp))
    return builder.finish(_value_wrapper(builder.schema(tp)))


def description_for(func: Callable[..., Any]) -> str | None:
    """The first paragraph of ``func``'s docstring, on one line; ``None`` when it has none."""
    try:
        doc = inspect.getdoc(_target(func))
    except Exception:
        return None
    if not doc:
        return None
    first = doc.strip().split("\n\n", 1)[0]
    return " ".join(line.strip() for line in first.splitlines()) or None
