"""Testing the packing assistant with the prefactor pytest plugin.

With prefactor installed the plugin loads by itself; from a checkout, run
``pytest -p prefactor.testing.plugin examples/test_suite_example``. The
``prefactor_spans`` fixture records every span in memory, in strict mode: a
payload that breaks its schema raises ``SchemaValidationError``.
"""

from __future__ import annotations

import pytest
from agent import choose_clothing, get_forecast, packing_assistant

from prefactor import SchemaValidationError
from prefactor.testing import Recorder


def test_assistant_packs_for_the_forecast(prefactor_spans: Recorder) -> None:
    assert packing_assistant("Oslo") == "Oslo: pack jumper, coat, boots"


def test_each_tool_call_is_a_child_span_of_the_agent_run(prefactor_spans: Recorder) -> None:
    packing_assistant("Lisbon")
    assert prefactor_spans.render() == (
        "instance packing-assistant [complete]\n"
        "  agent:packing_assistant [complete]\n"
        "    tool:get_forecast [complete]\n"
        "    tool:choose_clothing [complete]"
    )
    forecast = prefactor_spans.span("tool:get_forecast")
    assert prefactor_spans.parent(forecast) == prefactor_spans.span("agent:packing_assistant")


def test_the_whole_run_compares_equal_to_a_literal(prefactor_spans: Recorder) -> None:
    packing_assistant("London")
    assert prefactor_spans.records() == [
        {
            "id": "span-1",
            "parent_id": None,
            "instance_id": "instance-1",
            "type": "agent:packing_assistant",
            "status": "complete",
            "params": {"city": "London"},
            "result": {"value": "London: pack jumper, coat, umbrella"},
            "violations": [],
        },
        {
            "id": "span-2",
            "parent_id": "span-1",
            "instance_id": "instance-1",
            "type": "tool:get_forecast",
            "status": "complete",
            "params": {"city": "London"},
            "result": {"celsius": 12.0, "sky": "rain"},
            "violations": [],
        },
        {
            "id": "span-3",
            "parent_id": "span-1",
            "instance_id": "instance-1",
            "type": "tool:choose_clothing",
            "status": "complete",
            "params": {"celsius": 12.0, "sky": "rain"},
            "result": {"value": ["jumper", "coat", "umbrella"]},
            "violations": [],
        },
    ]


def test_a_city_of_the_wrong_type_breaks_the_tool_schema(prefactor_spans: Recorder) -> None:
    with pytest.raises(SchemaValidationError) as caught:
        get_forecast(42)  # type: ignore[arg-type]
    assert (caught.value.span_type, caught.value.path) == ("tool:get_forecast", "$.city")


@pytest.mark.prefactor(strict=False)
def test_lenient_mode_flags_the_span_instead_of_raising(prefactor_spans: Recorder) -> None:
    choose_clothing(20, 7)  # type: ignore[arg-type]
    [flag] = prefactor_spans.span("tool:choose_clothing").violations
    assert (flag["side"], flag["path"]) == ("params", "$.sky")
