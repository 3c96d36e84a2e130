"""The schema registry: every span type's params/result schema and every quality schema.

It keeps the public methods of prefactor-core's ``SchemaRegistry`` and adds what the
tracing layer needs (compiled validators per span type, idempotent registration,
deterministic version identifiers).

Concurrency model: all state lives in one immutable :class:`_Snapshot`. Mutations build
a new snapshot under a lock and swap the reference; readers never lock, they read
whatever snapshot is current. Compiled validators and the version identifier belong
to a snapshot, so replacing it is also what invalidates them.

Version identifiers are content hashes (``auto-<16 hex>``), never clock-derived:
the same schemas in any process give the same ``external_identifier``, so restarting
an agent does not create a new schema version on the platform (prefactor-core used
``auto-<agent>-<time>``, which did).
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from prefactor._forksafe import renewed_lock
from prefactor._schemas.validation import CompiledSchema, SchemaDefinitionError, compile_schema

__all__ = ["SchemaRegistry", "Side", "default_registry"]

Side = Literal["params", "result"]

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


def _empty() -> Mapping[Any, Any]:
    return _EMPTY


@dataclass(frozen=True)
class _Snapshot:
    """One immutable generation of the registry's contents."""

    span_schemas: Mapping[str, dict[str, Any]] = field(default_factory=_empty)
    span_result_schemas: Mapping[str, dict[str, Any]] = field(default_factory=_empty)
    span_types: Mapping[str, dict[str, Any]] = field(default_factory=_empty)
    quality: Mapping[str, dict[str, Any]] = field(default_factory=_empty)
    validators: Mapping[tuple[str, str], CompiledSchema] = field(default_factory=_empty)
    # Filled lazily (benign race: two threads may compute the same digest).
    digest: list[str] = field(default_factory=list, compare=False)
    # Span type -> its sides' fast checks, filled lazily (same benign race).
    fast: dict[str, tuple[Any, Any]] = field(default_factory=dict, compare=False)
    # The register body under the content hash (see current_schema_version), filled lazily.
    body: list[dict[str, Any]] = field(default_factory=list, compare=False)


# Snapshot sections and their names in an ``agent_schema_version`` body.
_SECTIONS = {
    "span_schemas": "span_schemas",
    "span_result_schemas": "span_result_schemas",
    "span_types": "span_type_schemas",
    "quality": "quality_schemas",
}


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _checked(owner: str, side: str, schema: Any) -> tuple[dict[str, Any], CompiledSchema]:
    """Deep-copy and compile one schema, naming its owner in any error.

    Raises:
        SchemaDefinitionError: the schema is not a mapping, not JSON, or not a valid schema.
    """
    if not isinstance(owner, str) or not owner:
        raise SchemaDefinitionError(f"schema names must be non-empty strings, got {owner!r}")
    if not isinstance(schema, Mapping):
        raise SchemaDefinitionError(
            f"{owner!r} {side} schema must be a mapping, got {type(schema).__name__}"
        )
    try:
        owned: dict[str, Any] = json.loads(_canonical(schema))
    except (TypeError, ValueError) as exc:
        raise SchemaDefinitionError(f"{owner!r} {side} schema is not JSON: {exc}") from None
    try:
        compiled = compile_schema(owned)
    except SchemaDefinitionError as exc:
        raise SchemaDefinitionError(f"{owner!r} {side} schema: {exc}") from None
    return owned, compiled


def _entry(
    name: str,
    title: str | None,
    description: str | None,
    template: str | None,
    data_risk: Mapping[str, Any] | None,
    **schemas: dict[str, Any] | None,
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name}
    entry.update({k: v for k, v in schemas.items() if v is not None})
    optional = {"title": title, "description": description, "template": template}
    entry.update({k: v for k, v in optional.items() if v is not None})
    if data_risk is not None:
        if not isinstance(data_risk, Mapping):
            raise TypeError(f"{name!r} data_risk must be a mapping")
        entry["data_risk"] = json.loads(_canonical(data_risk))
    return entry


