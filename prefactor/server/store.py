"""The API's rules: state machines, idempotency and schema flags, in one place.

Both the HTTP server (``prefactor serve``) and the SDK's embedded sink call
this class directly; it imports nothing from the web stack. Every public
method takes the JSON body an endpoint receives and returns the JSON body it
answers with, or raises :class:`ApiProblem` carrying the error envelope.

The rules run on SQLite (the embedded default) or on PostgreSQL, shared by
several servers; they are written once, and a backend (``_sqlite``,
``_postgres``) supplies only what differs: connections, transactions, row
locks and the fastest way to insert many rows. Each public method is one
transaction; on PostgreSQL a transaction that lost a race to another server
(a unique key, a deadlock) is run again, and then answers as a retry would.

Decisions where the wire contract is silent (its open questions):

* **Agents and versions.** ``agent_id`` is any string, created on first use
  (``default-agent`` when absent). The agent version is reused by
  ``agent_version.external_identifier`` (one unnamed version per agent when
  absent); later differences in its other fields are ignored, as versions are
  immutable once stored. The schema version is reused by
  ``agent_schema_version.external_identifier`` (a content digest when absent);
  re-registering an identifier with different content answers 409
  ``conflict`` naming it. A body holding only ``external_identifier`` refers
  to the version already registered under it (422 if there is none). No
  ``agent_schema_version`` gives an *open* version:
  any span type and quality name, nothing validated.
* **Instances.** register -> ``pending``; start: ``pending`` -> ``active``
  (on any other state: a no-op answering the instance as it is, since a
  client that sends start and finish concurrently, as prefactor-core does,
  may deliver the start last); finish: ``pending``/``active`` -> ``complete``
  (default), ``failed`` or ``cancelled``, 409 ``conflict`` when terminal;
  terminate: any non-terminal -> ``terminated`` with its reason, 409 when
  terminal. Quality may be recorded in any state.
* **Spans** may be created on any instance, pending ones included, and under
  any span of the same instance, failed ones included. Created ``pending``, a
  span may only be finished ``cancelled``; any other finish of a pending
  span, and every finish of a finished span, is 409 ``invalid_action``. After
  a terminate, span writes still succeed and their answers carry
  ``control: {"terminate": true, "reason": ...}``.
* **Schemas govern, they do not gate.** A span whose params or result break
  the schema, or whose ``schema_name`` a closed schema version does not know,
  is stored with ``schema_violations`` (side, JSON path, reason), never
  answered 422; only a malformed request is refused. The result of a
  ``failed`` or ``cancelled`` span is an error record, never checked against
  the result schema. Violations found at finish are added to those found at
  create. Quality payloads follow the same rule: one that breaks its schema,
  or whose name a closed version does not know, is stored, and the
  instance's ``quality_violations`` maps its name to ``{"path", "reason"}``
  entries until a payload of that name is recorded again.
* **Idempotency.** A key is scoped by operation (the bulk ``_type``, shared by
  the matching REST route). A replay with the same body returns the stored
  answer and changes nothing; a different body is 409
  ``idempotency_conflict``. Only successes are stored, so a request that
  failed may be retried with its key. Keys never expire.
* **Declared violations (our extension).** A span create or finish may carry
  ``schema_violations`` (a client's own findings, e.g. about values it
  truncated); the span keeps the store's findings, or the declared ones when
  the store found none.
* **Hostile input** is refused with 422 before it reaches a rule: a time that
  does not fit in UTC, a field of the wrong JSON type, an offset beyond
  64-bit integers, a payload nested deeper than the JSON encoder allows. A
  schema is refused at registration when it nests too deep or refers to
  anything outside itself (nothing is ever fetched); checking a payload is
  linear in its size (see :mod:`prefactor._schemas.validation`).
* **Bulk** runs its items in order inside one transaction (one commit); it
  stops at the first failing item, whose error is the last output, and keeps
  the effects of the items before it. A rule refuses an item before its first
  write, so no item needs a savepoint. Item types:
  ``agent_instances/register|start|finish|record_quality|terminate`` and
  ``agent_spans/create|finish``; path parameters travel as the item keys
  ``agent_instance_id`` / ``agent_span_id``; a span create item carries a
  ``details`` object or its fields flat. Other types: item error
  ``unsupported_type``. The request's unit of work
  (:mod:`~prefactor.server.store_unit`) reads the instance rows, span ids and
  idempotency keys its items name in a few ``IN`` queries first, and inserts
  its new instances, spans and keys in a few multi-row statements at commit;
  a new instance's start and finish change the row to insert. A run of
  consecutive span creates shares one ``inserted_at``. Asked for minimal
  answers (HTTP ``Prefer: return=minimal``, RFC 7240; our extension), a
  successful item's output is its ``status`` and ``control`` only, without
  the ``details`` it would echo; errors stay whole.
* **Ids.** Caller ids (instance, span) must be PFIDs (422 otherwise; 409 when
  taken); missing ones are generated. ``account_id`` and the default
  ``environment_id`` are PFIDs made once per database; a deployment is one
  PFID per (agent, environment). ``external_identifier`` of an instance is
  unique per agent (409).
* **Times** are stored and answered as fixed-width UTC text
  (``2026-02-09T00:00:00.000000Z``); any ISO-8601 input is accepted, naive
  means UTC, missing means now.
* **Lists** answer the contract's list envelope: instances newest first
  (page size 1-1000, default 50), spans by ``started_at`` (1-10000, default
  1000); offsets from 0 to 2**63 - 1.
* **Files** use WAL; readers never block a writer in another process, so the
  SDK's embedded sink and ``prefactor serve`` may share one file. Durability:
  ``synchronous=NORMAL``, so an answered write survives the process crashing,
  but the last commits before a power loss or an OS crash may be lost (the file
  stays consistent); ``FULL`` would fsync on every commit, costing more than
  the inserts of a bulk request.
* **Versions.** The layout is versioned (``_migrations``); opening an older
  database upgrades it (version 4 added ``instances.quality_violations``,
  version 5 a span's ``create_digest`` and ``create_memo``: on SQLite a span
  created under the key derived from its id, ``{id}-create``, records that key
  in its own row instead of an idempotency row), a newer one raises
  :class:`StoreVersionError`.
"""

