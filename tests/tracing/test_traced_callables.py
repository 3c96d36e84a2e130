"""``@traced`` on every kind of callable, in either decorator order."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder


def plain(a: int, b: int = 2) -> int:
    """Add two numbers."""
    return a + b


async def coro(a: int, b: int = 2) -> int:
    await asyncio.sleep(0)
    return a + b


def gen(a: int, b: int = 2) -> Iterator[int]:
    yield a
    yield b


async def agen(a: int, b: int = 2) -> AsyncIterator[int]:
    yield a
    await asyncio.sleep(0)
    yield b


class Box:
    @traced
    def method(self, a: int, b: int = 2) -> int:
        return a + b

    @traced
    @classmethod
    def cm_outer(cls, a: int, b: int = 2) -> int:
        return a + b

    @classmethod
    @traced
    def cm_inner(cls, a: int, b: int = 2) -> int:
        return a + b

    @traced
    @staticmethod
    def sm_outer(a: int, b: int = 2) -> int:
        return a + b

    @staticmethod
    @traced
    def sm_inner(a: int, b: int = 2) -> int:
        return a + b

    @traced
    async def amethod(self, a: int, b: int = 2) -> int:
        return a + b


class Adder:
    def __call__(self, a: int, b: int = 2) -> int:
        return a + b


def _drive(fn: Any) -> Any:
    out = fn(1)
    if inspect.iscoroutine(out):
        return asyncio.run(out)
    if inspect.isasyncgen(out):

        async def collect() -> list[int]:
            return [x async for x in out]

        return asyncio.run(collect())
    if inspect.isgenerator(out) or hasattr(out, "__next__"):
        return list(out)
    return out


CASES = [
    pytest.param(lambda: traced(plain), 3, id="function"),
    pytest.param(lambda: traced(coro), 3, id="coroutine"),
    pytest.param(lambda: traced(gen), [1, 2], id="generator"),
    pytest.param(lambda: traced(agen), [1, 2], id="async-generator"),
    pytest.param(lambda: Box().method, 3, id="method"),
    pytest.param(lambda: Box.cm_outer, 3, id="classmethod-traced-outside"),
    pytest.param(lambda: Box.cm_inner, 3, id="classmethod-traced-inside"),
    pytest.param(lambda: Box().cm_outer, 3, id="classmethod-via-instance"),
    pytest.param(lambda: Box.sm_outer, 3, id="staticmethod-traced-outside"),
    pytest.param(lambda: Box.sm_inner, 3, id="staticmethod-traced-inside"),
    pytest.param(lambda: Box().amethod, 3, id="async-method"),
    pytest.param(lambda: traced(Adder()), 3, id="callable-object"),
]


@pytest.mark.parametrize(("make", "expected"), CASES)
def test_each_callable_kind_records_named_params_and_its_result(
    recorder: Recorder, make: Any, expected: Any
) -> None:
    assert _drive(make()) == expected
    (span,) = recorder.trace().spans
    assert span.status == "complete"
    assert span.params == {"a": 1, "b": 2}
    assert span.result == {"value": expected}


@pytest.mark.parametrize(
    ("fn", "original"),
    [
        pytest.param(traced(plain), plain, id="function"),
        pytest.param(traced(coro), coro, id="coroutine"),
        pytest.param(traced(gen), gen, id="generator"),
        pytest.param(traced(agen), agen, id="async-generator"),
    ],
)
def test_decorated_function_keeps_name_doc_signature_and_kind(fn: Any, original: Any) -> None:
    assert fn.__name__ == original.__name__
    assert fn.__doc__ == original.__doc__
    assert inspect.signature(fn) == inspect.signature(original)
    assert inspect.iscoroutinefunction(fn) == inspect.iscoroutinefunction(original)
    assert inspect.isasyncgenfunction(fn) == inspect.isasyncgenfunction(original)
    assert inspect.isgeneratorfunction(fn) == inspect.isgeneratorfunction(original)


def test_method_params_leave_out_self(recorder: Recorder) -> None:
    Box().method(5, b=7)
    (span,) = recorder.trace().spans
    assert span.params == {"a": 5, "b": 7}
    assert span.type == "function:Box.method"


def test_varargs_and_kwargs_are_recorded_under_args_and_kwargs(recorder: Recorder) -> None:
    @traced
    def f(x: int, *rest: int, flag: bool = False, **extra: str) -> None:
        return None

    f(1, 2, 3, flag=True, colour="red")
    (span,) = recorder.trace().spans
    assert span.params == {"x": 1, "args": [2, 3], "flag": True, "kwargs": {"colour": "red"}}


def test_excluded_parameters_are_left_out(recorder: Recorder) -> None:
    @traced(exclude=["client"])
    def f(query: str, client: object) -> str:
        return query

    f("q", object())
    (span,) = recorder.trace().spans
    assert span.params == {"query": "q"}


def test_custom_extractors_shape_params_and_result(recorder: Recorder) -> None:
    @traced(params=lambda p: {"n": len(p["items"])}, result=lambda r: {"total": sum(r)})
    def f(items: list[int]) -> list[int]:
        return items

    f([1, 2, 3])
    (span,) = recorder.trace().spans
    assert span.params == {"n": 3}
    assert span.result == {"total": 6}


def test_named_span_type_is_used(recorder: Recorder) -> None:
    @traced("custom:step")
    def f() -> int:
        return 1

    f()
    assert recorder.trace().spans[0].type == "custom:step"


def test_mapping_result_records_its_fields(recorder: Recorder) -> None:
    @traced
    def f() -> dict[str, int]:
        return {"a": 1}

    f()
    assert recorder.trace().spans[0].result == {"a": 1}


def test_exception_fails_the_span_and_reaches_the_caller_unchanged(recorder: Recorder) -> None:
    error = KeyError("missing")

    @traced
    def f() -> None:
        raise error

    with pytest.raises(KeyError) as info:
        f()
    assert info.value is error
    (span,) = recorder.trace().spans
    assert span.status == "failed"
    assert span.result == {"error": {"type": "KeyError", "message": "'missing'"}}


def test_async_exception_fails_the_span(recorder: Recorder) -> None:
    @traced
    async def f() -> None:
        raise RuntimeError("nope")

    with pytest.raises(RuntimeError, match="nope"):
        asyncio.run(f())
    assert recorder.trace().spans[0].status == "failed"


def test_call_outside_any_instance_is_the_root_of_its_own_instance(recorder: Recorder) -> None:
    traced(plain)(1)
    traced(plain)(2)
    trace = recorder.trace()
    assert len(trace.instances) == 2
    for inst in trace.instances:
        assert inst.agent_id == "test-agent"
        assert inst.status == "complete"
        assert [s.parent_id for s in inst.spans] == [None]


def test_nested_calls_are_parented(recorder: Recorder) -> None:
    @traced
    def inner(x: int) -> int:
        return x

    @traced
    def outer(x: int) -> int:
        return inner(x) + inner(x)

    outer(1)
    trace = recorder.trace()
    root = trace.span("function:test_nested_calls_are_parented.<locals>.outer")
    assert [c.type for c in root.children] == [
        "function:test_nested_calls_are_parented.<locals>.inner"
    ] * 2
    assert len(trace.instances) == 1


def test_a_leaf_span_is_sent_as_one_create_in_its_final_state(recorder: Recorder) -> None:
    @traced
    def leaf(x: int) -> int:
        return x

    @traced
    def parent() -> int:
        return leaf(1) + leaf(2)

    parent()
    recorder.trace()
    kinds = [(i["_type"], i.get("details", i).get("status")) for i in recorder.sink.items[2:]]
    # the parent's create goes out (active) when its first child starts;
    # each leaf is one create, already complete; then the parent's finish.
    assert kinds == [
        ("agent_spans/create", "active"),
        ("agent_spans/create", "complete"),
        ("agent_spans/create", "complete"),
        ("agent_spans/finish", "complete"),
        ("agent_instances/finish", "complete"),
    ]
