"""Schema validation of params and result: strict raises precisely, lenient flags and counts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from prefactor import _runtime as runtime
from prefactor._errors import SchemaValidationError
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder

LLM_PARAMS = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["user", "assistant", "system"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
            },
        },
    },
    "required": ["model", "messages"],
}
LLM_RESULT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}


def _registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register_type("agent:llm", LLM_PARAMS, LLM_RESULT, title="LLM call")
    return registry


@pytest.fixture
def strict() -> Iterator[Recorder]:
    rec = Recorder.install(strict=True, registry=_registry())
    yield rec
    runtime.shutdown()


@pytest.fixture
def lenient() -> Iterator[Recorder]:
    rec = Recorder.install(strict=False, registry=_registry())
    yield rec
    runtime.shutdown()


body_ran: list[str] = []


@traced("agent:llm")
def llm(model: Any, messages: list[dict[str, Any]]) -> dict[str, Any]:
    body_ran.append(model)
    return {"text": "hi"} if model != "broken-result" else {"text": 42}


GOOD = [{"role": "user", "content": "hello"}]


def test_valid_call_passes_in_strict_mode(strict: Recorder) -> None:
    assert llm("gpt", GOOD) == {"text": "hi"}
    span = strict.trace().span("agent:llm")
    assert (span.status, span.violations) == ("complete", [])


def test_strict_params_violation_raises_before_the_body_runs(strict: Recorder) -> None:
    body_ran.clear()
    with pytest.raises(SchemaValidationError) as info:
        llm("gpt", [{"role": "bot", "content": "x"}])
    err = info.value
    assert body_ran == []
    assert (err.span_type, err.side, err.path) == ("agent:llm", "params", "$.messages[0].role")
    assert "'bot' is not one of" in err.reason
    assert str(err).startswith("agent:llm params at $.messages[0].role: 'bot' is not one of")


def test_strict_params_violation_names_a_missing_property(strict: Recorder) -> None:
    with pytest.raises(SchemaValidationError) as info:
        llm("gpt", [{"role": "user"}])
    assert (info.value.path, info.value.reason) == (
        "$.messages[0]",
        "'content' is a required property",
    )


def test_strict_result_violation_raises_after_the_body_returns(strict: Recorder) -> None:
    body_ran.clear()
    with pytest.raises(SchemaValidationError) as info:
        llm("broken-result", GOOD)
    assert body_ran == ["broken-result"]
    assert (info.value.side, info.value.path) == ("result", "$.text")
    assert info.value.reason == "42 is not of type 'string'"
    span = strict.trace().span("agent:llm")
    assert span.status == "failed"
    assert span.result is not None
    assert span.result["error"]["type"] == "SchemaValidationError"


def test_strict_validation_applies_to_coroutines(strict: Recorder) -> None:
    @traced("agent:llm")
    async def allm(model: str, messages: list[dict[str, Any]]) -> dict[str, Any]:
        return {"text": "ok"}

    with pytest.raises(SchemaValidationError):
        asyncio.run(allm(model=3, messages=GOOD))  # type: ignore[arg-type]


def test_unregistered_span_type_is_an_error_in_strict_mode(strict: Recorder) -> None:
    @traced("agent:unknown")
    def f() -> None:
        return None

    with pytest.raises(SchemaValidationError, match="not registered"):
        f()


def test_lenient_mode_sends_the_span_flagged_and_counts_it(
    lenient: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="prefactor"):
        llm("gpt", [{"role": "bot", "content": "x"}])
        llm("gpt", [{"role": "bot", "content": "y"}])
    spans = lenient.trace().spans_of_type("agent:llm")
    assert [s.status for s in spans] == ["complete", "complete"]
    assert spans[0].violations == [
        {"side": "params", "path": "$.messages[0].role", "reason": spans[0].violations[0]["reason"]}
    ]
    assert "'bot' is not one of" in spans[0].violations[0]["reason"]
    assert runtime.stats()["schema_violations"] == 2
    warnings = [r for r in caplog.records if "break their schema" in r.getMessage()]
    assert len(warnings) == 1


def test_lenient_result_violation_is_flagged(lenient: Recorder) -> None:
    llm("broken-result", GOOD)
    span = lenient.trace().span("agent:llm")
    assert span.status == "complete"
    assert [(v["side"], v["path"]) for v in span.violations] == [("result", "$.text")]


def test_lenient_unregistered_type_is_sent_flagged(lenient: Recorder) -> None:
    @traced("agent:unknown")
    def f() -> int:
        return 1

    assert f() == 1
    span = lenient.trace().span("agent:unknown")
    assert span.violations[0]["reason"] == "span type is not registered in the schema registry"
    assert runtime.stats()["unregistered_span_types"] == 1


class Query(BaseModel):
    text: str
    limit: int = 3


class Answer(BaseModel):
    items: list[str]


def test_derived_schemas_validate_typed_functions_strictly(strict: Recorder) -> None:
    @traced
    def search(query: Query, mode: Literal["fast", "deep"] = "fast") -> Answer:
        return Answer(items=[query.text] * query.limit)

    assert search(Query(text="a", limit=2)).items == ["a", "a"]
    span = strict.trace().spans[-1]
    assert span.params == {"query": {"text": "a", "limit": 2}, "mode": "fast"}
    assert span.result == {"items": ["a", "a"]}
    with pytest.raises(SchemaValidationError) as info:
        search(Query(text="a"), mode="slow")  # type: ignore[arg-type]
    assert (info.value.side, info.value.path) == ("params", "$.mode")


def test_custom_extractors_are_not_checked_against_the_hints(strict: Recorder) -> None:
    @traced(params=lambda p: {"count": len(p["items"])}, result=lambda r: {"total": sum(r)})
    def total(items: list[int]) -> list[int]:
        return items

    assert total([1, 2]) == [1, 2]
    span = strict.trace().spans[-1]
    assert (span.params, span.result, span.violations) == ({"count": 2}, {"total": 3}, [])
