"""Capture turns every kind of Python value into a JSON-safe snapshot without raising."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import uuid
from collections import OrderedDict, deque
from decimal import Decimal
from pathlib import PurePosixPath
from typing import Any

import pydantic
import pytest

from prefactor._errors import PrefactorConfigError
from prefactor._tracing.capture import (
    Capturer,
    capture,
    capture_mapping,
    capture_result,
    is_atomic,
)


class Color(enum.Enum):
    RED = "red"
    NESTED = ("a", 1)


class Level(enum.IntEnum):
    HIGH = 3


class Item(pydantic.BaseModel):
    name: str
    tags: list[str] = []
    when: dt.date | None = None


class Node(pydantic.BaseModel):
    label: str
    child: Node | None = None


@dataclasses.dataclass
class Pair:
    left: Any
    right: Any = None


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


class BadStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no str")


class LongRepr:
    def __repr__(self) -> str:
        return "x" * 5000


class Explodes(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("boom")


class Text(str):
    pass


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("hi", "hi", id="str"),
        pytest.param(7, 7, id="int"),
        pytest.param(1.5, 1.5, id="float"),
        pytest.param(True, True, id="bool"),
        pytest.param(None, None, id="none"),
        pytest.param(float("nan"), "NaN", id="nan"),
        pytest.param(float("inf"), "Infinity", id="inf"),
        pytest.param(float("-inf"), "-Infinity", id="minus-inf"),
        pytest.param(
            dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.UTC),
            "2024-05-01T12:30:00+00:00",
            id="datetime",
        ),
        pytest.param(dt.date(2024, 5, 1), "2024-05-01", id="date"),
        pytest.param(dt.time(8, 15), "08:15:00", id="time"),
        pytest.param(dt.timedelta(minutes=2), "PT2M", id="timedelta-iso-duration"),
        pytest.param(-dt.timedelta(seconds=1.5), "-PT1.5S", id="negative-timedelta"),
        pytest.param(uuid.UUID(int=255), "00000000-0000-0000-0000-0000000000ff", id="uuid"),
        pytest.param(Decimal("1.10"), "1.10", id="decimal"),
        pytest.param(PurePosixPath("/tmp/x"), "/tmp/x", id="path"),
        pytest.param(Color.RED, "red", id="enum"),
        pytest.param(Color.NESTED, ["a", 1], id="enum-tuple-value"),
        pytest.param(Level.HIGH, 3, id="int-enum"),
        pytest.param(Text("sub"), "sub", id="str-subclass"),
        pytest.param((1, "a"), [1, "a"], id="tuple"),
        pytest.param({3, 1, 2}, [1, 2, 3], id="set-sorted"),
        pytest.param(frozenset({"b", "a"}), ["a", "b"], id="frozenset-sorted"),
        pytest.param(deque([1, 2]), [1, 2], id="deque-as-list"),
        pytest.param(OrderedDict(a=1), {"a": 1}, id="ordered-dict"),
        pytest.param(
            {1: "a", None: "b", (1, 2): "c"},
            {"1": "a", "None": "b", "(1, 2)": "c"},
            id="non-str-keys",
        ),
        pytest.param({Color.RED: 1}, {"red": 1}, id="enum-key"),
        pytest.param(b"\x00\x01hello", {"$bytes": 7, "base64": "AAFoZWxsbw=="}, id="bytes"),
        pytest.param(bytearray(b"ab"), {"$bytes": 2, "base64": "YWI="}, id="bytearray"),
        pytest.param(
            ValueError("bad input"), {"type": "ValueError", "message": "bad input"}, id="exception"
        ),
        pytest.param(
            Item(name="n", tags=["t"]), {"name": "n", "tags": ["t"], "when": None}, id="pydantic"
        ),
        pytest.param(Pair(1, [2]), {"left": 1, "right": [2]}, id="dataclass"),
        pytest.param(BadRepr(), "<unrepresentable BadRepr>", id="repr-raises"),
        pytest.param(
            BadStr(), {"type": "BadStr", "message": "<unrepresentable BadStr>"}, id="str-raises"
        ),
        pytest.param(Explodes(a=1), "<unrepresentable Explodes>", id="items-raises"),
    ],
)
def test_capture_converts_value_kind(value: Any, expected: Any) -> None:
    assert capture(value) == expected


def test_capture_of_bytes_previews_only_the_first_bytes() -> None:
    captured = Capturer(bytes_preview=3).capture(b"abcdef")
    assert captured == {"$bytes": 6, "base64": "YWJj"}


def test_capture_of_unknown_object_is_its_repr() -> None:
    class Thing:
        def __repr__(self) -> str:
            return "Thing(1)"

    assert capture(Thing()) == "Thing(1)"


def test_capture_of_long_repr_is_truncated_with_marker() -> None:
    captured = Capturer(max_repr_length=10).capture(LongRepr())
    assert captured == "xxxxxxxxxx…[truncated 4990 chars]"


def test_capture_output_is_json_serialisable_for_every_kind() -> None:
    value = {
        "n": float("nan"),
        "b": b"x",
        "s": {1},
        "d": dt.datetime(2024, 1, 1),
        "e": KeyError("k"),
        "o": object(),
        "m": Item(name="x", when=dt.date(2024, 1, 1)),
    }
    assert json.loads(json.dumps(capture(value), allow_nan=False))["m"]["when"] == "2024-01-01"


def test_capture_snapshots_values_so_later_mutation_does_not_change_it() -> None:
    value: dict[str, Any] = {"list": [1, 2], "nested": {"k": "v"}, "pair": Pair([1])}
    captured = capture(value)
    value["list"].append(3)
    value["nested"]["k"] = "changed"
    value["pair"].left.append(2)
    value["new"] = 1
    assert captured == {"list": [1, 2], "nested": {"k": "v"}, "pair": {"left": [1], "right": None}}


def test_capture_mapping_snapshots_the_top_level_dict() -> None:
    args: dict[str, Any] = {"a": 1, "b": "x"}
    captured = capture_mapping(args)
    args["a"] = 2
    assert captured == {"a": 1, "b": "x"} and captured is not args


def test_capture_marks_a_self_referencing_list_as_cycle() -> None:
    items: list[Any] = [1]
    items.append(items)
    assert capture(items) == [1, "<cycle>"]


def test_capture_mapping_marks_a_self_referencing_dict_as_cycle() -> None:
    data: dict[str, Any] = {"a": 1}
    data["self"] = data
    assert capture_mapping(data) == {"a": 1, "self": "<cycle>"}


def test_capture_marks_a_cycle_through_a_dataclass() -> None:
    pair = Pair(1)
    pair.right = [pair]
    assert capture(pair) == {"left": 1, "right": ["<cycle>"]}


def test_capture_of_pydantic_model_with_cycle_falls_back_to_fields() -> None:
    node = Node(label="a")
    node.child = node
    assert capture(node) == {"label": "a", "child": "<cycle>"}


def test_shared_references_that_are_not_cycles_are_captured_twice() -> None:
    shared = [1]
    assert capture({"a": shared, "b": shared}) == {"a": [1], "b": [1]}


def test_capture_of_non_finite_floats_inside_containers() -> None:
    assert capture([float("nan"), {"x": float("inf")}]) == ["NaN", {"x": "Infinity"}]


def test_capture_does_not_consume_generators() -> None:
    gen = (i for i in range(3))
    captured = capture(gen)
    assert (
        isinstance(captured, str) and captured.startswith("<generator") and list(gen) == [0, 1, 2]
    )


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"a": 1}, {"a": 1}, id="mapping-fields"),
        pytest.param(Item(name="n"), {"name": "n", "tags": [], "when": None}, id="pydantic-fields"),
        pytest.param(Pair(1), {"left": 1, "right": None}, id="dataclass-fields"),
        pytest.param(5, {"value": 5}, id="scalar-wrapped"),
        pytest.param([1, 2], {"value": [1, 2]}, id="list-wrapped"),
        pytest.param(None, {"value": None}, id="none-wrapped"),
        pytest.param("x", {"value": "x"}, id="str-wrapped"),
        pytest.param(pydantic.RootModel[list[int]]([1]), {"value": [1]}, id="root-model-wrapped"),
        pytest.param({"api_key": "sk"}, {"api_key": "[REDACTED]"}, id="mapping-redacted"),
    ],
)
def test_capture_result_gives_the_documented_result_shape(value: Any, expected: Any) -> None:
    assert capture_result(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param("s", True, id="str"),
        pytest.param(1, True, id="int"),
        pytest.param(None, True, id="none"),
        pytest.param(False, True, id="bool"),
        pytest.param(2.5, True, id="float"),
        pytest.param(Text("s"), False, id="str-subclass"),
        pytest.param([1], False, id="list"),
        pytest.param(Level.HIGH, False, id="int-enum"),
    ],
)
def test_is_atomic_means_exact_json_scalar_type(value: Any, expected: bool) -> None:
    assert is_atomic(value) is expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param({"b": 1, "a": 2}.keys(), ["b", "a"], id="keys-in-dict-order"),
        pytest.param({"b": 1, "a": 2}.values(), [1, 2], id="values-in-dict-order"),
        pytest.param({"b": 1}.items(), [["b", 1]], id="items-as-pairs"),
        pytest.param(range(3), [0, 1, 2], id="range"),
        pytest.param({2, "a", 1.5}, [1.5, 2, "a"], id="mixed-set-by-type-then-repr"),
        pytest.param(2**64 - 1, 2**64 - 1, id="largest-unsigned-64-bit-int"),
        pytest.param(-(2**63), -(2**63), id="smallest-signed-64-bit-int"),
        pytest.param(2**64, "18446744073709551616…[int beyond 64 bits]", id="int-beyond-64-bits"),
        pytest.param("a\udcffb", "a\\udcffb…[escaped 1 lone surrogate]", id="lone-surrogate"),
        pytest.param(float("nan"), "NaN", id="nan"),
    ],
)
def test_capture_records_the_contract_form(value: Any, expected: Any) -> None:
    assert capture(value) == expected


class Counted:
    """An element that counts how often a capture looks at it."""

    reprs = 0
    comparisons = 0

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Counted) and other.n == self.n

    def __lt__(self, other: Counted) -> bool:
        Counted.comparisons += 1
        return self.n < other.n

    def __repr__(self) -> str:
        Counted.reprs += 1
        return f"C{self.n}"


def test_a_large_set_costs_what_its_kept_items_cost() -> None:
    Counted.reprs = Counted.comparisons = 0
    captured = Capturer(max_items=100).capture({Counted(n) for n in range(50_000)})
    assert isinstance(captured, list) and captured[-1] == "…[49900 more items]"
    # Only the kept items are sorted and recorded: not 50,000 reprs and a full sort.
    assert Counted.reprs == 100 and Counted.comparisons < 1_000


def test_a_small_set_is_recorded_sorted_whatever_its_insertion_order() -> None:
    assert capture({"b", "c", "a"}) == capture({"c", "a", "b"}) == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"max_depth": 500}, "max_depth must be at most 200", id="too-deep"),
        pytest.param({"max_items": -1}, "max_items must be 0 or more", id="negative"),
    ],
)
def test_a_capturer_refuses_limits_it_cannot_honour(options: dict[str, Any], message: str) -> None:
    with pytest.raises(PrefactorConfigError, match=message):
        Capturer(**options)


class Broken(pydantic.BaseModel):
    name: str = "n"

    def model_dump(self, **kwargs: Any) -> Any:
        raise RuntimeError("no dump")


def test_a_result_model_whose_fields_cannot_be_captured_is_a_marker_not_a_value() -> None:
    assert capture_result(Broken()) == {"name": "n"}
    assert Capturer(max_depth=0).capture_result(Broken()) == {"…": "<max depth: Broken>"}
