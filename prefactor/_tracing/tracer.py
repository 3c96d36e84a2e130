"""The synchronous core that every public API drives.

A :class:`Tracer` makes IDs, checks payloads against the instance's schemas,
and turns user calls into frozen records for the exporter. Nothing here waits
for I/O, so the async API of :class:`prefactor.PrefactorCoreClient` is a thin
layer over it and ``@traced`` uses it directly from sync and async code.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

from prefactor._errors import SchemaValidationError
from prefactor._export.base import RecordExporter
from prefactor._forksafe import renewed_lock
from prefactor._ids import generate_pfid, is_pfid, partition_for
from prefactor._records import (
    FinishInstance,
    FinishStatus,
    JSONDict,
    Record,
    RecordQuality,
    RegisterInstance,
    StartInstance,
    Violation,
    iso_from_ns,
    register_item,
    start_item,
)
from prefactor._schemas.registry import SchemaRegistry
from prefactor._schemas.validation import fast_accepts
from prefactor._tracing.capture import Capturer
from prefactor._tracing.guard import contained_count
from prefactor._tracing.state import InstanceState

__all__ = ["Tracer", "registry_from_schema_version"]

logger = logging.getLogger("prefactor.tracing")

Side = Literal["params", "result"]
UNREGISTERED = "span type is not registered in the schema registry"

# Tracers are numbered: a decorated function's plan remembers the number of the
# tracer it was compiled for (see prefactor._tracing.plan).
_generations = itertools.count(1)


def registry_from_schema_version(version: Mapping[str, Any]) -> SchemaRegistry:
    """A registry holding the span and quality schemas of an ``agent_schema_version`` body."""
    registry = SchemaRegistry()
    for name, schema in (version.get("span_schemas") or {}).items():
        registry.register_unsafe(name, schema)
    for name, schema in (version.get("span_result_schemas") or {}).items():
        registry.register_result(name, schema)
    for entry in version.get("span_type_schemas") or []:
        registry.register_type(
            name=entry["name"],
            params_schema=entry["params_schema"],
            result_schema=entry.get("result_schema"),
            title=entry.get("title"),
            description=entry.get("description"),
            template=entry.get("template"),
            data_risk=entry.get("data_risk"),
        )
    for entry in version.get("quality_schemas") or []:
        registry.register_quality_schema(
            name=entry["name"],
            schema=entry["schema"],
            title=entry.get("title"),
            description=entry.get("description"),
            template=entry.get("template"),
            data_risk=entry.get("data_risk"),
        )
    return registry


class _LiveInstances:
    """Instance id -> its :class:`InstanceState` while it lives; keeps none of them alive.

    Weak references without a callback in a plain dict: the callback of a
    ``WeakValueDictionary`` costs about a microsecond per instance (each root call
    of ``@traced`` makes one), half of it in the exporter's thread, where the
    instance dies. Entries of dead instances are swept when the dict has
    doubled since the last sweep: it holds at most about twice the most
    instances alive at once (at least 1,024 entries), and the sweeps cost a
    constant per instance added.
    """

    __slots__ = ("__weakref__", "_lock", "_refs", "_sweep_at")

    _SWEEP_AT_LEAST = 1024

    def __init__(self) -> None:
        self._refs: dict[str, weakref.ref[InstanceState]] = {}
        self._lock = renewed_lock(self)  # adders only; readers take the dict as it is
        self._sweep_at = self._SWEEP_AT_LEAST

    def get(self, instance_id: str) -> InstanceState | None:
        ref = self._refs.get(instance_id)
        return None if ref is None else ref()

    def add(self, inst: InstanceState) -> None:
        with self._lock:
            refs = self._refs
            refs[inst.id] = weakref.ref(inst)
            if len(refs) >= self._sweep_at:
                live = {key: ref for key, ref in refs.items() if ref() is not None}
                self._refs = live
                self._sweep_at = max(self._SWEEP_AT_LEAST, 2 * len(live))

    def __len__(self) -> int:
        """Entries held, dead ones not swept yet included."""
        return len(self._refs)


class Tracer:
    """Turns instance and span events into records, validating on the way.

    Args:
        exporter: where records go (``submit(record)``, ``flush``, ``close``, ``stats``).
        registry: the schemas new instances declare by default.
        validate: check payloads against schemas at all (off: nothing is
            checked or flagged, strict mode included).
        strict: raise :class:`SchemaValidationError` on a violation instead of
            sending the span flagged.
        agent_id: the agent of instances made without one.
        environment_id: sent on register when given.
        capturer: turns user values into JSON-safe snapshots.

    ``strict``, ``validate`` and ``capturer`` are fixed for the tracer's life:
    the plans of decorated functions are compiled against them and keyed by
    the tracer's :attr:`generation`, a number no other tracer has. Different
    settings mean a new tracer (which is what :func:`prefactor.configure` makes).
    """

    def __init__(
        self,
        exporter: RecordExporter,
        registry: SchemaRegistry,
        *,
        strict: bool = False,
        validate: bool = True,
        agent_id: str,
        environment_id: str | None = None,
        capturer: Capturer | None = None,
    ) -> None:
        self.exporter = exporter
        self.registry = registry
        self._validate = validate
        # Strict only means something when payloads are checked.
        self._strict = strict and validate
        self._capturer = capturer if capturer is not None else Capturer()
        self.generation = next(_generations)
        self.agent_id = agent_id
        self.environment_id = environment_id
        self.submit = exporter.submit
        self._instances = _LiveInstances()
        self._lock = renewed_lock(self)
        self._warned: set[tuple[str, str]] = set()
        self._violations = 0
        self._unregistered = 0
        # A deferred instance's registration fields, by its schema version (its agent and
        # environment are this tracer's): see opening_items.
        self._opening_fields: tuple[object, JSONDict] | None = None
        # The agent version of a root call outside any agent (one per call): shared, and
        # read-only, so that registering it copies nothing.
        self.unversioned: Mapping[str, Any] = MappingProxyType(
            {"name": agent_id, "external_identifier": "unversioned"}
        )

    @property
    def strict(self) -> bool:
        """Whether a schema violation raises :class:`SchemaValidationError` in the caller."""
        return self._strict

    @property
    def validate(self) -> bool:
        """Whether payloads are checked against schemas at all."""
        return self._validate

    @property
    def capturer(self) -> Capturer:
        """How user values are turned into JSON-safe snapshots."""
        return self._capturer

    # --- instances ------------------------------------------------------------------------

    def schema_version(self) -> dict[str, Any]:
        """The default registry as an ``agent_schema_version`` body, rebuilt only on change."""
        return self.registry.current_schema_version()

    def new_instance(
        self,
        *,
        agent_version: Mapping[str, Any],
        agent_schema_version: Mapping[str, Any] | None = None,
        use_registry: bool = True,
        schema_version_id: str | None = None,
        agent_id: str | None = None,
        instance_id: str | None = None,
        environment_id: str | None = None,
        purpose: str | None = None,
        external_identifier: str | None = None,
        update_current_version: bool = True,
        agent_from_token: bool = False,
    ) -> InstanceState:
        """Make a pending instance and queue its registration.

        The schemas come from ``agent_schema_version`` when given, else from the
        tracer's registry when ``use_registry`` (under ``schema_version_id``
        if given, else its content hash); with neither, the instance
        declares no schemas and its spans are not validated. Without
        ``agent_id`` the instance is the tracer's agent's, unless
        ``agent_from_token``: then the registration leaves the agent out, for
        the server to take it from a deployment-scoped token.

        Raises:
            ValueError: ``instance_id`` is not a PFID.
        """
        if instance_id is not None and not is_pfid(instance_id):
            raise ValueError(
                f"instance_id must be a PFID (32 base-32 characters), got {instance_id!r}"
            )
        agent = agent_id or self.agent_id
        partition = partition_for(agent)
        registry: SchemaRegistry | None
        if agent_schema_version is not None:
            version: Mapping[str, Any] | None = agent_schema_version
            registry = registry_from_schema_version(agent_schema_version)
        elif use_registry:
            version = (
                self.schema_version()
                if schema_version_id is None
                else self.registry.to_agent_schema_version(schema_version_id)
            )
            registry = self.registry
        else:
            version, registry = None, None
        inst = InstanceState(
            self, instance_id or generate_pfid(partition), agent, partition, registry
        )
        self._instances.add(inst)
        self.submit(
            RegisterInstance(  # positional: a third of the keyword call's cost, per root call
                inst.id,  # instance_id
                None if agent_from_token and not agent_id else agent,  # agent_id
                agent_version if agent_version is self.unversioned else dict(agent_version),
                version,  # agent_schema_version
                environment_id or self.environment_id,
                purpose,
                external_identifier,
                update_current_version,
            )
        )
        return inst

    def deferred_instance(self) -> InstanceState:
        """The instance of a ``@traced`` call outside any span: made and started, not sent yet.

        Registered as :meth:`new_instance` would register it with the agent
        version ``unversioned`` and this tracer's schemas, but later: together
        with its root span when that is the first thing of it sent (one
        record; see :class:`~prefactor._tracing.call.RootCall`), else by
        :meth:`announce`, ahead of whatever is.
        """
        agent = self.agent_id
        partition = partition_for(agent)
        now = time.time_ns()
        inst = InstanceState(self, generate_pfid(partition, now), agent, partition, self.registry)
        inst.version = self.schema_version()
        inst.opened_at = now
        inst.started = True  # its start is sent with its registration
        inst.deferred = {"register": True}
        self._instances.add(inst)
        return inst

    def opening(self, inst: InstanceState) -> tuple[RegisterInstance, StartInstance]:
        """The records that register and start a deferred instance (:meth:`deferred_instance`)."""
        return (
            RegisterInstance(
                inst.id, inst.agent_id, self.unversioned, inst.version, self.environment_id
            ),
            StartInstance(inst.id, inst.opened_at),
        )

    def opening_items(self, inst: InstanceState) -> tuple[JSONDict, JSONDict]:
        """The wire items of :meth:`opening`'s records, without the records.

        A root call's registration differs from the last one only in the
        instance's id while the schema version is the same object: its other
        fields are made once, from the first of these instances, and shared.
        """
        shared = self._opening_fields
        if shared is None or shared[0] is not inst.version:
            shared = self._opening_fields = (inst.version, self.opening(inst)[0].fields())
        return register_item(inst.id, shared[1]), start_item(inst.id, iso_from_ns(inst.opened_at))

    def announce(self, inst: InstanceState) -> None:
        """Queue a deferred instance's registration and start now, unless already claimed."""
        if inst.claim_registration():  # else sent, or being sent by another thread
            for record in self.opening(inst):
                self.submit(record)

    def instance(self, instance_id: str) -> InstanceState:
        """The live instance with this id; an unknown id gets a detached, unvalidated state."""
        inst = self._instances.get(instance_id)
        if inst is None:
            inst = InstanceState(
                self, instance_id, self.agent_id, partition_for(self.agent_id), None
            )
            self._instances.add(inst)
        return inst

    def start_instance(self, inst: InstanceState, timestamp_ns: int | None = None) -> None:
        """Queue the instance's start (a second call is a no-op)."""
        if inst.started:
            return
        inst.started = True
        self.submit(StartInstance(inst.id, timestamp_ns or time.time_ns()))

    def finish_instance(
        self,
        inst: InstanceState,
        status: FinishStatus = "complete",
        timestamp_ns: int | None = None,
    ) -> None:
        """Queue the instance's finish (a second call is a no-op)."""
        if inst.finished:
            return
        self.announce(inst)  # a deferred instance's registration goes first
        inst.finished = True
        self.submit(FinishInstance(inst.id, status, timestamp_ns or time.time_ns()))

    def record_quality(
        self, inst: InstanceState, name: str, payload: Mapping[str, Any] | None
    ) -> None:
        """Queue a quality payload for the instance (``None`` removes it)."""
        captured = None if payload is None else self._capturer.capture_mapping(payload)
        self.announce(inst)  # a deferred instance's registration goes first
        self.submit(RecordQuality(inst.id, name, captured, generate_pfid(inst.partition)))

    def terminate(self, instance_id: str, reason: str | None) -> None:
        """Mark an instance terminated (called from the exporter on ``control.terminate``)."""
        inst = self._instances.get(instance_id)
        if inst is not None and not inst.terminated:
            inst.termination_reason = reason
            inst.terminated = True
            logger.warning(
                "agent instance %s was terminated by the platform: %s", instance_id, reason
            )

    # --- validation -----------------------------------------------------------------------

    def check(
        self, inst: InstanceState, span_type: str, side: Side, payload: Any
    ) -> tuple[Violation, ...]:
        """Validate one side of a span against the instance's schemas.

        Returns the violations to flag the span with (empty when valid).

        Raises:
            SchemaValidationError: in strict mode, on any violation.
        """
        registry = inst.registry
        if registry is None or not self._validate:
            return ()
        validator = registry.validator_for(span_type, side)
        if validator is None:
            if side == "result" or registry.is_registered(span_type):
                return ()
            errors = [("$", UNREGISTERED)]
        else:
            fast = validator.fast_is_valid
            if fast_accepts(fast, payload):  # the fast engine directly: runs once or twice per span
                return ()
            if fast is None and validator.is_valid(payload):
                return ()
            errors = validator.errors(payload)
            if not errors:  # the fast engine could not read the value, and it is valid
                return ()
        if self._strict:
            raise SchemaValidationError(span_type, side, errors[0][0], errors[0][1], errors)
        self._flag(span_type, side, errors)
        return tuple(Violation(side, path, reason) for path, reason in errors)

    def check_call(
        self, inst: InstanceState, span_type: str, params: Any, result: Any
    ) -> tuple[Violation, ...]:
        """:meth:`check` of both sides of a finished span, params first, in one call.

        Each side the fast engine accepts as it is costs one call of it; any
        other goes through :meth:`check`, which has the last word.

        Raises:
            SchemaValidationError: in strict mode, on any violation.
        """
        registry = inst.registry
        if registry is None or not self._validate:
            return ()
        fast_params, fast_result = registry.fast_checks(span_type)
        violations: tuple[Violation, ...] = ()
        if not fast_accepts(fast_params, params):
            violations = self.check(inst, span_type, "params", params)
        if not fast_accepts(fast_result, result):
            violations += self.check(inst, span_type, "result", result)
        return violations

    def _flag(self, span_type: str, side: str, errors: list[tuple[str, str]]) -> None:
        with self._lock:
            if errors[0][1] == UNREGISTERED:
                self._unregistered += 1
            else:
                self._violations += 1
            first = (span_type, side) not in self._warned
            self._warned.add((span_type, side))
        if first:
            path, reason = errors[0]
            logger.warning(
                "span %s %s break their schema at %s: %s (sent flagged; warned once per span type)",
                span_type,
                side,
                path,
                reason,
            )

    # --- plumbing -------------------------------------------------------------------------

    def emit(self, record: Record) -> None:
        """Hand one record to the exporter (its instance's deferred registration first)."""
        inst = self._instances.get(record.instance_id)
        if inst is not None:
            self.announce(inst)
        self.submit(record)

    def stats(self) -> dict[str, Any]:
        """The exporter's counters, the validation counters and the contained SDK failures.

        ``tracing_errors`` counts the SDK failures contained inside users' calls
        in this process (see :mod:`prefactor._tracing.guard`).
        """
        base = self.exporter.stats()
        out: dict[str, Any] = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        out["dropped"] = dict(base.dropped)
        out["schema_violations"] = self._violations
        out["unregistered_span_types"] = self._unregistered
        out["tracing_errors"] = contained_count()
        return out

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record made so far is sent, rejected or dropped."""
        return bool(self.exporter.flush(timeout))

    def close(self, timeout: float | None = None) -> bool:
        """Flush and stop the exporter."""
        return bool(self.exporter.close(timeout))
