"""Compiled schemas stay within themselves and within bounds, whoever wrote them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from prefactor._schemas.registry import SchemaRegistry
from prefactor._schemas.validation import (
    MAX_SCHEMA_DEPTH,
    CompiledSchema,
    SchemaDefinitionError,
    compile_schema,
)


def _nested_items(levels: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(levels - 1):
        schema = {"items": schema}
    return schema


def test_a_schema_at_the_depth_limit_compiles() -> None:
    schema = CompiledSchema(_nested_items(MAX_SCHEMA_DEPTH))
    value: Any = "x"
    for _ in range(MAX_SCHEMA_DEPTH - 1):
        value = [value]
    assert schema.errors(value) == [
        ("$" + "[0]" * (MAX_SCHEMA_DEPTH - 1), "'x' is not of type 'integer'")
    ]


def test_a_schema_one_level_past_the_limit_is_refused() -> None:
    with pytest.raises(SchemaDefinitionError, match="nests deeper than 64 levels"):
        CompiledSchema(_nested_items(MAX_SCHEMA_DEPTH + 1))


def test_compile_schema_refuses_a_schema_too_deep_to_serialise() -> None:
    with pytest.raises(SchemaDefinitionError, match="nests deeper"):
        compile_schema(_nested_items(5_000))


@pytest.mark.parametrize(
    "ref",
    [
        pytest.param("https://example.invalid/schema.json", id="url"),
        pytest.param("http://127.0.0.1:1/schema.json", id="loopback-url"),
        pytest.param("other.json", id="relative-without-base"),
        pytest.param("#/$defs/missing", id="dangling-pointer"),
    ],
)
def test_a_ref_that_does_not_resolve_within_the_schema_is_refused(ref: str) -> None:
    with pytest.raises(SchemaDefinitionError, match="invalid JSON Schema"):
        CompiledSchema({"properties": {"a": {"$ref": ref}}})


def test_a_ref_to_a_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    target = tmp_path / "word.json"
    target.write_text('{"type": "string"}')
    with pytest.raises(SchemaDefinitionError, match="never fetched"):
        CompiledSchema({"properties": {"a": {"$ref": target.as_uri()}}})


def test_a_ref_to_an_id_inside_the_document_resolves() -> None:
    schema = CompiledSchema(
        {
            "$id": "https://example.invalid/root",
            "properties": {"a": {"$ref": "word"}},
            "$defs": {"w": {"$id": "word", "type": "string"}},
        }
    )
    assert schema.errors({"a": 1}) == [("$.a", "1 is not of type 'string'")]


def test_an_unknown_meta_schema_is_refused_rather_than_fetched() -> None:
    with pytest.raises(SchemaDefinitionError, match=r"example\.invalid/meta"):
        CompiledSchema({"$schema": "https://example.invalid/meta", "type": "object"})


def test_the_sdk_registry_refuses_a_remote_ref_when_the_type_is_registered() -> None:
    with pytest.raises(SchemaDefinitionError, match="never fetched"):
        SchemaRegistry().register_type(
            "t:remote", {"properties": {"a": {"$ref": "https://example.invalid/a.json"}}}
        )


@pytest.mark.timeout(20)
def test_a_backtracking_pattern_is_explained_by_the_linear_engine() -> None:
    schema = CompiledSchema({"properties": {"w": {"type": "string", "pattern": "^(a+)+$"}}})
    word = "a" * 40 + "!"
    assert schema.errors({"w": word}) == [("$.w", f'"{word}" does not match "^(a+)+$"')]


@pytest.mark.timeout(20)
def test_a_backreference_pattern_gives_up_after_its_step_bound() -> None:
    schema = CompiledSchema({"properties": {"w": {"type": "string", "pattern": "^(a|a)+\\1$"}}})
    ((path, reason),) = schema.errors({"w": "a" * 5_000 + "!"})
    assert (path, "backtracking" in reason) == ("$.w", True)


def test_schemas_without_nonlinear_keywords_keep_python_jsonschema_messages() -> None:
    schema = CompiledSchema({"properties": {"role": {"enum": ["user", "assistant"]}}})
    assert schema.errors({"role": "bot"}) == [
        ("$.role", "'bot' is not one of ['user', 'assistant']")
    ]


def test_a_recursive_schema_explains_a_payload_deeper_than_pythons_stack() -> None:
    schema = CompiledSchema({"properties": {"c": {"$ref": "#"}}, "additionalProperties": False})
    value: dict[str, Any] = {"x": 1}
    for _ in range(2_000):
        value = {"c": value}
    ((path, _),) = schema.errors(value)
    assert path == "$" + ".c" * 2_000
