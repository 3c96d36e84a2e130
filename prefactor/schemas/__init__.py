"""Schemas: the registry of span/quality schemas, validators, and schemas from type hints."""

from prefactor.schemas.derive import description_for, params_schema_for, result_schema_for
from prefactor.schemas.registry import SchemaRegistry, default_registry
from prefactor.schemas.validation import CompiledSchema, SchemaDefinitionError, compile_schema

__all__ = [
    "CompiledSchema",
    "SchemaDefinitionError",
    "SchemaRegistry",
    "compile_schema",
    "default_registry",
    "description_for",
    "params_schema_for",
    "result_schema_for",
]
