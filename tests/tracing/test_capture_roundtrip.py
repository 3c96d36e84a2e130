"""Captured params/results of real calls validate against the schemas derived for them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import inspect
from collections.abc import Callable, Iterator
from typing import Any, Literal, TypedDict

import pydantic
import pytest

from prefactor._tracing.capture import capture_mapping, capture_result
from prefactor.schemas import compile_schema, params_schema_for, result_schema_for


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


class Message(pydantic.BaseModel):
    role: Literal["user", "assistant"]
    content: str
    sent: dt.datetime | None = None


@dataclasses.dataclass
class Box:
    width: float
    tags: tuple[str, ...] = ()


class Usage(TypedDict):
    prompt_tokens: int
    completion_tokens: int


def chat(
    messages: list[Message],
    mode: Mode = Mode.FAST,
    temperature: float = 0.7,
    max_tokens: int | None = None,
    api_key: str = "sk-default",
) -> Usage:
    return {"prompt_tokens": len(messages), "completion_tokens": 1}


def pack(box: Box, *extra: int, **labels: str) -> Box:
    return box


def when(day: dt.date, ids: set[int], raw: bytes | None = None) -> dt.date:
    return day


def stream(n: int) -> Iterator[int]:
    yield from range(n)


def params_of(func: Callable[..., Any], *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The documented params shape of one call (the tracing layer binds the same way)."""
    sig = inspect.signature(func)
    bound = sig.bind(*args, **kwargs)
    bound.apply_defaults()
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        kind = sig.parameters[name].kind
        key = {inspect.Parameter.VAR_POSITIONAL: "args", inspect.Parameter.VAR_KEYWORD: "kwargs"}
        out[key.get(kind, name)] = (
            list(value) if kind is inspect.Parameter.VAR_POSITIONAL else value
        )
    return out


CALLS = [
    pytest.param(
        chat,
        ([Message(role="user", content="hi", sent=dt.datetime(2024, 1, 1))],),
        {"mode": Mode.SLOW, "api_key": "sk-real"},
        id="pydantic-enum-redacted-secret",
    ),
    pytest.param(chat, ([],), {"max_tokens": 5}, id="defaults"),
    pytest.param(pack, (Box(1.5, ("a",)), 1, 2), {"color": "red"}, id="dataclass-varargs"),
    pytest.param(when, (dt.date(2024, 2, 3), {3, 1}), {"raw": None}, id="date-set"),
]


@pytest.mark.parametrize(("func", "args", "kwargs"), CALLS)
def test_captured_params_validate_against_derived_params_schema(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    validator = compile_schema(params_schema_for(func))
    captured = capture_mapping(params_of(func, *args, **kwargs))
    assert validator.errors(captured) == []


@pytest.mark.parametrize(("func", "args", "kwargs"), CALLS)
def test_captured_result_validates_against_derived_result_schema(
    func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    schema = result_schema_for(func)
    assert schema is not None
    assert compile_schema(schema).errors(capture_result(func(*args, **kwargs))) == []


def test_collected_generator_output_validates_against_derived_result_schema() -> None:
    schema = result_schema_for(stream)
    assert schema is not None
    assert compile_schema(schema).errors(capture_result(list(stream(3)))) == []


def test_captured_params_with_wrong_type_fail_the_derived_schema() -> None:
    validator = compile_schema(params_schema_for(chat))
    captured = capture_mapping(params_of(chat, [{"role": "robot", "content": "x"}]))
    assert [path for path, _ in validator.errors(captured)] == ["$.messages[0].role"]
