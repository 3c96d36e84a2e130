"""Capture size caps: strings, items, depth and the per-payload budget, with visible markers."""

from __future__ import annotations

import json
from typing import Any

from prefactor._tracing.capture import Capturer, capture


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"down": value}
    return value


def depth_of(value: Any) -> int:
    count = 0
    while isinstance(value, dict):
        value = value["down"]
        count += 1
    return count


def test_long_string_is_truncated_with_count_of_dropped_chars() -> None:
    assert Capturer(max_string_length=5).capture("abcdefgh") == "abcde…[truncated 3 chars]"


def test_default_string_cap_is_ten_thousand_chars() -> None:
    captured = capture("y" * 10_050)
    assert captured == "y" * 10_000 + "…[truncated 50 chars]"


def test_string_at_the_cap_is_kept_whole() -> None:
    assert Capturer(max_string_length=5).capture("abcde") == "abcde"


def test_a_non_finite_floats_form_is_never_truncated_so_capturing_it_again_keeps_it() -> None:
    capturer = Capturer(max_string_length=4)
    captured = capturer.capture_mapping({"x": float("-inf"), "y": [float("inf")]})
    assert captured == {"x": "-Infinity", "y": ["Infinity"]}
    assert capturer.capture_mapping(captured) == captured  # the lenient path captures twice


def test_long_string_inside_mapping_is_truncated() -> None:
    captured = Capturer(max_string_length=3).capture_mapping({"q": "abcdef"})
    assert captured == {"q": "abc…[truncated 3 chars]"}


def test_long_list_ends_with_more_items_marker() -> None:
    assert Capturer(max_items=3).capture(list(range(10))) == [0, 1, 2, "…[7 more items]"]


def test_long_mapping_ends_with_more_items_key() -> None:
    captured = Capturer(max_items=2).capture({str(i): i for i in range(5)})
    assert captured == {"0": 0, "1": 1, "…": "…[3 more items]"}


def test_long_top_level_mapping_is_capped_too() -> None:
    captured = Capturer(max_items=1).capture_mapping({"a": 1, "b": 2})
    assert captured == {"a": 1, "…": "…[1 more items]"}


def test_large_set_is_capped_after_sorting() -> None:
    assert Capturer(max_items=2).capture(set(range(5))) == [0, 1, "…[3 more items]"]


def test_deep_nesting_stops_at_max_depth_with_marker() -> None:
    captured = Capturer(max_depth=3).capture(nested(10))
    assert captured == {"down": {"down": {"down": "<max depth: dict>"}}}


def test_default_max_depth_is_twenty() -> None:
    assert depth_of(capture(nested(50))) == 20


def test_very_deep_nesting_never_raises_recursion_error() -> None:
    value: list[Any] = []
    for _ in range(100_000):
        value = [value]
    assert Capturer(max_depth=20).capture(value) is not None


def test_payload_over_budget_replaces_the_rest_with_markers() -> None:
    capturer = Capturer(max_total_size=1_000)
    captured = capturer.capture([f"item-{i:04d}-" + "z" * 90 for i in range(100)])
    assert isinstance(captured, list)
    assert captured[-1] == f"…[{100 - (len(captured) - 1)} more items: size budget exceeded]"
    assert 5 <= len(captured) <= 15


def test_huge_payload_stays_near_the_default_budget() -> None:
    huge = {f"k{i}": ["x" * 500] * 20 for i in range(200)}  # about 2 MB
    captured = capture(huge)
    assert isinstance(captured, dict)
    assert 200_000 < len(json.dumps(captured)) < 300_000
    assert captured["…"] == "…[173 more items: size budget exceeded]"


def test_budget_truncates_a_string_that_does_not_fit() -> None:
    captured = Capturer(max_total_size=20, max_string_length=1_000).capture(["a" * 100])
    assert captured == ["a" * 20 + "…[truncated 80 chars]"]


def test_budget_is_per_payload_not_per_capturer() -> None:
    capturer = Capturer(max_total_size=50)
    first = capturer.capture(["x" * 40])
    assert capturer.capture(["x" * 40]) == first == ["x" * 40]
