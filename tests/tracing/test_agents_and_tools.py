"""@agent entry points, @tool spans with derived schemas, and instrument_tools."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from prefactor import _runtime as runtime
from prefactor._errors import SchemaValidationError
from prefactor._schemas.registry import default_registry
from prefactor._tracing.agents import agent, instrument_tools, tool
from prefactor._tracing.decorator import is_traced, traced
from prefactor.testing.recorder import Recorder


@tool
def lookup_weather(city: str, unit: str = "C") -> dict[str, float]:
    """Look up the current temperature of a city."""
    return {"temperature": 21.5}


@tool(name="calc")
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@agent(agent_id="weather-bot", version="2.0.0")
def weather_agent(question: str) -> str:
    temp = lookup_weather("Paris")["temperature"]
    return f"{question}: {add(20, 1)} / {temp}"


def test_agent_call_is_one_instance_with_its_tools_parented(strict_recorder: Recorder) -> None:
    assert weather_agent("temp?") == "temp?: 21 / 21.5"
    trace = strict_recorder.trace()
    (inst,) = trace.instances
    assert (inst.agent_id, inst.status) == ("weather-bot", "complete")
    assert inst.agent_version == {"name": "weather_agent", "external_identifier": "2.0.0"}
    root = trace.span("agent:weather_agent")
    assert root.parent_id is None
    assert root.params == {"question": "temp?"}
    assert root.result == {"value": "temp?: 21 / 21.5"}
    assert [c.type for c in root.children] == ["tool:lookup_weather", "tool:calc"]
    assert trace.span("tool:lookup_weather").params == {"city": "Paris", "unit": "C"}


def test_tool_schema_is_derived_and_registered_with_its_description() -> None:
    entry = default_registry().describe("tool:lookup_weather")
    assert entry is not None
    assert entry["description"] == "Look up the current temperature of a city."
    assert entry["params_schema"]["required"] == ["city"]
    assert entry["params_schema"]["properties"]["unit"]["default"] == "C"
    assert entry["result_schema"]["additionalProperties"] == {
        "anyOf": [{"type": "number"}, {"enum": ["NaN", "Infinity", "-Infinity"]}]
    }


def test_instance_schema_version_carries_the_tool_types(strict_recorder: Recorder) -> None:
    weather_agent("q")
    (inst,) = strict_recorder.trace().instances
    assert inst.schema_version is not None
    names = {t["name"] for t in inst.schema_version["span_type_schemas"]}
    assert {"tool:lookup_weather", "tool:calc", "agent:weather_agent"} <= names


def test_failing_agent_finishes_its_instance_failed(recorder: Recorder) -> None:
    @agent
    def broken() -> None:
        raise LookupError("no data")

    with pytest.raises(LookupError):
        broken()
    (inst,) = recorder.trace().instances
    assert inst.status == "failed"


def test_async_agent_runs_tools_concurrently_under_one_instance(recorder: Recorder) -> None:
    @tool
    async def fetch(url: str) -> str:
        await asyncio.sleep(0)
        return url.upper()

    @agent(agent_id="crawler")
    async def crawl(urls: list[str]) -> list[str]:
        return list(await asyncio.gather(*(fetch(u) for u in urls)))

    assert asyncio.run(crawl(["a", "b", "c"])) == ["A", "B", "C"]
    trace = recorder.trace()
    (inst,) = trace.instances
    root = trace.span("agent:crawl")
    assert [c.params["url"] for c in root.children] == ["a", "b", "c"]
    assert inst.agent_id == "crawler"


def test_nested_agent_call_is_a_span_of_the_outer_instance(recorder: Recorder) -> None:
    @agent(agent_id="sub")
    def sub_agent(x: int) -> int:
        return x

    @agent(agent_id="main")
    def main_agent(x: int) -> int:
        return sub_agent(x) + 1

    assert main_agent(1) == 2
    trace = recorder.trace()
    assert [i.agent_id for i in trace.instances] == ["main"]
    assert trace.span("agent:sub_agent").parent_id == trace.span("agent:main_agent").id


def test_tool_params_breaking_their_hints_fail_in_strict_mode(strict_recorder: Recorder) -> None:
    with pytest.raises(SchemaValidationError) as info:
        add("one", 2)  # type: ignore[arg-type]
    assert (info.value.span_type, info.value.side, info.value.path) == (
        "tool:calc",
        "params",
        "$.a",
    )


def _module(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(body))
    return path


@pytest.fixture
def tools_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    # One name for every test: the module is one callable's home, imported afresh each time.
    name = "plain_tools"
    _module(
        tmp_path,
        name,
        '''
        def search(query: str) -> list[str]:
            """Search."""
            return [query]

        class Toolbox:
            def double(self, x: int) -> int:
                return 2 * x

        def _private() -> int:
            return 0
        ''',
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    sys.modules.pop(name, None)


def test_instrument_tools_patches_a_module_string_when_it_is_imported(
    recorder: Recorder, tools_module: str
) -> None:
    assert tools_module not in sys.modules
    instrument_tools(f"{tools_module}:search")
    mod = __import__(tools_module)
    assert is_traced(mod.search)
    assert mod.search("q") == ["q"]
    assert recorder.trace().span("tool:search").params == {"query": "q"}


def test_instrument_tools_patches_a_whole_module_but_not_private_names(
    recorder: Recorder, tools_module: str
) -> None:
    mod = __import__(tools_module)
    patched = instrument_tools(mod)
    assert len(patched) == 1
    assert is_traced(mod.search)
    assert not is_traced(mod._private)


def test_instrument_tools_patches_an_objects_methods(recorder: Recorder, tools_module: str) -> None:
    mod = __import__(tools_module)
    box = mod.Toolbox()
    instrument_tools(box)
    assert box.double(4) == 8
    assert recorder.trace().span("tool:double").params == {"x": 4}


def test_instrument_tools_patches_a_function_in_its_module(
    recorder: Recorder, tools_module: str
) -> None:
    mod = __import__(tools_module)
    (wrapped,) = instrument_tools(mod.search)
    assert mod.search is wrapped
    mod.search("z")
    assert recorder.trace().span("tool:search").params == {"query": "z"}


def test_instrument_tools_is_idempotent(tools_module: str) -> None:
    mod = __import__(tools_module)
    instrument_tools(mod)
    first = mod.search
    instrument_tools(mod, f"{tools_module}:search")
    assert mod.search is first


def test_instrument_tools_rejects_bad_targets() -> None:
    with pytest.raises(ValueError, match="module:attr"):
        instrument_tools("no_colon_here")
    with pytest.raises(TypeError):
        instrument_tools(42)


def test_traced_can_be_applied_before_configuration() -> None:
    module = types.ModuleType("late")

    @traced
    def early(x: int) -> int:
        return x

    module.early = early  # type: ignore[attr-defined]
    rec = Recorder.install(strict=True)
    try:
        assert module.early(3) == 3  # type: ignore[attr-defined]
        assert rec.trace().spans[0].params == {"x": 3}
    finally:
        runtime.shutdown()
