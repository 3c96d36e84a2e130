"""Truncation never causes a violation: ``CompiledSchema.errors`` exempts capture markers.

The SDK (``Tracer.check``) and the server's store both ask ``errors``, so they agree.
Violations the user's values cause are still reported next to markers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional, TypedDict

import pydantic
import pytest
from store_helpers import the_only_span

import prefactor
from prefactor import _runtime as runtime
from prefactor import tool
from prefactor._tracing.capture import Capturer
from prefactor.schemas import compile_schema, find_markers, params_schema_for

tiny = Capturer(max_items=2, max_string_length=5, max_depth=2, max_total_size=10_000)


class Point(TypedDict):
    x: int
    y: int


class Row(pydantic.BaseModel):
    name: str
    tags: list[str]
    size: int


def ids(ids: list[int]) -> None: ...
def maybe_ids(ids: Optional[list[int]]) -> None: ...  # noqa: UP045
def counts(counts: dict[str, int]) -> None: ...
def choice(choice: dict[Literal["a", "b", "c"], int]) -> None: ...
def pair(pair: tuple[int, int, int]) -> None: ...
def row(row: Row) -> None: ...
def point(point: Point) -> None: ...
def name(name: str) -> None: ...
def big(n: int) -> None: ...
def pin(pin: int) -> None: ...
def deep(tree: dict[str, dict[str, dict[str, int]]]) -> None: ...


def errors_of(func: Any, capturer: Capturer = tiny, **params: Any) -> list[tuple[str, str]]:
    captured = capturer.capture_mapping(params)
    assert find_markers(captured), "the case must leave a marker"
    return compile_schema(params_schema_for(func)).errors(captured)


budget = Capturer(max_total_size=10)


@pytest.mark.parametrize(
    ("func", "params", "capturer"),
    [
        pytest.param(ids, {"ids": list(range(10))}, tiny, id="list-over-the-item-cap"),
        pytest.param(maybe_ids, {"ids": list(range(10))}, tiny, id="capped-list-inside-any-of"),
        pytest.param(
            counts, {"counts": {f"k{i}": i for i in range(5)}}, tiny, id="mapping-more-key"
        ),
        pytest.param(choice, {"choice": {"a": 1, "b": 2, "c": 3}}, tiny, id="more-key-vs-names"),
        pytest.param(pair, {"pair": (1, 2, 3)}, tiny, id="fixed-tuple-cut-short"),
        pytest.param(row, {"row": Row(name="n", tags=["a"], size=1)}, tiny, id="model-fields-cut"),
        pytest.param(point, {"point": Point(x=1, y=2)}, budget, id="typed-dict-cut-by-the-budget"),
        pytest.param(name, {"name": "a long name"}, tiny, id="string-over-the-length-cap"),
        pytest.param(big, {"n": 2**80}, tiny, id="int-beyond-64-bits"),
        pytest.param(pin, {"pin": 1234}, tiny, id="redacted-int"),
        pytest.param(deep, {"tree": {"a": {"b": {"c": 1}}}}, tiny, id="depth-cap"),
    ],
)
def test_a_violation_located_at_a_marker_is_not_one(
    func: Any, params: dict[str, Any], capturer: Capturer
) -> None:
    assert errors_of(func, capturer, **params) == []


def test_a_real_violation_next_to_a_marker_is_still_reported() -> None:
    assert errors_of(ids, ids=[0, "one", *range(10)]) == [
        ("$.ids[1]", "'one' is not of type 'integer'")
    ]


def test_a_capped_container_of_the_wrong_type_is_still_reported() -> None:
    assert errors_of(counts, counts=list(range(10))) == [
        ("$.counts", "[0, 1, '…[8 more items]'] is not of type 'object'")
    ]


def test_is_valid_stays_the_quick_check_of_the_schema_as_written() -> None:
    validator = compile_schema(params_schema_for(ids))
    captured = tiny.capture_mapping({"ids": list(range(10))})
    assert (validator.is_valid(captured), validator.errors(captured)) == (False, [])


def test_find_markers_lists_every_marker_with_its_path() -> None:
    captured = tiny.capture_mapping(
        {"ids": list(range(5)), "more": {"text": "abcdefgh", "api_key": "sk"}}
    )
    assert find_markers(captured) == [
        ("$.ids[2]", "…[3 more items]"),
        ("$.more.text", "abcde…[truncated 3 chars]"),
        ("$.more.api_key", "[REDACTED]"),
    ]


def test_find_markers_of_an_untouched_payload_is_empty() -> None:
    assert find_markers({"a": [1, "two", {"b": None}], "c": "…"}) == []


@tool
def bulk_ids(ids: list[int]) -> int:
    return len(ids)


def test_the_store_keeps_a_capped_payload_without_flagging_it(tmp_path: Path) -> None:
    # Client-side checks off: the store's own check (the same errors()) is the judge.
    prefactor.configure(db_path=tmp_path / "t.db", validation=False, agent_id="exempt")
    try:
        bulk_ids(list(range(5_000)))
        assert prefactor.flush(10)
        assert prefactor.stats()["rejected"] == 0
    finally:
        runtime.shutdown()
    span = the_only_span(tmp_path / "t.db")
    assert span["payload"]["ids"][-1] == "…[4000 more items]"
    assert span["schema_violations"] is None


def tagged(
    ids: Optional[list[list[int]]],  # noqa: UP045
    code: Annotated[str, pydantic.StringConstraints(pattern="^[a-z]+$")],
) -> None: ...


def test_markers_are_exempt_when_the_fast_engine_explains_the_payload() -> None:
    # A pattern makes python-jsonschema non-linear: jsonschema-rs explains instead,
    # without listing an anyOf's alternatives.
    capturer = Capturer(max_items=2, max_string_length=5)
    captured = capturer.capture_mapping({"ids": [list(range(10))], "code": "abcdefgh"})
    assert find_markers(captured) == [
        ("$.ids[0][2]", "…[8 more items]"),
        ("$.code", "abcde…[truncated 3 chars]"),
    ]
    validator = compile_schema(params_schema_for(tagged))
    assert validator.errors(captured) == []
    assert validator.errors({**captured, "code": "ABC"}) != []
