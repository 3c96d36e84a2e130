"""Schemas derived from signatures and type hints."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Generator, Iterator
from typing import Annotated, Any, Literal, Optional, TypedDict, Union

import pydantic
import pytest

from prefactor._schemas.derive import yields_text
from prefactor._tracing.capture import capture_result
from prefactor.schemas import (
    compile_schema,
    description_for,
    params_schema_for,
    result_schema_for,
)


class Address(pydantic.BaseModel):
    street: str
    city: str = "Paris"


class Person(pydantic.BaseModel):
    name: str
    address: Address


@dataclasses.dataclass
class Point:
    x: int
    y: int = 0


class Movie(TypedDict):
    title: str
    year: int


class Opaque:
    """A class pydantic cannot describe."""


def plain(query: str, limit: int = 5, *, verbose: bool = False) -> list[str]:
    """Search the index.

    Longer explanation that is not part of the summary.

    Args:
        query: what to look for,
            continued on a second line.
        limit: how many hits to return.
    """
    return [query] * limit


class Service:
    def method(self, x: int) -> int:
        return x

    @classmethod
    def build(cls, name: str) -> str:
        return name

    @staticmethod
    def helper(value: float) -> float:
        return value


def star(first: int, *args: str, **kwargs: float) -> None:
    return None


def untyped(a, b=2):  # type: ignore[no-untyped-def]
    return a


def forward(x: DoesNotExist, y: int) -> AlsoMissing:  # type: ignore[name-defined]  # noqa: F821
    return x


def opaque(thing: Opaque, n: int) -> Opaque:
    return thing


def complex_types(
    maybe: Optional[int],  # noqa: UP045
    either: Union[int, str],  # noqa: UP007
    mode: Literal["fast", "slow"],
    counts: list[dict[str, int]],
    person: Person,
    point: Point,
    movie: Movie,
) -> dict[str, int]:
    return {}


def returns_model() -> Person:
    raise NotImplementedError


def returns_dataclass() -> Point:
    return Point(1)


def returns_typeddict() -> Movie:
    return {"title": "x", "year": 1}


def returns_optional_model() -> Person | None:
    return None


def returns_int() -> int:
    return 1


def returns_none() -> None:
    return None


def returns_any() -> Any:
    return 1


def gen_ints() -> Iterator[int]:
    yield 1


def gen_text() -> Generator[str, None, None]:
    yield "a"


async def agen_models() -> AsyncIterator[Point]:
    yield Point(1)


def annotated_result() -> Annotated[int, "meta"]:
    return 1


def test_plain_function_params_have_types_defaults_and_required() -> None:
    schema = params_schema_for(plain)
    assert (schema["properties"]["limit"], schema["required"]) == (
        {"type": "integer", "default": 5, "description": "how many hits to return."},
        ["query"],
    )


def test_keyword_only_parameter_with_default_is_optional() -> None:
    schema = params_schema_for(plain)
    assert schema["properties"]["verbose"] == {"type": "boolean", "default": False}


def test_docstring_args_section_gives_multiline_descriptions() -> None:
    query = params_schema_for(plain)["properties"]["query"]
    assert query["description"] == "what to look for, continued on a second line."


def test_exclude_leaves_parameters_out_of_properties_and_required() -> None:
    schema = params_schema_for(plain, exclude={"query"})
    assert ("query" in schema["properties"], "required" in schema) == (False, False)


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        pytest.param(Service.method, ["x"], id="method-via-class"),
        pytest.param(Service().method, ["x"], id="bound-method"),
        pytest.param(Service.__dict__["build"], ["name"], id="classmethod-object"),
        pytest.param(Service.build, ["name"], id="bound-classmethod"),
        pytest.param(Service.__dict__["helper"], ["value"], id="staticmethod-object"),
    ],
)
def test_methods_leave_out_self_and_cls(func: Any, expected: list[str]) -> None:
    assert list(params_schema_for(func)["properties"]) == expected


def test_first_parameter_named_self_outside_a_class_is_kept() -> None:
    def local(self: int) -> None:
        return None

    assert list(params_schema_for(local)["properties"]) == ["self"]


def test_skip_first_flag_forces_leaving_out_the_first_parameter() -> None:
    assert list(params_schema_for(plain, skip_first=True)["properties"]) == ["limit", "verbose"]


def test_var_args_and_kwargs_become_args_array_and_kwargs_object() -> None:
    properties = params_schema_for(star)["properties"]
    assert (properties["args"], properties["kwargs"]) == (
        {"type": "array", "items": {"type": "string"}},
        {
            "type": "object",
            "additionalProperties": {
                "anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]
            },
        },
    )


def test_unannotated_parameters_accept_any_value() -> None:
    schema = params_schema_for(untyped)
    assert schema == {
        "type": "object",
        "properties": {"a": {}, "b": {"default": 2}},
        "required": ["a"],
    }


def test_unresolvable_forward_ref_becomes_any_with_a_description() -> None:
    properties = params_schema_for(forward)["properties"]
    assert properties["x"] == {"description": "any value (unresolved annotation 'DoesNotExist')"}
    assert properties["y"] == {"type": "integer"}


def test_unresolvable_forward_ref_in_return_gives_permissive_value() -> None:
    schema = result_schema_for(forward)
    assert schema is not None and compile_schema(schema).is_valid({"value": object.__name__})


def test_type_without_json_schema_becomes_any_with_a_description() -> None:
    thing = params_schema_for(opaque)["properties"]["thing"]
    assert thing == {"description": "any value (type Opaque has no JSON Schema)"}


def test_callable_without_signature_says_so_in_the_description() -> None:
    schema = params_schema_for(type)
    assert schema == {"type": "object", "description": "parameters of type could not be inspected"}


def test_complex_annotations_compile_and_keep_refs_resolvable() -> None:
    schema = params_schema_for(complex_types)
    validator = compile_schema(schema)
    good = {
        "maybe": None,
        "either": "x",
        "mode": "fast",
        "counts": [{"a": 1}],
        "person": {"name": "n", "address": {"street": "s", "city": "c"}},
        "point": {"x": 1, "y": 2},
        "movie": {"title": "t", "year": 1999},
    }
    assert validator.is_valid(good)
    assert sorted(schema["$defs"]) == ["Address"]  # nested model, hoisted to the top


@pytest.mark.parametrize(
    ("field", "bad"),
    [
        pytest.param("maybe", "x", id="optional"),
        pytest.param("either", 1.5, id="union"),
        pytest.param("mode", "medium", id="literal"),
        pytest.param("counts", [{"a": "1"}], id="list-of-dict"),
        pytest.param("person", {"name": "n", "address": {}}, id="nested-model"),
        pytest.param("point", {"y": 1}, id="dataclass"),
        pytest.param("movie", {"title": "t"}, id="typeddict"),
    ],
)
def test_complex_annotations_reject_wrong_values(field: str, bad: Any) -> None:
    good: dict[str, Any] = {
        "maybe": 1,
        "either": 1,
        "mode": "slow",
        "counts": [],
        "person": {"name": "n", "address": {"street": "s"}},
        "point": {"x": 1},
        "movie": {"title": "t", "year": 1},
    }
    validator = compile_schema(params_schema_for(complex_types))
    assert validator.is_valid(good) and not validator.is_valid({**good, field: bad})


@pytest.mark.parametrize(
    ("func", "good", "bad"),
    [
        pytest.param(
            returns_model, {"name": "n", "address": {"street": "s"}}, {"name": "n"}, id="model"
        ),
        pytest.param(returns_dataclass, {"x": 1, "y": 2}, {"value": {"x": 1}}, id="dataclass"),
        pytest.param(returns_typeddict, {"title": "t", "year": 1}, {"title": "t"}, id="typeddict"),
        pytest.param(complex_types, {"a": 1}, {"a": "1"}, id="dict"),
        pytest.param(returns_int, {"value": 3}, {"value": "3"}, id="int-wrapped"),
        pytest.param(plain, {"value": ["a"]}, ["a"], id="list-wrapped"),
        pytest.param(annotated_result, {"value": 1}, {"value": "1"}, id="annotated"),
        pytest.param(gen_ints, {"value": [1, 2]}, {"value": 1}, id="iterator-collected"),
        pytest.param(gen_text, {"value": "ab"}, {"value": ["a", "b"]}, id="str-generator-joined"),
        pytest.param(
            agen_models, {"value": [{"x": 1}]}, {"value": [{"y": 1}]}, id="async-generator"
        ),
        pytest.param(
            returns_optional_model, {"value": None}, {"value": 1}, id="optional-model-none"
        ),
        pytest.param(
            returns_optional_model,
            {"name": "n", "address": {"street": "s"}},
            {"name": 1, "address": {}},
            id="optional-model-fields",
        ),
    ],
)
def test_result_schema_follows_the_documented_result_shape(func: Any, good: Any, bad: Any) -> None:
    schema = result_schema_for(func)
    assert schema is not None
    validator = compile_schema(schema)
    assert (validator.is_valid(good), validator.is_valid(bad)) == (True, False)


@pytest.mark.parametrize(
    "func",
    [
        pytest.param(returns_none, id="none"),
        pytest.param(untyped, id="unannotated"),
        pytest.param(type, id="no-signature"),
    ],
)
def test_result_schema_is_none_without_a_declared_result(func: Any) -> None:
    assert result_schema_for(func) is None


def test_result_annotated_any_gives_a_permissive_object_schema() -> None:
    schema = result_schema_for(returns_any)
    assert schema == {"type": "object", "description": "any result"}


def test_result_of_opaque_type_is_wrapped_and_permissive() -> None:
    schema = result_schema_for(opaque)
    assert schema is not None and compile_schema(schema).is_valid({"value": "<Opaque>"})


def test_description_is_the_first_docstring_paragraph_on_one_line() -> None:
    assert description_for(plain) == "Search the index."


def test_description_without_docstring_is_none() -> None:
    assert description_for(star) is None


@pytest.mark.parametrize(
    "func",
    [
        pytest.param(plain, id="plain"),
        pytest.param(star, id="varargs"),
        pytest.param(untyped, id="untyped"),
        pytest.param(forward, id="forward-ref"),
        pytest.param(opaque, id="opaque"),
        pytest.param(complex_types, id="complex"),
        pytest.param(len, id="builtin"),
        pytest.param(print, id="builtin-varargs"),
    ],
)
def test_every_derived_params_schema_compiles(func: Any) -> None:
    assert compile_schema(params_schema_for(func)).schema["type"] == "object"


# --- generators: the result schema says what the decorator records (issue 10, item 7) ---


def stream_text() -> Iterator[str]:
    yield "a"


async def astream_text() -> AsyncIterator[str]:
    yield "a"


def stream_literals() -> Iterator[Literal["a", "b"]]:
    yield "a"


def stream_any() -> Iterator[Any]:
    yield "a"


def returns_an_iterator() -> Iterator[int]:  # not a generator: the iterator is returned
    return iter([1])


@pytest.mark.parametrize(
    ("func", "text"),
    [
        pytest.param(stream_text, True, id="iterator-of-str"),
        pytest.param(astream_text, True, id="async-iterator-of-str"),
        pytest.param(gen_text, True, id="generator-of-str"),
        pytest.param(gen_ints, False, id="iterator-of-int"),
        pytest.param(stream_literals, False, id="iterator-of-literal"),
        pytest.param(stream_any, False, id="iterator-of-any"),
        pytest.param(returns_an_iterator, False, id="not-a-generator"),
        pytest.param(plain, False, id="plain-function"),
    ],
)
def test_yields_text_only_for_generators_annotated_to_yield_str(func: Any, text: bool) -> None:
    assert yields_text(func) is text


@pytest.mark.parametrize(
    ("func", "recorded"),
    [
        pytest.param(stream_text, [{"value": ""}, {"value": "a"}, {"value": "ab"}], id="text"),
        pytest.param(
            gen_ints, [{"value": []}, {"value": [1]}, {"value": [1, 2]}], id="items-as-a-list"
        ),
        pytest.param(
            stream_any, [{"value": []}, {"value": ["a"]}, {"value": ["a", 2]}], id="any-items"
        ),
    ],
)
def test_a_generator_schema_accepts_its_result_for_zero_one_and_many_yields(
    func: Any, recorded: list[Any]
) -> None:
    schema = result_schema_for(func)
    assert schema is not None
    assert [compile_schema(schema).errors(r) for r in recorded] == [[], [], []]


def test_a_function_returning_an_iterator_accepts_its_recorded_repr() -> None:
    schema = result_schema_for(returns_an_iterator)
    assert schema is not None
    assert compile_schema(schema).errors(capture_result(returns_an_iterator())) == []


# --- schemas carry no secrets (issue 10, item 4) ---


class Settings(pydantic.BaseModel):
    api_key: str = "sk-model-default"
    endpoint: str = "https://svc:hunter2@api.example/v1"
    retries: int = 3


def connect(
    api_key: str = "sk-live-123",
    pwd: str = "p4ss",
    dsn: str = "postgres://bob:hunter2@db/app",
    settings: Settings | None = None,
    timeout: float = 2.5,
) -> None: ...


def test_defaults_of_secret_looking_parameters_are_left_out() -> None:
    properties = params_schema_for(connect)["properties"]
    assert "default" not in properties["api_key"] and "default" not in properties["pwd"]
    assert properties["timeout"]["default"] == 2.5


def test_a_url_password_in_a_default_is_redacted() -> None:
    properties = params_schema_for(connect)["properties"]
    assert properties["dsn"]["default"] == "postgres://bob:[REDACTED]@db/app"


def test_no_secret_default_survives_anywhere_in_the_schema() -> None:
    text = json.dumps(params_schema_for(connect))
    assert "sk-live-123" not in text and "p4ss" not in text
    assert "sk-model-default" not in text and "hunter2" not in text
    defs = params_schema_for(connect)["$defs"]["Settings"]["properties"]
    assert defs["retries"]["default"] == 3


def test_defaults_are_written_in_their_recorded_form() -> None:
    def odd(raw: bytes = b"\x00", gap: dt.timedelta = dt.timedelta(seconds=5)) -> None: ...

    properties = params_schema_for(odd)["properties"]
    assert (properties["raw"]["default"], properties["gap"]["default"]) == (
        {"$bytes": 1, "base64": "AA=="},
        "PT5S",
    )
