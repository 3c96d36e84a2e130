"""The API's rules on SQLite: state machines, idempotency and schema checks, in one place.

Both the HTTP server (``prefactor serve``) and the SDK's embedded sink call
this class directly; it imports nothing from the web stack. Every public
method takes the JSON body an endpoint receives and returns the JSON body it
answers with, or raises :class:`ApiProblem` carrying the error envelope.

Decisions where the wire contract is silent (its open questions):

* **Agents and versions.** ``agent_id`` is any string, created on first use
  (``default-agent`` when absent). The agent version is reused by
  ``agent_version.external_identifier`` (one unnamed version per agent when
  absent); later differences in its other fields are ignored, as versions are
  immutable once stored. The schema version is reused by
  ``agent_schema_version.external_identifier`` (a content digest when absent);
  re-registering an identifier with different content answers 409
  ``conflict`` naming it. No ``agent_schema_version`` gives an *open* version:
  any span type and quality name, nothing validated.
* **Instances.** register -> ``pending``; start: ``pending`` -> ``active``
  (again on ``active``: no-op success; on a terminal instance: 409
  ``conflict``); finish: ``pending``/``active`` -> ``complete`` (default),
  ``failed`` or ``cancelled``, 409 ``conflict`` when terminal; terminate: any
  non-terminal -> ``terminated`` with its reason, 409 when terminal. Quality
  may be recorded in any state.
* **Spans** may be created on any instance, pending ones included. Created
  ``pending``, a span may only be finished ``cancelled``; any other finish of
  a pending span, and every finish of a finished span, is 409
  ``invalid_action``. After a terminate, span writes still succeed and their
  answers carry ``control: {"terminate": true, "reason": ...}``.
* **Idempotency.** A key is scoped by operation (the bulk ``_type``, shared by
  the matching REST route). A replay with the same body returns the stored
  answer and changes nothing; a different body is 409
  ``idempotency_conflict``. Only successes are stored, so a request that
  failed may be retried with its key. Keys never expire.
* **Schema violations (our extension).** A span create or finish carrying
  ``schema_violations`` (a lenient client's declaration that it knowingly
  sends data that breaks the schema) is stored rather than rejected for a
  schema failure or an unknown ``schema_name``; the span's
  ``schema_violations`` holds the store's own findings, or the declared ones
  when it found none.
* **Bulk** runs its items in order inside one transaction (one commit), each in
  its own savepoint; it stops at the first failing item, whose error is the
  last output, and keeps the effects of the items before it.
"""

from __future__ import annotations

from typing import Any

import orjson

from prefactor.api.models import (
    FinishInstanceRequest,
    RecordQualityRequest,
    RegisterInstanceRequest,
    StartInstanceRequest,
    TerminateInstanceRequest,
)
from prefactor.config import DEFAULT_AGENT_ID
from prefactor.ids import generate_pfid, is_pfid, partition_for
from prefactor.server.store_base import JSON, StoreBase
from prefactor.server.store_common import (
    ApiProblem,
    dumps,
    fingerprint,
    loads,
    now_iso,
    pagination,
    parse,
)
from prefactor.server.store_schemas import SchemaProblems, SchemaSet, render_template
from prefactor.server.store_spans import SpanRules

__all__ = ["ApiProblem", "Store"]

TERMINAL = frozenset({"complete", "failed", "cancelled", "terminated"})

_INSTANCE_COLUMNS = StoreBase.INSTANCE_COLUMNS
_BULK_KEYS_MIN, _BULK_KEYS_MAX = 8, 64


