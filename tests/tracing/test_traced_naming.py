"""Span types: what ``name=`` means, and that no two callables share a derived one."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from tracing_helpers import type_of

from prefactor._errors import PrefactorConfigError
from prefactor._schemas.registry import default_registry
from prefactor._tracing.agents import agent, instrument_tools, tool
from prefactor._tracing.decorator import traced


def test_name_means_the_name_after_the_prefix_on_all_three_decorators() -> None:
    @traced(name="naming.parse")
    def parse(text: str) -> str:
        return text

    @tool(name="naming.search")
    def search(query: str) -> str:
        return query

    @agent(name="naming.planner")
    def planner(goal: str) -> str:
        return goal

    assert [type_of(parse), type_of(search), type_of(planner)] == [
        "function:naming.parse",
        "tool:naming.search",
        "agent:naming.planner",
    ]


def test_the_old_spelling_of_a_whole_span_type_as_name_still_works_with_a_warning() -> None:
    with pytest.warns(DeprecationWarning, match="span_type='agent:naming-old'"):

        @traced(name="agent:naming-old")
        def old(x: int) -> int:
            return x

    assert type_of(old) == "agent:naming-old"


def test_a_span_type_and_a_name_together_are_refused() -> None:
    with pytest.raises(TypeError, match="one of"):
        traced("agent:llm", name="llm")


def test_a_second_callable_deriving_the_same_span_type_is_refused_naming_both() -> None:
    @tool(name="naming.lookup")
    def lookup(city: str) -> str:
        return city

    def other_lookup(city: str, unit: str) -> str:
        return city

    with pytest.raises(PrefactorConfigError) as info:
        tool(name="naming.lookup")(other_lookup)
    message = str(info.value)
    assert "'tool:naming.lookup'" in message
    assert f"{__name__}.{lookup.__qualname__}" in message
    assert f"{__name__}.{other_lookup.__qualname__}" in message
    assert "name=" in message


def test_two_lambdas_never_share_a_span_type() -> None:
    traced(name="naming.lambda")(lambda x: x)
    with pytest.raises(PrefactorConfigError, match=r"\(line \d+\)"):
        traced(name="naming.lambda")(lambda y: y)


def test_instrument_tools_names_a_lambda_after_its_attribute() -> None:
    module = ModuleType("naming_lambdas")
    module.naming_shout = lambda text: text.upper()  # type: ignore[attr-defined]
    module.naming_whisper = lambda text: text.lower()  # type: ignore[attr-defined]
    for value in vars(module).values():
        if callable(value):
            value.__module__ = "naming_lambdas"
    patched = instrument_tools(module)
    assert sorted(type_of(fn) for fn in patched) == ["tool:naming_shout", "tool:naming_whisper"]


@pytest.fixture
def module_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Import a module written from source, under a given name (afresh each time)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def load(name: str, source: str) -> ModuleType:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        sys.modules.pop(name, None)
        names.append(name)
        return __import__(name)

    yield load
    for name in names:
        sys.modules.pop(name, None)


def test_the_same_callable_decorated_again_takes_over_its_span_type(module_factory: Any) -> None:
    first = module_factory(
        "naming_reloaded",
        """
        from prefactor import tool

        @tool(name="naming.reloaded")
        def fetch(url: str) -> str:
            return url
        """,
    )
    second = module_factory(
        "naming_reloaded",
        """
        from prefactor import tool

        @tool(name="naming.reloaded")
        def fetch(url: str, timeout: float) -> str:
            return url
        """,
    )
    assert type_of(first.fetch) == type_of(second.fetch) == "tool:naming.reloaded"
    entry = default_registry().describe("tool:naming.reloaded")
    assert entry is not None
    assert entry["params_schema"]["required"] == ["url", "timeout"]


def test_two_modules_with_a_tool_of_the_same_name_are_refused(module_factory: Any) -> None:
    source = """
        from prefactor import tool

        @tool
        def naming_search(query: str) -> list[str]:
            return [query]
        """
    module_factory("naming_first", source)
    with pytest.raises(PrefactorConfigError, match=r"naming_first\.naming_search"):
        module_factory("naming_second", source)


def test_an_explicit_span_type_is_shared_on_purpose() -> None:
    @traced("naming:shared")
    def one(x: int) -> int:
        return x

    @traced("naming:shared")
    def two(y: str) -> str:
        return y

    assert type_of(one) == type_of(two) == "naming:shared"


@pytest.mark.parametrize(
    ("decorate", "name"),
    [
        pytest.param(traced, "traced", id="traced"),
        pytest.param(tool, "tool", id="tool"),
        pytest.param(agent, "agent", id="agent"),
    ],
)
def test_decorating_a_class_is_refused_pointing_to_instrument_tools(
    decorate: Any, name: str
) -> None:
    class Calculator:
        def add(self, a: int, b: int) -> int:
            return a + b

    with pytest.raises(TypeError) as info:
        decorate(Calculator)
    message = str(info.value)
    assert f"@{name} cannot decorate a class (" in message
    assert "instrument_tools(" in message
