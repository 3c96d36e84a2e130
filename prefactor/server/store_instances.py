"""The instance rules of the store: register, start/finish/terminate, quality.

The decisions they implement are listed in :mod:`prefactor.server.store`.
"""

from __future__ import annotations

import contextlib
import operator
from typing import Any

import orjson

from prefactor._api.models import (
    FinishInstanceRequest,
    RecordQualityRequest,
    RegisterInstanceRequest,
    StartInstanceRequest,
    TerminateInstanceRequest,
)
from prefactor._config import DEFAULT_AGENT_ID
from prefactor._ids import generate_pfid, is_pfid, partition_for
from prefactor.server.store_base import JSON, StoreBase
from prefactor.server.store_common import (
    ApiProblem,
    dumps,
    fingerprint,
    loads,
    now_iso,
    parse,
)
from prefactor.server.store_schemas import (
    QualityType,
    SchemaProblems,
    SchemaSet,
    render_template,
)

__all__ = ["InstanceRules", "schema_content", "without_key"]

_COLUMN_INDEX = StoreBase.INSTANCE_COLUMN_INDEX
TERMINAL = frozenset({"complete", "failed", "cancelled", "terminated"})
# Besides status and updated_at (first equal to inserted_at), the columns an operation may
# change after registering, with a new instance's values; a memo keeps those that differ.
_NEW_STATE = {
    "started_at": None,
    "finished_at": None,
    "termination_reason": None,
    "quality_payloads": "{}",
    "quality_summaries": "{}",
    "quality_violations": "{}",
}
_CHANGING = tuple((column, _COLUMN_INDEX[column], first) for column, first in _NEW_STATE.items())
_STATUS, _INSERTED_AT, _UPDATED_AT = (
    _COLUMN_INDEX[c] for c in ("status", "inserted_at", "updated_at")
)
# An instance row (in the order of INSTANCE_COLUMNS) from its columns by name.
_ROW_OF = operator.itemgetter(*_COLUMN_INDEX)
_SPAN_STATUSES = ("pending", "active", "complete", "failed", "cancelled")


def without_key(body: JSON) -> JSON:
    """``body`` without its ``idempotency_key`` (what a key's fingerprint covers)."""
    return {k: v for k, v in body.items() if k != "idempotency_key"}


def schema_content(raw: JSON) -> str:
    """A schema version's canonical JSON (keys sorted): what is stored, and compared.

    Raises:
        ApiProblem: 422 when it holds something JSON cannot carry (the in-process
            sink may hand the store arbitrary Python objects).
    """
    try:
        return orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
    except TypeError as exc:
        raise ApiProblem(422, "validation_error", f"not JSON-serialisable: {exc}") from None


def _quality_violations(
    schemas: SchemaSet, quality: QualityType | None, name: str, payload: JSON
) -> list[JSON]:
    """What a quality payload breaks: its schema, or the version's list of quality names."""
    if quality is None:
        if schemas.open:
            return []
        return [{"path": "$", "reason": f"{name!r} is not a quality schema of this version"}]
    return [{"path": path, "reason": reason} for path, reason in quality.schema.errors(payload)]


