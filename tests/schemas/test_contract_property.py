"""The capture contract, as a property: the schema derived from a type accepts the capture
of every value of that type, and the JSON encoder can write that capture.

Hypothesis draws a type (scalars, containers, unions, TypedDicts, dataclasses and pydantic
models, nested), a value of it and a capturer (the default one, or one with tiny caps so
that truncation markers appear); the value is captured as a parameter and as a result and
checked against the schemas :func:`params_schema_for` and :func:`result_schema_for` derive
for a function annotated with that type.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import itertools
import os
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional, Union

import orjson
import pydantic
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typing_extensions import TypedDict

from prefactor._tracing.capture import Capturer
from prefactor.schemas import compile_schema, params_schema_for, result_schema_for


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 3


class Odd(enum.Enum):
    """Values whose recorded form is not the value pydantic would write."""

    RAW = b"\x00raw"
    PAIR = ("a", 1)
    HALF = 0.5


class Spec(NamedTuple):
    """A type hint, a strategy for its values, and whether those values are hashable."""

    hint: Any
    values: st.SearchStrategy[Any]
    hashable: bool = True


_names = itertools.count()

# Text with what needs care: non-ASCII, lone surrogates (os.fsdecode of non-UTF-8
# bytes), "@" and URLs with credentials.
_pieces = st.sampled_from(
    ["a", "é", "語", "@", " ", os.fsdecode(b"\xff"), "\ud800", "postgres://bob:pw@db/x"]
)
texts = st.one_of(st.text(max_size=12), st.lists(_pieces, max_size=6).map("".join))
ints = st.one_of(st.integers(), st.integers(min_value=2**64), st.integers(max_value=-(2**63) - 1))

SCALARS = [
    Spec(str, texts),
    Spec(int, ints),
    Spec(float, st.floats()),  # NaN and both infinities included
    Spec(bool, st.booleans()),
    Spec(type(None), st.none()),
    Spec(bytes, st.binary(max_size=80)),
    Spec(dt.datetime, st.datetimes(timezones=st.none() | st.just(dt.UTC))),
    Spec(dt.date, st.dates()),
    Spec(dt.time, st.times()),
    Spec(dt.timedelta, st.timedeltas()),
    Spec(Decimal, st.decimals().filter(lambda d: not d.is_snan())),  # sNaN cannot be hashed
    Spec(uuid.UUID, st.uuids()),
    Spec(Path, texts.map(Path)),
    Spec(Color, st.sampled_from(Color)),
    Spec(Level, st.sampled_from(Level)),
    Spec(Odd, st.sampled_from(Odd)),
    Spec(Literal["a", 1, True, None], st.sampled_from(["a", 1, True, None])),
    Spec(Literal[b"x", 2.5], st.sampled_from([b"x", 2.5])),
]


# Keys recorded as text although they are not strings.
KEYS = [
    Spec(int, ints),
    Spec(Level, st.sampled_from(Level)),
    Spec(Color, st.sampled_from(Color)),
    Spec(Literal["a", "b"], st.sampled_from(["a", "b"])),
    Spec(Literal[1, 2], st.sampled_from([1, 2])),
]


def _fields(children: list[Spec]) -> dict[str, Spec]:
    # "pin" is a secret-looking name: its value is redacted whatever its type.
    names = ["pin", *(f"f{i}" for i in range(1, len(children)))]
    return dict(zip(names, children, strict=True))


def _typed_dict(children: list[Spec]) -> Spec:
    fields = _fields(children)
    cls = TypedDict(f"TD{next(_names)}", {k: s.hint for k, s in fields.items()})  # type: ignore[operator]
    return Spec(cls, st.fixed_dictionaries({k: s.values for k, s in fields.items()}), False)


def _dataclass(children: list[Spec]) -> Spec:
    fields = _fields(children)
    cls = dataclasses.make_dataclass(f"DC{next(_names)}", [(k, s.hint) for k, s in fields.items()])
    return Spec(cls, st.builds(cls, **{k: s.values for k, s in fields.items()}), False)


def _model(children: list[Spec]) -> Spec:
    fields = _fields(children)
    cls = pydantic.create_model(  # type: ignore[call-overload]
        f"M{next(_names)}", **{k: (s.hint, ...) for k, s in fields.items()}
    )
    return Spec(
        cls,
        st.fixed_dictionaries({k: s.values for k, s in fields.items()}).map(
            lambda kw: cls.model_construct(**kw)
        ),
        False,
    )


def _extend(children: st.SearchStrategy[Spec]) -> st.SearchStrategy[Spec]:
    def hashable(spec: Spec) -> bool:
        return spec.hashable

    keys = st.one_of(texts, st.sampled_from(["api_key", "pin", "name"]))
    some = st.lists(children, min_size=1, max_size=3)
    return st.one_of(
        children.map(lambda s: Spec(list[s.hint], st.lists(s.values, max_size=6), False)),
        children.map(
            lambda s: Spec(
                tuple[s.hint, ...], st.lists(s.values, max_size=6).map(tuple), s.hashable
            )
        ),
        st.tuples(children, children).map(
            lambda p: Spec(
                tuple[p[0].hint, p[1].hint],
                st.tuples(p[0].values, p[1].values),
                p[0].hashable and p[1].hashable,
            )
        ),
        children.filter(hashable).map(
            lambda s: Spec(set[s.hint], st.sets(s.values, max_size=6), False)
        ),
        children.filter(hashable).map(
            lambda s: Spec(frozenset[s.hint], st.frozensets(s.values, max_size=6))
        ),
        children.map(
            lambda s: Spec(dict[str, s.hint], st.dictionaries(keys, s.values, max_size=4), False)
        ),
        st.tuples(st.sampled_from(KEYS), children).map(
            lambda p: Spec(
                dict[p[0].hint, p[1].hint],
                st.dictionaries(p[0].values, p[1].values, max_size=4),
                False,
            )
        ),
        children.map(lambda s: Spec(Optional[s.hint], st.none() | s.values, s.hashable)),  # noqa: UP045
        st.tuples(children, children).map(
            lambda p: Spec(
                Union[p[0].hint, p[1].hint],  # noqa: UP007
                p[0].values | p[1].values,
                p[0].hashable and p[1].hashable,
            )
        ),
        some.map(_typed_dict),
        some.map(_dataclass),
        some.map(_model),
    )


specs = st.recursive(st.sampled_from(SCALARS), _extend, max_leaves=6)
capturers = st.sampled_from(
    [
        Capturer(),
        Capturer(max_items=2, max_string_length=6, max_depth=3, max_total_size=120),
    ]
)


def annotated(hint: Any) -> Callable[..., Any]:
    """A function that takes and returns values of ``hint``."""

    def call(x: Any, pin: Any = None) -> Any:
        return x

    call.__annotations__ = {"x": hint, "pin": hint, "return": hint}
    return call


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=specs, capturer=capturers, data=st.data())
def test_the_schema_of_a_type_accepts_the_capture_of_every_value_of_it(
    spec: Spec, capturer: Capturer, data: st.DataObject
) -> None:
    value = data.draw(spec.values, label="value")
    func = annotated(spec.hint)
    params = capturer.capture_mapping({"x": value, "pin": value})
    assert compile_schema(params_schema_for(func)).errors(params) == []
    result = capturer.capture_result(value)
    result_schema = result_schema_for(func)
    if result_schema is not None:  # None for a function annotated "-> None"
        assert compile_schema(result_schema).errors(result) == []
    orjson.dumps([params, result])


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    spec=specs,
    # Markers take room, so a capture captured again may meet the size budget a little
    # earlier: the budget stays at its default here, the other caps are tiny.
    capturer=st.sampled_from([Capturer(), Capturer(max_items=2, max_string_length=6, max_depth=3)]),
    data=st.data(),
)
def test_capturing_a_capture_changes_nothing(
    spec: Spec, capturer: Capturer, data: st.DataObject
) -> None:
    # The lenient path snapshots arguments, then captures the bound params again.
    captured = capturer.capture_mapping({"x": data.draw(spec.values, label="value")})
    assert capturer.capture_mapping(captured) == captured