class SchemaRegistry:
    """Thread-safe registry of span type and quality schemas.

    Every schema is validated and compiled when it is registered, so a malformed schema
    fails at import time with a message naming its span type, not at the first span.
    """

    def __init__(self) -> None:
        self._lock = renewed_lock(self)
        self._snap = _Snapshot()

    # -- prefactor-core API --------------------------------------------------------------

    def register(self, schema_name: str, schema: Mapping[str, Any]) -> None:
        """Register a flat params schema (``span_schemas``).

        Raises:
            ValueError: ``schema_name`` already has a flat params schema.
            SchemaDefinitionError: the schema is malformed.
        """
        owned, _ = _checked(schema_name, "params", schema)
        with self._lock:
            if schema_name in self._snap.span_schemas:
                raise ValueError(f"schema {schema_name!r} is already registered")
            self._put_flat("span_schemas", schema_name, owned)

    def register_unsafe(self, schema_name: str, schema: Mapping[str, Any]) -> None:
        """Register or overwrite a flat params schema."""
        owned, _ = _checked(schema_name, "params", schema)
        with self._lock:
            self._put_flat("span_schemas", schema_name, owned)

    def register_result(self, schema_name: str, result_schema: Mapping[str, Any]) -> None:
        """Register a flat result schema (``span_result_schemas``), once per name.

        Raises:
            ValueError: ``schema_name`` already has a flat result schema.
            SchemaDefinitionError: the schema is malformed.
        """
        owned, _ = _checked(schema_name, "result", result_schema)
        with self._lock:
            if schema_name in self._snap.span_result_schemas:
                raise ValueError(f"Result schema {schema_name!r} is already registered")
            self._put_flat("span_result_schemas", schema_name, owned)

    def register_type(  # noqa: PLR0917 (prefactor-core's positional signature)
        self,
        name: str,
        params_schema: Mapping[str, Any],
        result_schema: Mapping[str, Any] | None = None,
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Register a span type (``span_type_schemas`` entry, API §5.2).

        Registering the identical definition again is a no-op (decorators may run twice).

        Raises:
            ValueError: ``name`` exists with a different definition and ``replace`` is false.
            SchemaDefinitionError: a schema is malformed.
        """
        params, _ = _checked(name, "params", params_schema)
        result = None if result_schema is None else _checked(name, "result", result_schema)[0]
        entry = _entry(
            name,
            title,
            description,
            template,
            data_risk,
            params_schema=params,
            result_schema=result,
        )
        with self._lock:
            snap = self._snap
            old = snap.span_types.get(name)
            if old == entry:
                return
            if old is not None and not replace:
                raise ValueError(
                    f"span type {name!r} is already registered with a different definition "
                    "(pass replace=True to overwrite)"
                )
            self._swap(snap, {name}, span_types={**snap.span_types, name: entry})

    def register_quality_schema(  # noqa: PLR0917 (prefactor-core's signature)
        self,
        name: str,
        schema: Mapping[str, Any],
        title: str | None = None,
        description: str | None = None,
        template: str | None = None,
        data_risk: Mapping[str, Any] | None = None,
        *,
        replace: bool = False,
    ) -> None:
        """Register a quality schema (API §5.3; its JSON Schema goes under the key ``schema``).

        Unlike span types, which decorators may register again, a quality name
        is registered once, as in prefactor-core.

        Raises:
            ValueError: ``name`` is already registered and ``replace`` is false.
            SchemaDefinitionError: the schema is malformed.
        """
        owned, _ = _checked(name, "quality", schema)
        entry = _entry(name, title, description, template, data_risk, schema=owned)
        with self._lock:
            snap = self._snap
            if name in snap.quality and not replace:
                raise ValueError(f"Quality schema {name!r} is already registered")
            self._swap(snap, (), quality={**snap.quality, name: entry})

    def get(self, schema_name: str) -> dict[str, Any] | None:
        """A copy of the flat params schema registered under ``schema_name`` (span_schemas only)."""
        found = self._snap.span_schemas.get(schema_name)
        return copy.deepcopy(found) if found is not None else None

    def list_schemas(self) -> list[str]:
        """Names with a flat params schema (span_schemas only), sorted."""
        return sorted(self._snap.span_schemas)

    def has_schema(self, schema_name: str) -> bool:
        """Whether ``schema_name`` is a flat params schema or a span type."""
        snap = self._snap
        return schema_name in snap.span_schemas or schema_name in snap.span_types

    def to_agent_schema_version(self, external_id: str | None = None) -> dict[str, Any]:
        """The ``agent_schema_version`` register body (API §5.1), non-empty sections only.

        Args:
            external_id: used verbatim as ``external_identifier`` when given; when ``None``,
                :meth:`version_identifier` (a content hash) is used instead.
        """
        snap = self._snap
        body = self._content(snap)
        body["external_identifier"] = (
            external_id if external_id is not None else self._identifier(snap, "auto")
        )
        return body

    def current_schema_version(self) -> dict[str, Any]:
        """:meth:`to_agent_schema_version` under :meth:`version_identifier`, made once per change.

        The same object until something is registered: for callers on a hot
        path (each root call of ``@traced`` registers an instance with it),
        which must treat it as read-only.
        """
        snap = self._snap
        if not snap.body:
            body = self._content(snap)
            body["external_identifier"] = self._identifier(snap, "auto")
            snap.body.append(body)
        return snap.body[0]

    def merge(self, other: SchemaRegistry) -> None:
        """Add every definition of ``other``; identical schemas and span types are fine.

        A quality name in both registries conflicts, as it would when registered
        twice. Nothing is changed when anything conflicts.

        Raises:
            ValueError: names taken, listed as ``<section>/<name>`` (for example
                ``span_type_schemas/agent:llm`` or ``quality_schemas/accuracy``).
        """
        theirs = other._snap
        with self._lock:
            snap = self._snap
            merged: dict[str, dict[str, Any]] = {}
            conflicts: list[str] = []
            for section, wire in _SECTIONS.items():
                mine: Mapping[str, dict[str, Any]] = getattr(snap, section)
                other_section: Mapping[str, dict[str, Any]] = getattr(theirs, section)
                conflicts += [
                    f"{wire}/{name}"
                    for name, value in other_section.items()
                    if name in mine and (mine[name] != value or section == "quality")
                ]
                merged[section] = {**other_section, **mine}
            if conflicts:
                raise ValueError(f"cannot merge, names already taken: {', '.join(conflicts)}")
            touched = {*theirs.span_schemas, *theirs.span_result_schemas, *theirs.span_types}
            self._swap(snap, touched, **merged)

    # -- additions used by tracing ---------------------------------------------------------

    def validator_for(self, span_type: str, side: Side) -> CompiledSchema | None:
        """The compiled validator of ``span_type``'s params or result schema, if any.

        A span type entry wins over the flat forms of the same name.
        """
        return self._snap.validators.get((span_type, side))

    def fast_checks(self, span_type: str) -> tuple[Any, Any]:
        """jsonschema-rs's ``is_valid`` for ``span_type``'s params and result.

        ``None`` for a side without a fast validator. Computed once per
        generation of the registry's contents, for callers on a hot path; a
        payload a fast check does not accept still needs :meth:`validator_for`
        (see :func:`prefactor._schemas.validation.fast_accepts`).
        """
        snap = self._snap
        found = snap.fast.get(span_type)
        if found is None:
            params = snap.validators.get((span_type, "params"))
            result = snap.validators.get((span_type, "result"))
            found = (
                params.fast_is_valid if params is not None else None,
                result.fast_is_valid if result is not None else None,
            )
            snap.fast[span_type] = found
        return found

    def is_registered(self, span_type: str) -> bool:
        """Whether ``span_type`` has a params schema (span type or flat form)."""
        return (span_type, "params") in self._snap.validators

    def span_types(self) -> list[str]:
        """Names of registered span types, sorted."""
        return sorted(self._snap.span_types)

    def describe(self, span_type: str) -> dict[str, Any] | None:
        """A copy of ``span_type``'s ``span_type_schemas`` entry, or ``None``."""
        found = self._snap.span_types.get(span_type)
        return copy.deepcopy(found) if found is not None else None

    def version_identifier(self, prefix: str = "auto") -> str:
        """``<prefix>-<16 hex>``: a hash of the registered content, stable across processes."""
        return self._identifier(self._snap, prefix)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.has_schema(name)

    def __repr__(self) -> str:
        snap = self._snap
        return (
            f"SchemaRegistry(span_types={len(snap.span_types)}, "
            f"span_schemas={len(snap.span_schemas)}, quality_schemas={len(snap.quality)})"
        )

    # -- internals -------------------------------------------------------------------------

    def _put_flat(self, section: str, name: str, schema: dict[str, Any]) -> None:
        """Store a flat schema; the caller holds the lock."""
        snap = self._snap
        current: Mapping[str, dict[str, Any]] = getattr(snap, section)
        self._swap(snap, {name}, **{section: {**current, name: schema}})

    def _swap(self, snap: _Snapshot, touched: Iterable[str], **changes: Any) -> None:
        """Publish a new snapshot; the caller holds the lock.

        Validators are recomputed only for the ``touched`` names (the others cannot change).
        """
        fields: dict[str, Mapping[str, Any]] = {
            "span_schemas": snap.span_schemas,
            "span_result_schemas": snap.span_result_schemas,
            "span_types": snap.span_types,
            "quality": snap.quality,
        }
        fields.update({k: MappingProxyType(dict(v)) for k, v in changes.items()})
        validators = dict(snap.validators)
        for name in touched:
            entry = fields["span_types"].get(name) or {}
            flat = {"params": fields["span_schemas"], "result": fields["span_result_schemas"]}
            for side, section in flat.items():
                # A span type entry's own schema wins over the flat form of the same name.
                schema = entry.get(f"{side}_schema") or section.get(name)
                if schema is None:
                    validators.pop((name, side), None)
                else:
                    validators[(name, side)] = compile_schema(schema)
        self._snap = _Snapshot(
            span_schemas=fields["span_schemas"],
            span_result_schemas=fields["span_result_schemas"],
            span_types=fields["span_types"],
            quality=fields["quality"],
            validators=validators,  # a plain dict (a proxy slows each lookup); never mutated
        )

    @staticmethod
    def _content(snap: _Snapshot) -> dict[str, Any]:
        # Sorted by name so that registration order (import order) never changes the hash.
        body: dict[str, Any] = {}
        if snap.span_schemas:
            body["span_schemas"] = {k: snap.span_schemas[k] for k in sorted(snap.span_schemas)}
        if snap.span_result_schemas:
            results = snap.span_result_schemas
            body["span_result_schemas"] = {k: results[k] for k in sorted(results)}
        if snap.span_types:
            body["span_type_schemas"] = [snap.span_types[k] for k in sorted(snap.span_types)]
        if snap.quality:
            body["quality_schemas"] = [snap.quality[k] for k in sorted(snap.quality)]
        return copy.deepcopy(body)

    def _identifier(self, snap: _Snapshot, prefix: str) -> str:
        if not snap.digest:
            text = _canonical(self._content(snap))
            snap.digest.append(hashlib.sha256(text.encode("utf-8")).hexdigest()[:16])
        return f"{prefix}-{snap.digest[0]}"


_default = SchemaRegistry()


def default_registry() -> SchemaRegistry:
    """The process-wide registry that decorators register into unless told otherwise."""
    return _default
