"""Generator spans cover the whole iteration and are never left open."""

from __future__ import annotations

import asyncio
import gc
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from tracing_helpers import Stored, type_of

from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder


@traced
def tokens(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"t{i} "


@traced
def numbers(n: int) -> Iterator[int]:
    yield from range(n)


@traced
async def atokens(n: int) -> AsyncIterator[str]:
    for i in range(n):
        await asyncio.sleep(0)
        yield f"a{i}"


def test_exhausted_generator_completes_with_joined_strings(recorder: Recorder) -> None:
    assert list(tokens(3)) == ["t0 ", "t1 ", "t2 "]
    (span,) = recorder.trace().spans
    assert (span.status, span.result) == ("complete", {"value": "t0 t1 t2 "})


def test_non_string_items_are_recorded_as_a_list(recorder: Recorder) -> None:
    assert list(numbers(3)) == [0, 1, 2]
    assert recorder.trace().spans[0].result == {"value": [0, 1, 2]}


def test_break_cancels_the_span_with_what_was_yielded(recorder: Recorder) -> None:
    for item in tokens(10):
        if item == "t1 ":
            break
    gc.collect()
    (span,) = recorder.trace().spans
    assert (span.status, span.result) == ("cancelled", {"value": "t0 t1 "})


def test_explicit_close_cancels_the_span(recorder: Recorder) -> None:
    gen = numbers(5)
    next(gen)
    gen.close()
    (span,) = recorder.trace().spans
    assert (span.status, span.result) == ("cancelled", {"value": [0]})


def test_never_iterated_generator_is_finished_when_collected(recorder: Recorder) -> None:
    gen = numbers(5)
    del gen
    gc.collect()
    (span,) = recorder.trace().spans
    assert span.status == "cancelled"


def test_exception_inside_generator_fails_the_span(recorder: Recorder) -> None:
    @traced
    def broken() -> Iterator[int]:
        yield 1
        raise ValueError("mid-stream")

    with pytest.raises(ValueError, match="mid-stream"):
        list(broken())
    (span,) = recorder.trace().spans
    assert span.status == "failed"
    assert span.result == {"error": {"type": "ValueError", "message": "mid-stream"}}


def test_send_and_return_value_pass_through(recorder: Recorder) -> None:
    @traced
    def echo() -> Iterator[int]:
        got = yield 0
        while got is not None:
            got = yield got * 2
        return None

    gen = echo()
    assert next(gen) == 0
    assert gen.send(5) == 10
    with pytest.raises(StopIteration):
        gen.send(None)
    assert recorder.trace().spans[0].result == {"value": [0, 10]}


def test_spans_opened_inside_a_generator_nest_under_it(recorder: Recorder) -> None:
    @traced
    def step(i: int) -> int:
        return i

    @traced
    def stepper() -> Iterator[int]:
        for i in range(2):
            yield step(i)

    list(stepper())
    trace = recorder.trace()
    root = [s for s in trace.spans if s.parent_id is None]
    assert len(root) == 1
    assert len(root[0].children) == 2


def test_async_generator_completes_and_joins(recorder: Recorder) -> None:
    async def main() -> list[str]:
        return [x async for x in atokens(3)]

    assert asyncio.run(main()) == ["a0", "a1", "a2"]
    (span,) = recorder.trace().spans
    assert (span.status, span.result) == ("complete", {"value": "a0a1a2"})


def test_async_generator_early_exit_is_cancelled(recorder: Recorder) -> None:
    async def main() -> None:
        agen = atokens(10)
        async for item in agen:
            if item == "a0":
                break
        await agen.aclose()

    asyncio.run(main())
    (span,) = recorder.trace().spans
    assert (span.status, span.result) == ("cancelled", {"value": "a0"})


@traced
async def anumbers(n: int) -> AsyncIterator[int]:
    for i in range(n):
        yield i


@traced
def untyped(n: int):  # type: ignore[no-untyped-def]
    for i in range(n):
        yield f"u{i}"


async def _alist(agen: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in agen]


def _run(fn: Any, n: int) -> list[Any]:
    out = fn(n)
    return asyncio.run(_alist(out)) if inspect.isasyncgen(out) else list(out)


@pytest.mark.parametrize("n", [0, 1, 3], ids=["no-yield", "one-yield", "many-yields"])
@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        pytest.param(tokens, lambda n: "".join(f"t{i} " for i in range(n)), id="Iterator[str]"),
        pytest.param(
            atokens, lambda n: "".join(f"a{i}" for i in range(n)), id="AsyncIterator[str]"
        ),
        pytest.param(numbers, lambda n: list(range(n)), id="Iterator[int]"),
        pytest.param(anumbers, lambda n: list(range(n)), id="AsyncIterator[int]"),
        pytest.param(untyped, lambda n: [f"u{i}" for i in range(n)], id="unannotated"),
    ],
)
def test_the_recorded_result_has_the_annotations_form_for_any_number_of_yields(
    strict_stored: Stored, fn: Any, expected: Any, n: int
) -> None:
    _run(fn, n)
    span = strict_stored.span(type_of(fn))
    assert (span["status"], span["result_payload"]) == ("complete", {"value": expected(n)})
    assert not span.get("schema_violations")


def test_a_text_generator_that_yields_something_else_still_records_text(
    recorder: Recorder,
) -> None:
    @traced
    def mixed() -> Iterator[str]:
        yield "n="
        yield 3  # type: ignore[misc]

    assert list(mixed()) == ["n=", 3]
    assert recorder.trace().spans[0].result == {"value": "n=3"}


def test_a_text_generators_joined_result_obeys_the_string_rules(strict_stored: Stored) -> None:
    # A credential split across two yields and a lone surrogate (an undecodable file
    # name): the joined text is captured as any string is, so the store can keep it.
    @traced
    def stream() -> Iterator[str]:
        yield "connect postgres://bob:hunt"
        yield "er2@db/app file "
        yield "caf\udce9.txt"

    assert len(list(stream())) == 3
    span = strict_stored.span(type_of(stream))
    text = span["result_payload"]["value"]
    assert span["status"] == "complete"
    assert "hunter2" not in text
    assert "postgres://bob:[REDACTED]@db/app" in text
    assert "\udce9" not in text
    assert not span.get("schema_violations")
