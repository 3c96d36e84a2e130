"""Lenient, strict and custom-extractor calls record the same span when nothing is violated.

They run one body and differ only in their plan: what strict mode and custom
extractors capture on the caller's path, lenient mode binds and captures in
the exporter's thread. Whatever the arguments, the records must agree.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig
from prefactor._export.sinks import MemorySink
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.decorator import traced
from prefactor._tracing.state import SpanState
from prefactor._tracing.tracer import Tracer


def answer(
    text: str, count: int, ratio: float, flag: bool, tags: list[str], extra: dict[str, int]
) -> list[Any]:
    return [text, count, tags, sorted(extra)]


plain = traced(name="modes_agree.answer")(answer)
custom = traced(
    name="modes_agree.answer_custom",
    params=lambda bound: bound,
    result=lambda value: {"value": value},
)(answer)

ORDER = ("text", "count", "ratio", "flag", "tags", "extra")
words = st.text(max_size=30)
arguments = st.fixed_dictionaries(
    {
        "text": words,
        "count": st.integers(min_value=-(2**63), max_value=2**63 - 1),
        "ratio": st.floats(allow_nan=False, allow_infinity=False),
        "flag": st.booleans(),
        "tags": st.lists(words, max_size=5),
        "extra": st.dictionaries(words, st.integers(-1000, 1000), max_size=5),
    }
)


class Mode:
    """One tracer recording into memory, and how to call under it."""

    def __init__(self, fn: Any, strict: bool) -> None:
        self.fn = fn
        self.sink = MemorySink()
        self.tracer: Tracer = runtime.build_tracer(
            PrefactorCoreConfig(sink=self.sink, strict=strict)
        )
        inst = self.tracer.new_instance(agent_version={"name": "modes"})
        self.parent = SpanState("0" * 32, inst, "modes:parent")

    def record(self, kwargs: dict[str, Any], nested: bool, positional: bool) -> dict[str, Any]:
        """The create item of one call's span, with what varies between calls left out."""
        args = tuple(kwargs[name] for name in ORDER) if positional else ()
        named = {} if positional else kwargs
        if nested:
            token = CURRENT_SPAN.set(self.parent)
            try:
                self.fn(*args, **named)
            finally:
                CURRENT_SPAN.reset(token)
        else:
            previous = runtime.swap(self.tracer)
            try:
                self.fn(*args, **named)
            finally:
                runtime.swap(previous)
        assert self.tracer.flush(10)
        (item,) = [i for i in self.sink.items if i["_type"] == "agent_spans/create"][-1:]
        self.sink.clear()
        details = item["details"]
        return {
            "status": details["status"],
            "params": details["payload"],
            "result": details.get("result_payload"),
            "violations": details.get("schema_violations", []),
        }


@pytest.fixture
def modes() -> Iterator[dict[str, Mode]]:
    made = {
        "lenient": Mode(plain, strict=False),
        "strict": Mode(plain, strict=True),
        "custom": Mode(custom, strict=False),
    }
    yield made
    for mode in made.values():
        mode.tracer.close(10)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(kwargs=arguments, nested=st.booleans(), positional=st.booleans())
def test_lenient_strict_and_custom_calls_record_the_same_span(
    modes: dict[str, Mode], kwargs: dict[str, Any], nested: bool, positional: bool
) -> None:
    records = {name: mode.record(kwargs, nested, positional) for name, mode in modes.items()}
    assert records["lenient"]["violations"] == []
    assert records["lenient"] == records["strict"] == records["custom"]
    assert records["lenient"]["status"] == "complete"
