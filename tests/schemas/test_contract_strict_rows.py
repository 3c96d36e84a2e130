"""Issue 10's table: correct calls that strict mode used to refuse now pass, recorded as documented.

Each test is what a user writes: a tool with type hints, called correctly inside a test
that uses the plugin's ``prefactor_spans`` fixture, strict by default.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prefactor import tool
from prefactor.schemas import find_markers
from prefactor.testing.recorder import Recorder

if TYPE_CHECKING:  # never imported at run time: the annotation below cannot be resolved
    from collections import OrderedDict as Report


@tool
def store_blob(v: bytes) -> int:
    return len(v)


@tool
def scale(x: float) -> float:
    return x * 2


@tool
def wait_for(d: dt.timedelta) -> bool:
    return d.total_seconds() > 0


@tool
def fetch_users(ids: list[int]) -> int:
    return len(ids)


@tool
def embed(text: str) -> list[float]:
    return [0.25] * 1_536


@tool
def tally(counts: dict[str, int]) -> int:
    return len(counts)


@tool
def stream_answer(prompt: str) -> Iterator[str]:
    yield from ()


@tool
def build_report(name: str) -> Report:
    return {"name": name, "rows": 3}  # type: ignore[return-value]


def test_bytes_argument_is_recorded_as_length_and_preview(prefactor_spans: Recorder) -> None:
    store_blob(b"\x00payload!")
    span = prefactor_spans.span("tool:store_blob")
    assert (span.params, span.violations) == (
        {"v": {"$bytes": 9, "base64": "AHBheWxvYWQh"}},
        [],
    )


def test_nan_and_infinities_are_recorded_by_name(prefactor_spans: Recorder) -> None:
    for value in (math.nan, math.inf, -math.inf):
        scale(value)
    spans = prefactor_spans.spans_of_type("tool:scale")
    assert [s.params["x"] for s in spans] == ["NaN", "Infinity", "-Infinity"]
    assert [s.result for s in spans] == [
        {"value": "NaN"},
        {"value": "Infinity"},
        {"value": "-Infinity"},
    ]
    assert all(s.violations == [] for s in spans)


def test_timedelta_argument_is_an_iso_8601_duration(prefactor_spans: Recorder) -> None:
    wait_for(dt.timedelta(seconds=90))
    span = prefactor_spans.span("tool:wait_for")
    assert (span.params, span.violations) == ({"d": "PT1M30S"}, [])


def test_five_thousand_ids_are_recorded_up_to_the_cap(prefactor_spans: Recorder) -> None:
    assert fetch_users(list(range(5_000))) == 5_000
    span = prefactor_spans.span("tool:fetch_users")
    assert span.params["ids"][:3] == [0, 1, 2]
    assert find_markers(span.params) == [("$.ids[1000]", "…[4000 more items]")]
    assert span.violations == []


def test_an_embedding_of_1536_floats_is_a_valid_result(prefactor_spans: Recorder) -> None:
    embed("hello")
    span = prefactor_spans.span("tool:embed")
    assert span.result is not None and len(span.result["value"]) == 1_001
    assert find_markers(span.result) == [("$.value[1000]", "…[536 more items]")]
    assert span.violations == []


def test_a_payload_over_the_size_budget_is_a_valid_payload(prefactor_spans: Recorder) -> None:
    counts = {f"{n:04d}-{'k' * 400}": n for n in range(900)}  # about 370 KB of keys
    tally(counts)
    span = prefactor_spans.span("tool:tally")
    *_, (path, text) = find_markers(span.params)
    assert path == '$.counts["…"]' and text.endswith("more items: size budget exceeded]")
    assert span.violations == []


def test_a_text_stream_that_yields_nothing_records_the_empty_string(
    prefactor_spans: Recorder,
) -> None:
    assert list(stream_answer("hi")) == []
    span = prefactor_spans.span("tool:stream_answer")
    assert (span.status, span.result, span.violations) == ("complete", {"value": ""}, [])


def test_an_unresolvable_return_annotation_accepts_the_returned_dict(
    prefactor_spans: Recorder,
) -> None:
    build_report("q3")
    span = prefactor_spans.span("tool:build_report")
    assert (span.result, span.violations) == ({"name": "q3", "rows": 3}, [])
