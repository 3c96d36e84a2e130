"""JSON Schemas derived from a function's signature and type hints.

The documented payload shapes, which the tracing layer produces and these schemas describe:

* **params** is an object with one key per bound parameter name (``self``/``cls`` of
  methods left out); a ``*args`` parameter adds the key ``"args"`` (a list) and a
  ``**kwargs`` parameter the key ``"kwargs"`` (an object), whatever their names in the
  signature: ``{"query": "...", "limit": 5, "args": [...], "kwargs": {...}}``.
* **result** is the returned mapping / pydantic model / dataclass / TypedDict itself, and
  ``{"value": <returned value>}`` for anything else. A generator's result is the list of
  what it yielded (``{"value": [...]}``), or one joined string when it is annotated to
  yield ``str`` (:func:`yields_text`; ``""`` when it yielded nothing).
  A function annotated ``-> None`` or without a return annotation has no result schema
  (:func:`result_schema_for` returns ``None``): its result is not validated.

Derivation never raises: a type pydantic cannot describe becomes ``{}`` (any value) with
a ``description`` naming the type, and a signature that cannot be inspected gives a
permissive object schema that says so.
"""

from __future__ import annotations

import collections.abc as cabc
import contextlib
import dataclasses
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from typing import Any, NotRequired

import pydantic
from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python
from typing_extensions import TypedDict, is_typeddict

__all__ = ["description_for", "params_schema_for", "result_schema_for", "yields_text"]

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
            return TypeAdapter(tp).json_schema(mode="serialization", ref_template=_REF_TEMPLATE)
        except pydantic.PydanticUserError:
            if not is_typeddict(tp):
                raise
            portable = _portable_typeddict(tp)
            return TypeAdapter(portable).json_schema(
                mode="serialization", ref_template=_REF_TEMPLATE
            )

    def finish(self, schema: _Schema) -> _Schema:
        if self.defs:
            schema["$defs"] = self.defs
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
        item = {} if hint is inspect.Parameter.empty else builder.schema(hint)
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            key, prop = "args", {"type": "array", "items": item}
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            key, prop = "kwargs", {"type": "object", "additionalProperties": item}
        else:
            key, prop = param.name, item
            if param.default is inspect.Parameter.empty:
                required.append(key)
            else:
                # A default without a JSON form is simply not shown.
                with contextlib.suppress(Exception):
                    prop["default"] = to_jsonable_python(param.default)
        if param.name in docs and "description" not in prop:
            prop["description"] = docs[param.name]
        properties[key] = prop
    schema: _Schema = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return builder.finish(schema)


def _is_object_like(tp: Any) -> bool:
    """Whether values of ``tp`` are recorded as their own fields (not under ``"value"``)."""
    if isinstance(tp, type):
        if issubclass(tp, pydantic.BaseModel):
            return not issubclass(tp, pydantic.RootModel)
        if dataclasses.is_dataclass(tp) or is_typeddict(tp):
            return True
        return issubclass(tp, Mapping)
    origin = typing.get_origin(tp)
    return isinstance(origin, type) and issubclass(origin, Mapping)


def _value_wrapper(item: _Schema) -> _Schema:
    return {"type": "object", "properties": {"value": item}, "required": ["value"]}


def _strip_annotated(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def _union_members(tp: Any) -> tuple[Any, ...] | None:
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return typing.get_args(tp)
    return None


def _yielded(func: Any, tp: Any) -> Any:
    """The item type of a generator's return annotation ``tp``; ``None`` when not one."""
    origin = typing.get_origin(tp) or tp
    generator = inspect.isgeneratorfunction(func) or inspect.isasyncgenfunction(func)
    if origin in _GENERATOR_ORIGINS or (generator and origin in _ITERABLE_ORIGINS):
        args = typing.get_args(tp)
        return _strip_annotated(args[0]) if args else Any
    return None


def yields_text(func: Callable[..., Any]) -> bool:
    """Whether ``func`` is annotated to yield ``str`` (``Iterator[str]``, ``AsyncIterator[str]``).

    Its recorded result is then the yielded text joined (``""`` for no
    yields), and its result schema says a string.
    """
    func = _target(func)
    sig = _signature(func)
    if sig is None:
        return False
    tp = _hints(func, sig).get("return")
    return tp is not None and _yielded(func, _strip_annotated(tp)) is str


def result_schema_for(func: Callable[..., Any]) -> _Schema | None:
    """The JSON Schema of ``func``'s result payload, or ``None`` when it declares no result.

    See the module docstring for the result shape. ``Any``/``object`` give a permissive
    object schema (the value may be recorded either way).
    """
    func = _target(func)
    sig = _signature(func)
    if sig is None:
        return None
    hints = _hints(func, sig)
    if "return" not in hints:
        return None
    tp = _strip_annotated(hints["return"])
    if tp is None or tp is type(None):
        return None
    builder = _Builder()
    if tp is Any or tp is object:
        return {"type": "object", "description": "any result"}
    item = _yielded(func, tp)
    if item is not None:
        # The result of a generator is what it yielded, collected.
        if item is str:
            return _value_wrapper({"type": "string"})
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
