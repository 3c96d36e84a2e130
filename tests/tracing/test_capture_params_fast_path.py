"""``Capturer.capture_params``: the strict hot path's shortcut must agree with the general path."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from prefactor._tracing.capture import REDACTED, Capturer
from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder

NAMES = ("model", "prompt", "temperature", "max_tokens")

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.sampled_from(["a\udcff", "ann@example.com", "x https://u:pw@h/", "…[3 more items]"]),
    st.binary(max_size=8),
    st.lists(st.integers(), max_size=3),
)


@given(st.tuples(scalars, scalars, scalars, scalars))
def test_the_shortcut_gives_what_capture_mapping_gives_or_declines(values: tuple[Any, ...]) -> None:
    capturer = Capturer(max_string_length=20)
    fast = capturer.capture_params(NAMES, values)
    general = capturer.capture_mapping(dict(zip(NAMES, values, strict=True)))
    if fast is not None:
        assert fast == general
        assert list(fast) == list(NAMES)


def test_it_declines_what_the_general_path_must_transform() -> None:
    capturer = Capturer(max_string_length=5)
    assert capturer.capture_params(("a",), ("short",)) == {"a": "short"}
    assert capturer.capture_params(("a",), ("too long",)) is None
    assert capturer.capture_params(("a",), (math.nan,)) is None
    assert capturer.capture_params(("a",), (math.inf,)) is None
    assert capturer.capture_params(("a",), ([1],)) is None
    assert capturer.capture_params(("a", "b"), (1,)) is None


def test_a_secret_looking_name_sends_the_call_to_the_redacting_path() -> None:
    capturer = Capturer()
    assert capturer.capture_params(("user", "api_key"), ("ann", "sk-1")) is None
    assert capturer.capture_mapping({"user": "ann", "api_key": "sk-1"})["api_key"] == REDACTED
    assert Capturer(redact=False).capture_params(("api_key",), ("sk-1",)) == {"api_key": "sk-1"}


def test_values_over_the_size_budget_are_left_to_the_general_path() -> None:
    capturer = Capturer(max_string_length=100, max_total_size=30)
    assert capturer.capture_params(("a", "b"), ("x", "y")) == {"a": "x", "b": "y"}
    assert capturer.capture_params(("a", "b"), ("x" * 20, "y" * 20)) is None


def test_strict_nested_calls_record_scalar_params_and_redact_secrets(
    strict_recorder: Recorder,
) -> None:
    @traced
    def call_llm(model: str, api_key: str, temperature: float) -> str:
        return model

    @traced
    def plain_args(model: str, temperature: float, n: int) -> str:
        return model

    @traced("function:top", auto_register=True)
    def top() -> None:
        call_llm("gpt", "sk-secret", 0.5)
        plain_args("gpt", 0.5, 2)

    top()
    trace = strict_recorder.trace()
    llm = trace.span(f"function:{call_llm.__qualname__}")
    assert llm.params == {"model": "gpt", "api_key": REDACTED, "temperature": 0.5}
    assert trace.span(f"function:{plain_args.__qualname__}").params == {
        "model": "gpt",
        "temperature": 0.5,
        "n": 2,
    }


@given(scalars)
def test_a_value_that_passes_through_is_its_own_capture(value: Any) -> None:
    capturer = Capturer(max_string_length=20)
    if capturer.passes_through(value):
        assert type(capturer.capture(value)) is type(value)
        assert capturer.capture(value) == value or value != value  # NaN never passes


@given(st.dictionaries(st.sampled_from((*NAMES, "api_key", "pwd")), scalars, max_size=6))
def test_the_flat_dict_shortcut_gives_what_the_general_path_gives(data: dict[str, Any]) -> None:
    capturer = Capturer(max_string_length=20)
    # A mapping proxy is not a dict: it always takes the general path.
    assert capturer.capture_mapping(data) == capturer.capture_mapping(MappingProxyType(data))