from __future__ import annotations

from typing import Any

from prefactor.server._migrations import StoreVersionError
from prefactor.server._store_views import ViewerReads
from prefactor.server.store_base import JSON, StoreBase
from prefactor.server.store_common import ApiProblem, pagination
from prefactor.server.store_instances import InstanceRules
from prefactor.server.store_spans import SpanRules, minimal_answer, span_refs

__all__ = ["ApiProblem", "Store", "StoreVersionError"]

_INSTANCE_COLUMNS = StoreBase.INSTANCE_COLUMNS
_BULK_KEYS_MIN, _BULK_KEYS_MAX = 8, 64
_MAX_OFFSET = 2**63 - 1  # the largest integer of SQLite and of PostgreSQL (BIGINT)


class Store(SpanRules, InstanceRules, ViewerReads):
    """The local Prefactor API over one database; safe to share between threads.

    Args:
        db: a SQLite file (created with its directory, WAL journal), ``":memory:"``, or a
            ``postgresql://`` URL (needs the ``postgres`` extra). An older store is
            upgraded when opened.

    Raises:
        PrefactorConfigError: ``db`` is a URL of an unsupported scheme, or its database
            cannot be reached.
        StoreVersionError: the database was written by a newer prefactor.
    """

    # --- public endpoints -------------------------------------------------------------------

    def register_instance(self, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/register``."""
        return self._write(lambda: self._register(body))

    def start_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/start``."""
        return self._write(lambda: self._transition("agent_instances/start", instance_id, body))

    def finish_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/finish``."""
        return self._write(lambda: self._transition("agent_instances/finish", instance_id, body))

    def terminate_instance(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/terminate``."""
        return self._write(lambda: self._transition("agent_instances/terminate", instance_id, body))

    def record_quality(self, instance_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_instance/{id}/record_quality``."""
        return self._write(lambda: self._record_quality(instance_id, body))

    def get_instance(self, instance_id: str) -> JSON:
        """``GET /api/v1/agent_instance/{id}``."""
        return self._read(lambda: self._instance_response(instance_id))

    def list_instances(
        self, *, agent_id: str | None = None, offset: int = 0, page_size: int = 50
    ) -> JSON:
        """``GET /api/v1/agent_instance``: newest first, optionally of one agent."""
        _check_page(offset, page_size, 1000)
        where, params = ("WHERE agent_id = ?", (agent_id,)) if agent_id is not None else ("", ())

        def read() -> tuple[int, list[JSON]]:
            conn = self._conn
            total = conn.execute(f"SELECT count(*) FROM instances {where}", params).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_INSTANCE_COLUMNS} FROM instances {where}"
                " ORDER BY rowid DESC LIMIT ? OFFSET ?",
                (*params, page_size, offset),
            ).fetchall()
            return total, [self._instance_details(tuple(r)) for r in rows]

        total, summaries = self._read(read)
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
        responses, problem = self._write(lambda: self._create_spans([(body["details"], key)]))
        if problem is not None:
            raise problem
        return responses[0]

    def finish_span(self, span_id: str, body: JSON) -> JSON:
        """``POST /api/v1/agent_spans/{id}/finish``."""
        return self._write(lambda: self._finish_span(span_id, body))

    def list_spans(self, *, agent_instance_id: str, offset: int = 0, page_size: int = 1000) -> JSON:
        """``GET /api/v1/agent_spans``: the spans of one instance, by ``started_at``."""
        _check_page(offset, page_size, 10_000)
        return self._read(lambda: self._list_spans(agent_instance_id, offset, page_size))

    # --- bulk -------------------------------------------------------------------------------

    def bulk(self, body: JSON, *, details: bool = True) -> JSON:
        """``POST /api/v1/bulk``: ``{"items": [...]}`` -> ``{"status", "outputs"}``.

        Args:
            body: the request.
            details: ``False`` answers each successful item with its ``status`` (and
                ``control``, when there is one) only, as ``Prefer: return=minimal``
                asks over HTTP; errors are answered in full either way.

        Raises:
            ApiProblem: 422 for request-level problems (no items, bad or duplicate keys).
        """
        items = _bulk_items(body)
        return {"status": "success", "outputs": self._write(lambda: self._bulk(items, details))}

    def _bulk(self, items: list[JSON], details: bool) -> JSON:
        outputs: JSON = {}
        self._prefetch(items)
        index = 0
        while index < len(items):
            if items[index]["_type"] == "agent_spans/create":
                end = index
                while end < len(items) and items[end]["_type"] == "agent_spans/create":
                    end += 1
                stopped = self._bulk_span_run(items[index:end], outputs, details)
                index = end
            else:
                # No savepoint: an item is refused before it writes anything, if at all.
                item = items[index]
                try:
                    answer = self._bulk_item(item, details)
                    outputs[item["idempotency_key"]] = answer if details else minimal_answer(answer)
                    stopped = False
                except ApiProblem as problem:
                    outputs[item["idempotency_key"]] = problem.to_body()
                    stopped = True
                index += 1
            if stopped:
                break
        return outputs

    def _prefetch(self, items: list[JSON]) -> None:
        """Read what the items will look up, a few queries for the whole request."""
        unit = self._work
        creates: list[JSON] = []
        instance_ids: list[str] = []
        keys: dict[str, list[str]] = {kind: [] for kind in _BULK_TYPES}
        for item in items:
            kind = item["_type"]
            scoped = keys.get(kind)
            if scoped is None:
                continue  # answered unsupported_type
            scoped.append(item["idempotency_key"])
            if kind == "agent_spans/create":
                fields = item.get("details", item)
                if not isinstance(fields, dict):
                    continue  # answered by its shape check
                # Its instance is read once per run of creates, if not known by then.
                creates.append(fields)
                continue
            if kind == "agent_instances/register":
                ident = item.get("id")
            else:
                ident = item.get("agent_instance_id")
            if isinstance(ident, str):
                instance_ids.append(ident)
        # Span ids before idempotency keys (see UnitOfWork.prefetch_spans).
        unit.prefetch_spans(span_refs(creates))
        unit.prefetch_instances(instance_ids)
        unit.prefetch_scoped_keys({scope: scoped for scope, scoped in keys.items() if scoped})

    def _bulk_span_run(self, items: list[JSON], outputs: JSON, details: bool) -> bool:
        """Create a run of consecutive span items at once; whether an error stopped it."""
        entries: list[tuple[JSON, str | None]] = []
        shape_problem: ApiProblem | None = None
        for item in items:
            try:
                entries.append((_span_details(item), item["idempotency_key"]))
            except ApiProblem as problem:
                shape_problem = problem
                break
        responses, failure = self._create_spans(entries, with_details=details, prefetched=True)
        for item, response in zip(items, responses, strict=False):
            outputs[item["idempotency_key"]] = response
        failure = failure or shape_problem
        if failure is not None:
            outputs[items[len(responses)]["idempotency_key"]] = failure.to_body()
            return True
        return False

    def _bulk_item(self, item: JSON, details: bool) -> JSON:
        kind = item["_type"]
        params = {k: v for k, v in item.items() if k != "_type"}
        if kind == "agent_instances/register":
            return self._register(params, details)
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
            return self._record_quality(target, params, details)
        return self._transition(kind, target, params, details)


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
    # Every item has its _type and key (checked first): three keys means nothing else.
    extra = set(item) - {"_type", "idempotency_key", "details"} if len(item) != 3 else ()
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


def _check_page(offset: int, page_size: int, limit: int) -> None:
    errors: dict[str, list[str]] = {}
    if not 0 <= offset <= _MAX_OFFSET:
        errors["pagination[offset]"] = [f"must be between 0 and {_MAX_OFFSET}"]
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