class Store(SpanRules):
    """The local Prefactor API over one SQLite database; safe to share between threads.

    Args:
        path: a database file (created with its directory, WAL journal) or ``":memory:"``.
    """

    # --- instances --------------------------------------------------------------------------

    def _instance_details(self, row: tuple[Any, ...]) -> JSON:
        counts = dict.fromkeys(("pending", "active", "complete", "failed", "cancelled"), 0)
        for status, n in self._conn.execute(
            "SELECT status, count(*) FROM spans WHERE agent_instance_id = ? GROUP BY status",
            (row[0],),
        ):
            counts[status] = n
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
            "inserted_at": row[14],
            "updated_at": row[15],
            "span_counts": {
                "total": finished + counts["pending"] + counts["active"],
                **counts,
                "finished": finished,
            },
        }

    def _instance_response(self, instance_id: str) -> JSON:
        return {
            "status": "success",
            "details": self._instance_details(self._instance_row(instance_id)),
        }

    def _register(self, body: JSON) -> JSON:
        req = parse(RegisterInstanceRequest, body)
        if req.id is not None and not is_pfid(req.id):
            raise ApiProblem(422, "validation_error", "id must be a PFID", {"id": ["not a PFID"]})
        schema_set: SchemaSet | None = None
        if req.agent_schema_version is not None:
            try:
                schema_set = SchemaSet.from_definition(req.agent_schema_version)
            except SchemaProblems as exc:
                raise ApiProblem(422, "validation_error", str(exc), dict(exc.errors)) from None

        def op() -> JSON:
            conn = self._conn
            agent_id = req.agent_id or DEFAULT_AGENT_ID
            now = now_iso()
            instance_id = req.id or generate_pfid(partition_for(agent_id))
            if conn.execute("SELECT 1 FROM instances WHERE id = ?", (instance_id,)).fetchone():
                raise ApiProblem(409, "conflict", f"agent instance {instance_id!r} already exists")
            conn.execute(
                "INSERT OR IGNORE INTO agents (id, inserted_at) VALUES (?, ?)", (agent_id, now)
            )
            environment_id = req.environment_id or self.default_environment_id
            deployment_id = self._get_or_insert(
                "SELECT id FROM deployments WHERE agent_id = ? AND environment_id = ?",
                (agent_id, environment_id),
                "INSERT INTO deployments (agent_id, environment_id, id) VALUES (?, ?, ?)",
            )
            version = body.get("agent_version") or {}
            version_id = self._get_or_insert(
                "SELECT id FROM agent_versions WHERE agent_id = ? AND external_identifier = ?",
                (agent_id, req.agent_version.external_identifier or ""),
                "INSERT INTO agent_versions (agent_id, external_identifier, id, body, inserted_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (dumps(version), now),
            )
            schema_version_id = None
            if schema_set is not None:
                schema_version_id = self._schema_version(agent_id, body, schema_set, now)
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
            conn.execute(
                "INSERT INTO instances (id, account_id, agent_id, agent_version_id, environment_id,"
                " agent_deployment_id, schema_version_id, status, purpose, external_identifier,"
                " inserted_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?)",
                (
                    instance_id,
                    self.account_id,
                    agent_id,
                    version_id,
                    environment_id,
                    deployment_id,
                    schema_version_id,
                    req.purpose or "live",
                    req.external_identifier,
                    now,
                    now,
                ),
            )
            return self._instance_response(instance_id)

        return self._idempotent(
            "agent_instances/register", req.idempotency_key, None, _without_key(body), op
        )

    def _get_or_insert(
        self, select: str, params: tuple[Any, ...], insert: str, extra: tuple[Any, ...] = ()
    ) -> str:
        row = self._conn.execute(select, params).fetchone()
        if row is not None:
            return str(row[0])
        new_id = generate_pfid()
        self._conn.execute(insert, (*params, new_id, *extra))
        return new_id

    def _schema_version(self, agent_id: str, body: JSON, schema_set: SchemaSet, now: str) -> str:
        raw = body["agent_schema_version"]
        content = orjson.dumps(raw, option=orjson.OPT_SORT_KEYS).decode()
        ident = raw.get("external_identifier") or "sha-" + fingerprint("schema", None, raw)
        row = self._conn.execute(
            "SELECT id, body FROM schema_versions WHERE agent_id = ? AND external_identifier = ?",
            (agent_id, ident),
        ).fetchone()
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
            return str(row[0])
        new_id = generate_pfid()
        self._conn.execute(
            "INSERT INTO schema_versions (id, agent_id, external_identifier, body, inserted_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (new_id, agent_id, ident, content, now),
        )
        self._schema_sets[new_id] = schema_set
        return new_id

    def _transition(self, scope: str, instance_id: str, body: JSON) -> JSON:
        req: StartInstanceRequest | FinishInstanceRequest | TerminateInstanceRequest
        if scope == "agent_instances/start":
            req = parse(StartInstanceRequest, body)
        elif scope == "agent_instances/finish":
            req = parse(FinishInstanceRequest, body)
        else:
            req = parse(TerminateInstanceRequest, body)

        def op() -> JSON:
            row = self._instance_row(instance_id)
            status, now = row[6], now_iso()
            if isinstance(req, StartInstanceRequest):
                if status == "active":
                    return self._instance_response(instance_id)
                if status != "pending":
                    raise ApiProblem(409, "conflict", f"agent instance is already {status}")
                started = req.timestamp or now
                self._conn.execute(
                    "UPDATE instances SET status = 'active', started_at = ?, updated_at = ?"
                    " WHERE id = ?",
                    (started, now, instance_id),
                )
            elif status in TERMINAL:
                raise ApiProblem(409, "conflict", f"agent instance is already {status}")
            elif isinstance(req, FinishInstanceRequest):
                finished = req.timestamp or now
                self._conn.execute(
                    "UPDATE instances SET status = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                    (req.status or "complete", finished, now, instance_id),
                )
            else:
                self._conn.execute(
                    "UPDATE instances SET status = 'terminated', termination_reason = ?,"
                    " finished_at = ?, updated_at = ? WHERE id = ?",
                    (req.reason, now, now, instance_id),
                )
            return self._instance_response(instance_id)

        return self._idempotent(scope, req.idempotency_key, instance_id, _without_key(body), op)

    def _record_quality(self, instance_id: str, body: JSON) -> JSON:
        req = parse(RecordQualityRequest, body)

        def op() -> JSON:
            row = self._instance_row(instance_id)
            schemas = self._schema_set(row[16])
            quality = schemas.quality.get(req.name)
            if not schemas.open and quality is None:
                raise ApiProblem(
                    422,
                    "validation_error",
                    f"unknown quality name {req.name!r}",
                    {"name": [f"{req.name!r} is not a quality schema of this version"]},
                )
            payloads, summaries = loads(row[12]), loads(row[13])
            if req.payload is None:
                payloads.pop(req.name, None)
                summaries.pop(req.name, None)
            else:
                if quality is not None:
                    _raise_for("payload", quality.schema.errors(req.payload))
                payloads[req.name] = req.payload
                summary = render_template(quality.template if quality else None, req.payload)
                if summary is not None:
                    summaries[req.name] = summary
            self._conn.execute(
                "UPDATE instances SET quality_payloads = ?, quality_summaries = ?, updated_at = ?"
                " WHERE id = ?",
                (dumps(payloads), dumps(summaries), now_iso(), instance_id),
            )
            return self._instance_response(instance_id)

        return self._idempotent(
            "agent_instances/record_quality",
            req.idempotency_key,
            instance_id,
            _without_key(body),
            op,
        )

    # --- public endpoints -------------------------------------------------------------------

    def register_instance(self, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/register``."""
        with self._tx():
            return self._register(body)

    def start_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/start``."""
        with self._tx():
            return self._transition("agent_instances/start", instance_id, body)

    def finish_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/finish``."""
        with self._tx():
            return self._transition("agent_instances/finish", instance_id, body)

    def terminate_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/terminate``."""
        with self._tx():
            return self._transition("agent_instances/terminate", instance_id, body)

    def record_quality(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/record_quality``."""
        with self._tx():
            return self._record_quality(instance_id, body)

    def get_instance(self, instance_id: str) -> JSON:
        """``GET /api/v1/agent_instance/{id}``."""
        with self._tx():
            return self._instance_response(instance_id)

    def list_instances(
        self, *, agent_id: str | None = None, offset: int = 0, page_size: int = 50
    ) -> JSON:
        """``GET /api/v1/agent_instance``: newest first, optionally of one agent."""
        _check_page(offset, page_size, 1000)
        where, params = ("WHERE agent_id = ?", (agent_id,)) if agent_id is not None else ("", ())
        with self._tx() as conn:
            total = conn.execute(f"SELECT count(*) FROM instances {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances {where}"
                " ORDER BY rowid DESC LIMIT ? OFFSET ?",
                (*params, page_size, offset),
            ).fetchall()
            summaries = [self._instance_details(tuple(r)) for r in rows]
        return {
            "status": "success",
            "summaries": summaries,
            "pagination": pagination(offset, page_size, total, len(summaries)),
            "sorting": {"field": "inserted_at", "direction": "desc"},
        }

    def create_span(self, body: JSON) -> JSON:
        """``POST /api/v1/agent_spans``: ``{"details": {...}, "idempotency_key"?}``."""
        if not isinstance(body, dict) or not isinstance(body.get("details"), dict):
            raise ApiProblem(
                422,
                "validation_error",
                "details must be an object",
                {"details": ["required object"]},
            )
        extra = set(body) - {"details", "idempotency_key"}
        if extra:
            raise ApiProblem(
                422,
                "validation_error",
                "unknown keys in the request",
                {k: ["unknown key"] for k in sorted(extra)},
            )
        key = body.get("idempotency_key")
        if key is not None and (not isinstance(key, str) or not 0 < len(key) <= 64):
            raise ApiProblem(
                422,
                "validation_error",
                "idempotency_key must be 1-64 characters",
                {"idempotency_key": ["must be a string of 1-64 characters"]},
            )
        with self._tx():
            responses, problem = self._create_spans([(body["details"], key)])
        if problem is not None:
            raise problem
        return responses[0]

    def finish_span(self, span_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_spans/{id}/finish``."""
        with self._tx():
            return self._finish_span(span_id, body)

    def list_spans(self, *, agent_instance_id: str, offset: int = 0, page_size: int = 1000) -> JSON:
        """``GET /api/v1/agent_spans``: the spans of one instance, by ``started_at``."""
        _check_page(offset, page_size, 10_000)
        with self._tx():
            return self._list_spans(agent_instance_id, offset, page_size)

    # --- bulk -------------------------------------------------------------------------------

    def bulk(self, body: JSON) -> JSON:
        """``POST /api/v1/bulk``: ``{"items": [...]}`` -> ``{"status", "outputs"}``.

        Raises:
            ApiProblem: 422 for request-level problems (no items, bad or duplicate keys).
        """
        items = _bulk_items(body)
        outputs: JSON = {}
        with self._tx() as conn:
            index = 0
            while index < len(items):
                if items[index]["_type"] == "agent_spans/create":
                    end = index
                    while end < len(items) and items[end]["_type"] == "agent_spans/create":
                        end += 1
                    stopped = self._bulk_span_run(items[index:end], outputs)
                    index = end
                else:
                    item = items[index]
                    conn.execute("SAVEPOINT item")
                    try:
                        outputs[item["idempotency_key"]] = self._bulk_item(item)
                        stopped = False
                    except ApiProblem as problem:
                        conn.execute("ROLLBACK TO item")
                        outputs[item["idempotency_key"]] = problem.to_body()
                        stopped = True
                    conn.execute("RELEASE item")
                    index += 1
                if stopped:
                    break
        return {"status": "success", "outputs": outputs}

    def _bulk_span_run(self, items: list[JSON], outputs: JSON) -> bool:
        """Create a run of consecutive span items at once; whether an error stopped it."""
        entries: list[tuple[JSON, str | None]] = []
        shape_problem: ApiProblem | None = None
        for item in items:
            try:
                entries.append((_span_details(item), item["idempotency_key"]))
            except ApiProblem as problem:
                shape_problem = problem
                break
        responses, failure = self._create_spans(entries)
        for item, response in zip(items, responses, strict=False):
            outputs[item["idempotency_key"]] = response
        failure = failure or shape_problem
        if failure is not None:
            outputs[items[len(responses)]["idempotency_key"]] = failure.to_body()
            return True
        return False

    def _bulk_item(self, item: JSON) -> JSON:
        kind = item["_type"]
        params = {k: v for k, v in item.items() if k != "_type"}
        if kind == "agent_instances/register":
            return self._register(params)
        path_key = "agent_span_id" if kind == "agent_spans/finish" else "agent_instance_id"
        target = params.pop(path_key, None)
        if kind not in _BULK_PATH_TYPES:
            raise ApiProblem(
                422,
                "unsupported_type",
                f"unsupported _type {kind!r}",
                {"_type": [f"must be one of {', '.join(sorted(_BULK_TYPES))}"]},
            )
        if not isinstance(target, str):
            raise ApiProblem(
                422, "validation_error", f"{path_key} is required", {path_key: ["required string"]}
            )
        if kind == "agent_spans/finish":
            return self._finish_span(target, params)
        if kind == "agent_instances/record_quality":
            return self._record_quality(target, params)
        return self._transition(kind, target, params)


_BULK_PATH_TYPES = frozenset(
    {
        "agent_instances/start",
        "agent_instances/finish",
        "agent_instances/record_quality",
        "agent_instances/terminate",
        "agent_spans/finish",
    }
)
_BULK_TYPES = _BULK_PATH_TYPES | {"agent_instances/register", "agent_spans/create"}


def _span_details(item: JSON) -> JSON:
    """The span details of a bulk create item: its ``details`` object, or its flat fields."""
    if "details" not in item:
        return {k: v for k, v in item.items() if k not in ("_type", "idempotency_key")}
    extra = set(item) - {"_type", "idempotency_key", "details"}
    if extra:
        raise ApiProblem(
            422,
            "validation_error",
            "unknown keys next to details",
            {k: ["unknown key"] for k in sorted(extra)},
        )
    details = item["details"]
    if not isinstance(details, dict):
        raise ApiProblem(
            422, "validation_error", "details must be an object", {"details": ["required object"]}
        )
    return details


def _without_key(body: JSON) -> JSON:
    return {k: v for k, v in body.items() if k != "idempotency_key"}


def _raise_for(side: str, errors: list[tuple[str, str]]) -> None:
    if errors:
        found: dict[str, list[str]] = {}
        for path, reason in errors:
            found.setdefault(side + path[1:], []).append(reason)
        raise ApiProblem(422, "validation_error", f"{side} does not match its schema", found)


def _check_page(offset: int, page_size: int, limit: int) -> None:
    errors: dict[str, list[str]] = {}
    if offset < 0:
        errors["pagination[offset]"] = ["must be >= 0"]
    if not 1 <= page_size <= limit:
        errors["pagination[page_size]"] = [f"must be between 1 and {limit}"]
    if errors:
        raise ApiProblem(422, "validation_error", "invalid pagination", errors)


def _bulk_items(body: Any) -> list[JSON]:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ApiProblem(
            422, "validation_error", "items must be a list", {"items": ["required list"]}
        )
    extra = set(body) - {"items"}
    items: list[JSON] = body["items"]
    errors: dict[str, list[str]] = {k: ["unknown key"] for k in sorted(extra)}
    if not items:
        errors["items"] = ["must contain at least one item"]
    seen: set[str] = set()
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            errors[f"items[{i}]"] = ["must be an object"]
            continue
        if not isinstance(item.get("_type"), str):
            errors[f"items[{i}]._type"] = ["required string"]
        key = item.get("idempotency_key")
        if not isinstance(key, str) or not _BULK_KEYS_MIN <= len(key) <= _BULK_KEYS_MAX:
            errors[f"items[{i}].idempotency_key"] = ["required string of 8-64 characters"]
        elif key in seen:
            errors[f"items[{i}].idempotency_key"] = [f"duplicate key {key!r}"]
        else:
            seen.add(key)
    if errors:
        raise ApiProblem(422, "validation_error", "The bulk request is invalid", errors)
    return items
