"""SchemaRegistry: prefactor-core's methods, idempotent types, validators, versions."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from prefactor.schemas import SchemaDefinitionError, SchemaRegistry, default_registry

PARAMS = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
RESULT = {"type": "object", "properties": {"value": {"type": "integer"}}}
RISK = {"action_profile": {}, "params_data_categories": {}, "result_data_categories": {}}
REPO = Path(__file__).resolve().parents[2]


def make_registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register_type("agent:search", PARAMS, RESULT, title="Search", template="{{q}}")
    registry.register("legacy:llm", {"type": "object"})
    registry.register_result("legacy:llm", {"type": "object"})
    registry.register_quality_schema("accuracy", {"type": "object"}, data_risk=RISK)
    return registry


def test_register_duplicate_flat_schema_raises_value_error() -> None:
    registry = SchemaRegistry()
    registry.register("a", PARAMS)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("a", PARAMS)


def test_register_result_under_a_taken_name_raises_value_error() -> None:
    registry = SchemaRegistry()
    registry.register_result("a", RESULT)
    with pytest.raises(ValueError, match="Result schema 'a' is already registered"):
        registry.register_result("a", RESULT)


def test_register_unsafe_overwrites_flat_schema() -> None:
    registry = SchemaRegistry()
    registry.register("a", PARAMS)
    registry.register_unsafe("a", {"type": "object"})
    assert registry.get("a") == {"type": "object"}


def test_get_and_list_schemas_see_only_flat_params_schemas() -> None:
    registry = make_registry()
    assert (registry.get("agent:search"), registry.list_schemas()) == (None, ["legacy:llm"])


def test_has_schema_sees_flat_schemas_and_span_types() -> None:
    registry = make_registry()
    found = [registry.has_schema(n) for n in ("agent:search", "legacy:llm", "accuracy", "x")]
    assert found == [True, True, False, False]


def test_get_returns_a_copy_that_cannot_change_the_registry() -> None:
    registry = make_registry()
    copy = registry.get("legacy:llm")
    assert copy is not None
    copy["type"] = "string"
    assert registry.get("legacy:llm") == {"type": "object"}


def test_registered_schema_is_snapshotted_against_later_mutation_by_caller() -> None:
    registry = SchemaRegistry()
    schema: dict[str, Any] = {"type": "object", "properties": {}}
    registry.register_type("t", schema)
    schema["properties"]["x"] = {"type": "integer"}
    assert registry.describe("t") == {
        "name": "t",
        "params_schema": {"type": "object", "properties": {}},
    }


def test_to_agent_schema_version_emits_every_section_in_wire_shape() -> None:
    body = make_registry().to_agent_schema_version("v1")
    assert body == {
        "external_identifier": "v1",
        "span_schemas": {"legacy:llm": {"type": "object"}},
        "span_result_schemas": {"legacy:llm": {"type": "object"}},
        "span_type_schemas": [
            {
                "name": "agent:search",
                "params_schema": PARAMS,
                "result_schema": RESULT,
                "title": "Search",
                "template": "{{q}}",
            }
        ],
        "quality_schemas": [{"name": "accuracy", "schema": {"type": "object"}, "data_risk": RISK}],
    }


def test_to_agent_schema_version_omits_empty_sections() -> None:
    registry = SchemaRegistry()
    registry.register_type("t", PARAMS)
    assert sorted(registry.to_agent_schema_version("v")) == [
        "external_identifier",
        "span_type_schemas",
    ]


def test_to_agent_schema_version_without_id_uses_the_content_hash() -> None:
    registry = make_registry()
    body = registry.to_agent_schema_version(None)
    assert body["external_identifier"] == registry.version_identifier()


def test_current_schema_version_is_one_object_until_something_is_registered() -> None:
    registry = make_registry()
    first = registry.current_schema_version()
    assert first == registry.to_agent_schema_version(None)
    assert registry.current_schema_version() is first
    registry.register_type("agent:other", PARAMS)
    second = registry.current_schema_version()
    assert second is not first
    assert second == registry.to_agent_schema_version(None)
    assert second["external_identifier"] != first["external_identifier"]
    assert "agent:other" not in {entry["name"] for entry in first["span_type_schemas"]}


def test_version_identifier_is_auto_prefix_and_sixteen_hex_digits() -> None:
    ident = make_registry().version_identifier()
    prefix, digest = ident.split("-")
    assert (prefix, len(digest), int(digest, 16) >= 0) == ("auto", 16, True)


def test_version_identifier_accepts_a_custom_prefix() -> None:
    registry = make_registry()
    assert (
        registry.version_identifier("svc") == "svc-" + registry.version_identifier().split("-")[1]
    )


def test_version_identifier_ignores_registration_order() -> None:
    first, second = SchemaRegistry(), SchemaRegistry()
    first.register_type("a", PARAMS)
    first.register_type("b", {"type": "object"})
    second.register_type("b", {"type": "object"})
    second.register_type("a", PARAMS)
    assert first.version_identifier() == second.version_identifier()


def test_version_identifier_changes_when_a_schema_changes() -> None:
    registry = make_registry()
    before = registry.version_identifier()
    registry.register_type("agent:other", PARAMS)
    assert registry.version_identifier() != before


def test_version_identifier_is_the_same_in_another_process() -> None:
    code = (
        "from tests.schemas.test_schema_registry import make_registry;"
        "print(make_registry().version_identifier())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == make_registry().version_identifier()


def test_register_type_with_identical_definition_is_a_no_op() -> None:
    registry = make_registry()
    before = registry.version_identifier()
    registry.register_type("agent:search", PARAMS, RESULT, title="Search", template="{{q}}")
    assert registry.version_identifier() == before


def test_register_type_with_different_definition_raises_value_error() -> None:
    registry = make_registry()
    with pytest.raises(ValueError, match="agent:search"):
        registry.register_type("agent:search", {"type": "object"})


def test_register_type_with_replace_overwrites_the_definition() -> None:
    registry = make_registry()
    registry.register_type("agent:search", {"type": "object"}, replace=True)
    assert registry.describe("agent:search") == {
        "name": "agent:search",
        "params_schema": {"type": "object"},
    }


@pytest.mark.parametrize(
    "schema",
    [pytest.param({"type": "string"}, id="different"), pytest.param({"type": "object"}, id="same")],
)
def test_register_quality_schema_under_a_taken_name_raises_value_error(
    schema: dict[str, Any],
) -> None:
    registry = make_registry()
    with pytest.raises(ValueError, match="Quality schema 'accuracy' is already registered"):
        registry.register_quality_schema("accuracy", schema, data_risk=RISK)


def test_register_quality_schema_with_replace_overwrites_it() -> None:
    registry = make_registry()
    registry.register_quality_schema("accuracy", {"type": "string"}, replace=True)
    (entry,) = registry.to_agent_schema_version("v")["quality_schemas"]
    assert entry == {"name": "accuracy", "schema": {"type": "string"}}


@pytest.mark.parametrize(
    ("register", "message"),
    [
        pytest.param(
            lambda r: r.register_type("bad:type", {"type": "nonsense"}),
            "'bad:type' params schema",
            id="type-params",
        ),
        pytest.param(
            lambda r: r.register_type("bad:type", {}, {"minimum": "zero"}),
            "'bad:type' result schema",
            id="type-result",
        ),
        pytest.param(lambda r: r.register("bad:flat", {"type": 3}), "'bad:flat'", id="flat"),
        pytest.param(
            lambda r: r.register_quality_schema("bad:q", {"required": "x"}), "'bad:q'", id="quality"
        ),
        pytest.param(
            lambda r: r.register_type("bad:json", {"default": object()}), "not JSON", id="not-json"
        ),
        pytest.param(lambda r: r.register_type("bad:list", []), "must be a mapping", id="not-dict"),
    ],
)
def test_malformed_schema_is_rejected_at_registration_naming_the_span_type(
    register: Any, message: str
) -> None:
    registry = SchemaRegistry()
    with pytest.raises(SchemaDefinitionError, match=message):
        register(registry)
    assert registry.span_types() == []


def test_merge_adds_the_other_registrys_definitions() -> None:
    registry, other = SchemaRegistry(), make_registry()
    registry.merge(other)
    assert registry.to_agent_schema_version("v") == other.to_agent_schema_version("v")


def test_merge_accepts_identical_span_types_and_schemas() -> None:
    registry = make_registry()
    before = registry.to_agent_schema_version("v")
    spans_only = SchemaRegistry()
    spans_only.register_type("agent:search", PARAMS, RESULT, title="Search", template="{{q}}")
    spans_only.register("legacy:llm", {"type": "object"})
    registry.merge(spans_only)
    assert registry.to_agent_schema_version("v") == before


def test_merge_with_a_quality_name_taken_raises_even_when_identical() -> None:
    registry = make_registry()
    before = registry.version_identifier()
    with pytest.raises(ValueError, match="quality_schemas/accuracy"):
        registry.merge(make_registry())
    assert registry.version_identifier() == before


def test_merge_with_conflicting_definition_raises_and_changes_nothing() -> None:
    registry, other = make_registry(), SchemaRegistry()
    other.register_type("new:type", PARAMS)
    other.register_type("agent:search", {"type": "object"})
    before = registry.version_identifier()
    with pytest.raises(ValueError, match="agent:search"):
        registry.merge(other)
    assert (registry.version_identifier(), registry.has_schema("new:type")) == (before, False)


def test_merge_makes_validators_of_merged_types_available() -> None:
    registry = SchemaRegistry()
    registry.merge(make_registry())
    validator = registry.validator_for("agent:search", "params")
    assert validator is not None and validator.errors({}) == [("$", "'q' is a required property")]


def test_validator_for_type_validates_params_and_result() -> None:
    registry = make_registry()
    params, result = (registry.validator_for("agent:search", s) for s in ("params", "result"))
    assert params is not None and result is not None
    assert (params.is_valid({"q": "x"}), params.is_valid({"q": 1})) == (True, False)
    assert (result.is_valid({"value": 2}), result.is_valid({"value": "2"})) == (True, False)


def test_validator_for_flat_forms_uses_register_and_register_result() -> None:
    registry = SchemaRegistry()
    registry.register("flat", PARAMS)
    registry.register_result("flat", RESULT)
    result = registry.validator_for("flat", "result")
    assert registry.validator_for("flat", "params") is not None
    assert result is not None and not result.is_valid({"value": "x"})


def test_validator_for_unknown_type_or_missing_side_is_none() -> None:
    registry = SchemaRegistry()
    registry.register_type("t", PARAMS)
    assert (registry.validator_for("t", "result"), registry.validator_for("x", "params")) == (
        None,
        None,
    )


def test_validator_for_is_cached_between_calls() -> None:
    registry = make_registry()
    first = registry.validator_for("agent:search", "params")
    assert registry.validator_for("agent:search", "params") is first


def test_validator_for_is_invalidated_when_the_type_is_replaced() -> None:
    registry = make_registry()
    registry.register_type("agent:search", {"type": "object", "required": ["other"]}, replace=True)
    params = registry.validator_for("agent:search", "params")
    assert params is not None and (params.is_valid({"q": "x"}), params.is_valid({"other": 1})) == (
        False,
        True,
    )


def test_replacing_a_type_without_result_schema_drops_its_result_validator() -> None:
    registry = make_registry()
    registry.register_type("agent:search", PARAMS, replace=True)
    assert registry.validator_for("agent:search", "result") is None


def test_span_type_schema_wins_over_flat_schema_of_the_same_name() -> None:
    registry = SchemaRegistry()
    registry.register_type("t", {"type": "object", "required": ["typed"]})
    registry.register("t", {"type": "object", "required": ["flat"]})
    params = registry.validator_for("t", "params")
    assert params is not None and params.is_valid({"typed": 1}) and not params.is_valid({"flat": 1})


@pytest.mark.parametrize(
    ("setup", "expected"),
    [
        pytest.param(lambda r: r.register_type("t", PARAMS), True, id="span-type"),
        pytest.param(lambda r: r.register("t", PARAMS), True, id="flat"),
        pytest.param(lambda r: r.register_result("t", RESULT), False, id="result-only"),
        pytest.param(lambda r: r.register_quality_schema("t", RESULT), False, id="quality"),
    ],
)
def test_is_registered_means_a_params_schema_exists(setup: Any, expected: bool) -> None:
    registry = SchemaRegistry()
    setup(registry)
    assert registry.is_registered("t") is expected


def test_span_types_lists_type_names_sorted() -> None:
    registry = SchemaRegistry()
    for name in ("b", "a", "c"):
        registry.register_type(name, PARAMS)
    assert registry.span_types() == ["a", "b", "c"]


def test_describe_unknown_type_is_none() -> None:
    assert SchemaRegistry().describe("nope") is None


def test_default_registry_is_one_process_wide_instance() -> None:
    assert default_registry() is default_registry()


def test_concurrent_registrations_from_threads_all_land() -> None:
    registry = SchemaRegistry()
    barrier = threading.Barrier(8)

    def worker(n: int) -> None:
        barrier.wait()
        for i in range(50):
            registry.register_type(f"t{n}:{i}", PARAMS)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(registry.span_types()) == 400


def test_repr_shows_counts() -> None:
    assert (
        repr(make_registry()) == "SchemaRegistry(span_types=1, span_schemas=1, quality_schemas=1)"
    )
