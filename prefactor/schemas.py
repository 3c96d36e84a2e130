"""Schemas: span and quality schema registry, validators, schemas derived from type hints."""

from prefactor._schemas.derive import description_for, params_schema_for, result_schema_for
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._schemas.validation import (
    CompiledSchema,
    SchemaDefinitionError,
    compile_schema,
    find_markers,
)

__all__ = [
    "CompiledSchema",
    "SchemaDefinitionError",
    "SchemaRegistry",
    "compile_schema",
    "default_registry",
    "description_for",
    "find_markers",
    "params_schema_for",
    "result_schema_for",
]
