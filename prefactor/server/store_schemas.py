"""The schema side of the store: compiled span and quality schemas of one schema version.

A schema version is checked and compiled once, at registration; afterwards the
store keeps one :class:`SchemaSet` per version id, so validating a span costs
one dictionary lookup and one call of the compiled validator.

Rules the wire contract leaves open, decided here:

* the flat ``span_schemas`` / ``span_result_schemas`` maps and the richer
  ``span_type_schemas`` list may be combined; for a name present in both, the
  ``span_type_schemas`` entry wins. A name only in ``span_result_schemas`` is a
  known span type whose params are not checked.
* a register without ``agent_schema_version`` gets an *open* set: any
  ``schema_name`` and any quality name is accepted, nothing is validated.
* templates (``template``, ``result_template``, quality ``template``) support
  ``{{ dotted.path }}`` interpolation only; Liquid tags and filters are left
  as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from prefactor._api.models import AgentSchemaVersionForRegister
from prefactor._errors import PrefactorError
from prefactor._schemas.validation import CompiledSchema, SchemaDefinitionError, compile_schema

__all__ = [
    "OPEN_SCHEMA_SET",
    "QualityType",
    "SchemaProblems",
    "SchemaSet",
    "SpanType",
    "render_template",
]

_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][\w.]*)\s*\}\}")


def render_template(template: str | None, data: Mapping[str, Any] | None) -> str | None:
    """Fill ``{{ a.b }}`` placeholders from ``data``; missing values render empty."""
    if template is None or data is None:
        return None

    def lookup(match: re.Match[str]) -> str:
        value: Any = data
        for part in match.group(1).split("."):
            if isinstance(value, Mapping) and part in value:
                value = value[part]
            else:
                return ""
        return value if isinstance(value, str) else json.dumps(value)

    return _PLACEHOLDER.sub(lookup, template)


@dataclass(frozen=True, slots=True)
class SpanType:
    """One span type: its compiled params/result schemas, title and templates."""

    name: str
    params: CompiledSchema | None
    result: CompiledSchema | None
    title: str
    template: str | None = None
    result_template: str | None = None


@dataclass(frozen=True, slots=True)
class QualityType:
    """One quality evaluation: its compiled schema, title and template."""

    name: str
    schema: CompiledSchema
    title: str
    template: str | None = None


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """Every span and quality type of one schema version (``open``: accept anything)."""

    open: bool
    span_types: dict[str, SpanType] = field(default_factory=dict)
    quality: dict[str, QualityType] = field(default_factory=dict)

    @classmethod
    def from_definition(cls, definition: AgentSchemaVersionForRegister) -> SchemaSet:
        """Compile every schema of a registered version.

        Raises:
            SchemaProblems: one or more schemas are not valid JSON Schemas; ``errors``
                maps the request path of each to its reason.
        """
        problems: dict[str, list[str]] = {}

        def compiled(where: str, schema: Mapping[str, Any] | None) -> CompiledSchema | None:
            if schema is None:
                return None
            try:
                return compile_schema(schema)
            except SchemaDefinitionError as exc:
                problems[f"agent_schema_version.{where}"] = [str(exc)]
                return None

        types: dict[str, SpanType] = {}
        results = definition.span_result_schemas or {}
        params = definition.span_schemas or {}
        for name in {*params, *results}:
            types[name] = SpanType(
                name=name,
                params=compiled(f"span_schemas.{name}", params.get(name)),
                result=compiled(f"span_result_schemas.{name}", results.get(name)),
                title=name,
            )
        for entry in definition.span_type_schemas or []:
            where = f"span_type_schemas.{entry.name}"
            types[entry.name] = SpanType(
                name=entry.name,
                params=compiled(f"{where}.params_schema", entry.params_schema),
                result=compiled(f"{where}.result_schema", entry.result_schema),
                title=entry.title or entry.name,
                template=entry.template,
                result_template=entry.result_template,
            )
        quality: dict[str, QualityType] = {}
        for q in definition.quality_schemas or []:
            schema = compiled(f"quality_schemas.{q.name}.schema", q.schema_)
            if schema is not None:
                quality[q.name] = QualityType(q.name, schema, q.title or q.name, q.template)
        if problems:
            raise SchemaProblems(problems)
        return cls(open=False, span_types=types, quality=quality)


class SchemaProblems(PrefactorError, ValueError):
    """Schemas of a version that do not compile, keyed by request path."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid schema: " + ", ".join(sorted(errors)))
        self.errors = errors


OPEN_SCHEMA_SET = SchemaSet(open=True)
