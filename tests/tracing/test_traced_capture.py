"""Whatever a traced function receives or returns, the call works and the span is recorded."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import math
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder


class Colour(enum.Enum):
    RED = "red"


class Model(BaseModel):
    name: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque thing>"


class BrokenRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr for you")


def _cycle() -> list[Any]:
    items: list[Any] = [1]
    items.append(items)
    return items


@traced("function:echo", auto_register=True)
def echo(value: Any) -> Any:
    return value


BAD_VALUES = [
    pytest.param(Model(name="m"), {"name": "m"}, id="pydantic"),
    pytest.param(Point(1, 2), {"x": 1, "y": 2}, id="dataclass"),
    pytest.param(dt.datetime(2026, 1, 2, 3, 4, 5), "2026-01-02T03:04:05", id="datetime"),
    pytest.param(uuid.UUID(int=1), "00000000-0000-0000-0000-000000000001", id="uuid"),
    pytest.param(Colour.RED, "red", id="enum"),
    pytest.param(b"\x00\x01", {"$bytes": 2, "base64": "AAE="}, id="bytes"),
    pytest.param({3, 1, 2}, [1, 2, 3], id="set"),
    pytest.param(Path("/tmp/x"), "/tmp/x", id="path"),
    pytest.param(Decimal("1.5"), "1.5", id="decimal"),
    pytest.param(math.nan, "NaN", id="nan"),
    pytest.param(math.inf, "Infinity", id="infinity"),
    pytest.param(Opaque(), "<Opaque thing>", id="no-json-form"),
    pytest.param(_cycle(), [1, "<cycle>"], id="cycle"),
]


@pytest.mark.parametrize(("value", "captured"), BAD_VALUES)
def test_any_value_is_captured_without_raising(
    recorder: Recorder, value: Any, captured: Any
) -> None:
    assert echo(value) is value
    (span,) = recorder.trace().spans
    assert span.status == "complete"
    assert span.params == {"value": captured}


def test_a_value_whose_repr_raises_is_still_recorded(recorder: Recorder) -> None:
    value = BrokenRepr()
    assert echo(value) is value
    (span,) = recorder.trace().spans
    assert span.params["value"].startswith("<unrepresentable")


def test_arguments_are_captured_at_call_time(recorder: Recorder) -> None:
    @traced
    def mutate(items: list[int]) -> list[int]:
        items.append(99)
        return items

    data = [1, 2]
    out = mutate(data)
    out.append(100)
    (span,) = recorder.trace().spans
    assert span.params == {"items": [1, 2]}
    assert span.result == {"value": [1, 2, 99]}


def test_secret_looking_parameters_are_redacted(recorder: Recorder) -> None:
    @traced
    def call_api(prompt: str, api_key: str, max_tokens: int) -> dict[str, str]:
        return {"text": prompt, "authorization": "Bearer sk-live"}

    call_api("hi", api_key="sk-secret", max_tokens=5)
    (span,) = recorder.trace().spans
    assert span.params == {"prompt": "hi", "api_key": "[REDACTED]", "max_tokens": 5}
    assert span.result == {"text": "hi", "authorization": "[REDACTED]"}


def test_huge_payloads_are_truncated_with_a_marker(recorder: Recorder) -> None:
    echo("x" * 50_000)
    (span,) = recorder.trace().spans
    assert len(span.params["value"]) < 11_000
    assert span.params["value"].endswith("…[truncated 40000 chars]")


async def test_fastapi_endpoint_keeps_working_when_traced(recorder: Recorder) -> None:
    app = FastAPI()

    @app.get("/items/{item_id}")
    @traced
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        response = await client.get("/items/5", params={"q": "x"})
    assert response.json() == {"item_id": 5, "q": "x"}
    (span,) = recorder.trace().spans
    assert span.params == {"item_id": 5, "q": "x"}