class InstanceRules(StoreBase):
    """Instance endpoints on top of :class:`StoreBase`."""

    def _instance_details(
        self, row: tuple[Any, ...], span_counts: dict[str, int] | None = None
    ) -> JSON:
        """An instance's details; ``span_counts`` by status (absent: none), read if not given."""
        counts = dict.fromkeys(_SPAN_STATUSES, 0)
        counts.update(self._span_counts(row[0]) if span_counts is None else span_counts)
        finished = counts["complete"] + counts["failed"] + counts["cancelled"]
        return {
            "type": "agent_instance",
            "id": row[0],
            "account_id": row[1],
            "agent_id": row[2],
            "agent_version_id": row[3],
            "environment_id": row[4],
            "agent_deployment_id": row[5],
            "status": row[6],
            "purpose": row[7],
            "external_identifier": row[8],
            "started_at": row[9],
            "finished_at": row[10],
            "termination_reason": row[11],
            "quality_payloads": loads(row[12]),
            "quality_summaries": loads(row[13]),
            "quality_violations": loads(row[17]),
            "inserted_at": row[14],
            "updated_at": row[15],
            "span_counts": {
                "total": finished + counts["pending"] + counts["active"],
                **counts,
                "finished": finished,
            },
        }

    def _span_counts(self, instance_id: str) -> dict[str, int]:
        """How many spans of the instance are in each status (absent statuses: none)."""
        unit = self._unit
        if unit is not None:
            known = unit.counts.get(instance_id)
            if known is not None:
                return known
            unit.flush()
        counts: dict[str, int] = dict(
            self._conn.execute(
                "SELECT status, count(*) FROM spans WHERE agent_instance_id = ? GROUP BY status",
                (instance_id,),
            ).fetchall()
        )
        if unit is not None and unit.counts_stable(instance_id):
            unit.counts[instance_id] = counts
        return counts

    def _instance_response(self, instance_id: str) -> JSON:
        return {
            "status": "success",
            "details": self._instance_details(self._instance_row(instance_id)),
        }

    def _memo(self, row: tuple[Any, ...]) -> JSON:
        """What an operation's answer about the instance ``row`` says that may change later.

        Stored under the operation's idempotency key instead of the whole answer
        (a fifth of the bytes): the instance's id and status, the columns that
        differ from a new instance's, and its span counts (statuses it has spans in).
        :meth:`_answer` rebuilds the answer from it and the columns that never change.
        """
        memo: JSON = {"id": row[0], "status": row[_STATUS]}
        for column, index, first in _CHANGING:
            if row[index] != first:
                memo[column] = row[index]
        if row[_UPDATED_AT] != row[_INSERTED_AT]:
            memo["updated_at"] = row[_UPDATED_AT]
        counts = {status: n for status, n in self._span_counts(row[0]).items() if n}
        if counts:
            memo["span_counts"] = counts
        return memo

    def _answer(self, memo: JSON, details: bool) -> JSON:
        """The answer an instance operation gave, from its :meth:`_memo`.

        Args:
            memo: the operation's memo, or the whole answer an earlier release stored
                (it has ``details``), which is answered as it is.
            details: whether the answer carries the instance's ``details`` (else it is
                the minimal one).
        """
        if not details:
            return {"status": "success"}
        if "details" in memo:
            return memo
        row = list(self._instance_row(memo["id"]))
        row[_STATUS] = memo["status"]
        for column, index, first in _CHANGING:
            row[index] = memo.get(column, first)
        row[_UPDATED_AT] = memo.get("updated_at", row[_INSERTED_AT])
        return {
            "status": "success",
            "details": self._instance_details(tuple(row), memo.get("span_counts", {})),
        }

    def _change_instance(self, row: tuple[Any, ...], changes: JSON) -> tuple[Any, ...]:
        """Set columns of an instance row; the row as it is now."""
        unit = self._work
        changed = list(row)
        for column, value in changes.items():
            changed[_COLUMN_INDEX[column]] = value
        new = tuple(changed)
        if not unit.change_new_instance(new):
            # Stored already: update it (the row is locked, the values are those above).
            self._conn.execute(
                f"UPDATE instances SET {', '.join(f'{c} = ?' for c in changes)} WHERE id = ?",
                (*changes.values(), row[0]),
            )
            unit.remember(new)
        return new

    def _register_request(
        self, body: JSON
    ) -> tuple[RegisterInstanceRequest, SchemaSet | None, str]:
        """The parsed request, the compiled schemas of its schema version, and their content.

        A version whose content was compiled already (an agent registers the same
        one on every run) is not parsed again: that content passed the same model.

        Raises:
            ApiProblem: 422 for a malformed request or a schema that does not compile.
        """
        raw = body.get("agent_schema_version") if isinstance(body, dict) else None
        content = ""
        known: SchemaSet | None = None
        if isinstance(raw, dict):
            # Content JSON cannot carry is answered after the parse, as for any request.
            with contextlib.suppress(ApiProblem):
                content = schema_content(raw)
                known = self._compiled_contents.get(content)
        req = parse(
            RegisterInstanceRequest,
            body if known is None else {**body, "agent_schema_version": None},
        )
        if req.id is not None and not is_pfid(req.id):
            raise ApiProblem(422, "validation_error", "id must be a PFID", {"id": ["not a PFID"]})
        if known is not None:
            return req, known, content
        definition = req.agent_schema_version
        if definition is None:
            return req, None, ""
        # Computed above, unless it failed there: then it raises here, after the parse.
        content = content or schema_content(body["agent_schema_version"])
        try:
            return req, self._compiled(content, definition), content
        except SchemaProblems as exc:
            raise ApiProblem(422, "validation_error", str(exc), dict(exc.errors)) from None

    def _register(self, body: JSON, details: bool = True) -> JSON:
        req, schema_set, content = self._register_request(body)

        def op() -> JSON:
            # Every check comes before the first write, so a refused register leaves nothing
            # behind (a bulk request keeps going without a savepoint per item).
            conn = self._conn
            agent_id = req.agent_id or DEFAULT_AGENT_ID
            now = now_iso()
            instance_id = req.id or generate_pfid(partition_for(agent_id))
            if self._instance_exists(instance_id):
                raise ApiProblem(409, "conflict", f"agent instance {instance_id!r} already exists")
            environment_id = req.environment_id or self.default_environment_id
            version_text = dumps(body.get("agent_version") or {})
            version_ref = (
                self._schema_version(agent_id, body, content) if schema_set is not None else None
            )
            if req.external_identifier is not None:
                self._work.flush()  # the instances this transaction registered count too
            if (
                req.external_identifier is not None
                and conn.execute(
                    "SELECT 1 FROM instances WHERE agent_id = ? AND external_identifier = ?",
                    (agent_id, req.external_identifier),
                ).fetchone()
            ):
                raise ApiProblem(
                    409,
                    "conflict",
                    f"external_identifier {req.external_identifier!r} is already used",
                    {"external_identifier": ["already used by another instance of this agent"]},
                )
            if self._known_row(("agent", agent_id)) is None:
                conn.execute(
                    "INSERT INTO agents (id, inserted_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
                    (agent_id, now),
                )
                self._learn(("agent", agent_id), True)
            deployment_id = self._get_or_insert(
                "SELECT id FROM deployments WHERE agent_id = ? AND environment_id = ?",
                (agent_id, environment_id),
                "INSERT INTO deployments (agent_id, environment_id, id) VALUES (?, ?, ?)",
            )
            version_id = self._get_or_insert(
                "SELECT id FROM agent_versions WHERE agent_id = ? AND external_identifier = ?",
                (agent_id, req.agent_version.external_identifier or ""),
                "INSERT INTO agent_versions (agent_id, external_identifier, id, body, inserted_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (version_text, now),
            )
            schema_version_id: str | None = None
            if version_ref is not None and schema_set is not None:
                new_id, new_ident = version_ref
                if new_ident is not None:
                    conn.execute(
                        "INSERT INTO schema_versions (id, agent_id, external_identifier, body,"
                        " inserted_at) VALUES (?, ?, ?, ?, ?)",
                        (new_id, agent_id, new_ident, content, now),
                    )
                    self._learn(("schema_version", agent_id, new_ident), (new_id, content))
                    self._schema_sets[new_id] = schema_set
                schema_version_id = new_id
            columns: JSON = {
                **_NEW_STATE,
                "id": instance_id,
                "account_id": self.account_id,
                "agent_id": agent_id,
                "agent_version_id": version_id,
                "environment_id": environment_id,
                "agent_deployment_id": deployment_id,
                "status": "pending",
                "purpose": req.purpose or "live",
                "external_identifier": req.external_identifier,
                "inserted_at": now,
                "updated_at": now,
                "schema_version_id": schema_version_id,
            }
            # Inserted when the transaction commits.
            inserted: tuple[Any, ...] = _ROW_OF(columns)
            self._work.insert_instance(inserted)
            return self._memo(inserted)

        memo = self._idempotent(
            "agent_instances/register", req.idempotency_key, None, without_key(body), op
        )
        return self._answer(memo, details)

    def _instance_exists(self, instance_id: str) -> bool:
        unit = self._unit
        absent = unit.instance_absent(instance_id) if unit is not None else None
        if absent is not None:
            return not absent
        return bool(
            self._conn.execute("SELECT 1 FROM instances WHERE id = ?", (instance_id,)).fetchone()
        )

    def _learn(self, key: tuple[str, ...], value: Any) -> None:
        """Remember an immutable fact; the store keeps it once this transaction commits."""
        unit = self._unit
        if unit is not None:
            unit.learned[key] = value

    def _get_or_insert(
        self, select: str, params: tuple[Any, ...], insert: str, extra: tuple[Any, ...] = ()
    ) -> str:
        """The id of an immutable row found by ``params``; inserted first when it is new."""
        memo = (select, *params)
        known: str | None = self._known_row(memo)
        if known is not None:
            return known
        row = self._conn.execute(select, params).fetchone()
        if row is not None:
            found = str(row[0])
        else:
            found = generate_pfid()
            self._conn.execute(insert, (*params, found, *extra))
        self._learn(memo, found)
        return found

    def _schema_version(self, agent_id: str, body: JSON, content: str) -> tuple[str, str | None]:
        """The id of the schema version ``body`` names; with its identifier when it is new.

        A new version gets an id here and is inserted by the caller, after its other checks.

        Raises:
            ApiProblem: 422 for a reference to an unknown identifier, 409 for an identifier
                registered with different content.
        """
        raw = body["agent_schema_version"]
        ident = raw.get("external_identifier") or "sha-" + fingerprint("schema", None, raw)
        memo = ("schema_version", agent_id, ident)
        row: tuple[str, str] | None = self._known_row(memo)
        if row is None:
            found = self._conn.execute(
                "SELECT id, body FROM schema_versions"
                " WHERE agent_id = ? AND external_identifier = ?",
                (agent_id, ident),
            ).fetchone()
            if found is not None:
                row = (str(found[0]), str(found[1]))
                self._learn(memo, row)
        if set(raw) == {"external_identifier"}:
            # A reference by identifier alone (prefactor-core's external_schema_version_id).
            if row is None:
                raise ApiProblem(
                    422,
                    "validation_error",
                    f"no agent_schema_version {ident!r} is registered for agent {agent_id!r}",
                    {"agent_schema_version.external_identifier": [f"unknown identifier {ident!r}"]},
                )
            return row[0], None
        if row is not None:
            if row[1] != content:
                raise ApiProblem(
                    409,
                    "conflict",
                    f"agent_schema_version {ident!r} is already registered with different content",
                    {
                        "agent_schema_version.external_identifier": [
                            f"{ident!r} already names a different schema version"
                        ]
                    },
                )
            return row[0], None
        return generate_pfid(), ident

    def _transition(self, scope: str, instance_id: str, body: JSON, details: bool = True) -> JSON:
        req: StartInstanceRequest | FinishInstanceRequest | TerminateInstanceRequest
        if scope == "agent_instances/start":
            req = parse(StartInstanceRequest, body)
        elif scope == "agent_instances/finish":
            req = parse(FinishInstanceRequest, body)
        else:
            req = parse(TerminateInstanceRequest, body)

        def op() -> JSON:
            row = self._instance_row(instance_id, lock=True)
            status, now = row[6], now_iso()
            if isinstance(req, StartInstanceRequest):
                # Already started or finished: a no-op, since a client that sends start
                # and finish concurrently (prefactor-core does) may deliver start last.
                if status != "pending":
                    return self._memo(row)
                changes: JSON = {
                    "status": "active",
                    "started_at": req.timestamp or now,
                    "updated_at": now,
                }
            elif status in TERMINAL:
                raise ApiProblem(409, "conflict", f"agent instance is already {status}")
            elif isinstance(req, FinishInstanceRequest):
                changes = {
                    "status": req.status or "complete",
                    "finished_at": req.timestamp or now,
                    "updated_at": now,
                }
            else:
                changes = {
                    "status": "terminated",
                    "termination_reason": req.reason,
                    "finished_at": now,
                    "updated_at": now,
                }
            return self._memo(self._change_instance(row, changes))

        memo = self._idempotent(scope, req.idempotency_key, instance_id, without_key(body), op)
        return self._answer(memo, details)

    def _record_quality(self, instance_id: str, body: JSON, details: bool = True) -> JSON:
        req = parse(RecordQualityRequest, body)

        def op() -> JSON:
            row = self._instance_row(instance_id, lock=True)
            schemas = self._schema_set(row[16])
            quality = schemas.quality.get(req.name)
            payloads, summaries, flagged = loads(row[12]), loads(row[13]), loads(row[17])
            flagged.pop(req.name, None)
            if req.payload is None:
                payloads.pop(req.name, None)
                summaries.pop(req.name, None)
            else:
                found = _quality_violations(schemas, quality, req.name, req.payload)
                if found:
                    flagged[req.name] = found
                payloads[req.name] = req.payload
                summary = render_template(quality.template if quality else None, req.payload)
                if summary is not None:
                    summaries[req.name] = summary
            changed = self._change_instance(
                row,
                {
                    "quality_payloads": dumps(payloads),
                    "quality_summaries": dumps(summaries),
                    "quality_violations": dumps(flagged),
                    "updated_at": now_iso(),
                },
            )
            return self._memo(changed)

        memo = self._idempotent(
            "agent_instances/record_quality",
            req.idempotency_key,
            instance_id,
            without_key(body),
            op,
        )
        return self._answer(memo, details)
