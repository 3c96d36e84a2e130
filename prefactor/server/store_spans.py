"""The span rules of the store: create, finish and list, with schema checks and control.

This is the hot path of bulk ingestion, so it avoids per-span work that can be
shared: compiled validators come from the per-version cache, statements from
the connection's statement cache, and a span's answer is built from the
values in hand instead of read back.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple

from prefactor._api.models import FinishSpanRequest, SpanDetailsForCreate, normalize_timestamp
from prefactor._ids import generate_pfid, is_pfid
from prefactor._records import create_key
from prefactor._schemas.validation import CompiledSchema
from prefactor.server.store_base import JSON, StoreBase, not_found
from prefactor.server.store_common import (
    ApiProblem,
    dumps,
    fingerprint,
    idempotency_conflict,
    loads,
    now_iso,
    pagination,
    parse,
)
from prefactor.server.store_schemas import SchemaSet, SpanType, render_template
from prefactor.server.store_unit import UnitOfWork

__all__ = ["SpanFields", "SpanRules", "check_span_details", "minimal_answer", "span_refs"]

_TERMINAL_SPAN = frozenset({"complete", "failed", "cancelled"})
# A span that ends in one of these carries an error record, not the function's return value.
_ERROR_RESULT = frozenset({"failed", "cancelled"})
_CREATE_STATUSES = frozenset({"active", "pending", "complete", "failed", "cancelled"})
_SPAN_COLUMNS = (
    "s.id, s.agent_instance_id, s.schema_name, s.status, s.payload, s.result_payload,"
    " s.parent_span_id, s.schema_title, s.summary, s.started_at, s.finished_at, s.inserted_at,"
    " s.updated_at, s.schema_violations, i.account_id, i.agent_id"
)


def _span_details(row: Sequence[Any]) -> JSON:
    return {
        "type": "agent_span",
        "id": row[0],
        "agent_instance_id": row[1],
        "schema_name": row[2],
        "status": row[3],
        "payload": loads(row[4]),
        "result_payload": loads(row[5]) if row[5] is not None else None,
        "parent_span_id": row[6],
        "schema_title": row[7],
        "summary": row[8],
        "started_at": row[9],
        "finished_at": row[10],
        "inserted_at": row[11],
        "updated_at": row[12],
        "schema_violations": loads(row[13]) if row[13] is not None else None,
        "account_id": row[14],
        "agent_id": row[15],
    }


def _violations(
    side: Literal["params", "result"], schema: CompiledSchema | None, value: JSON | None
) -> list[JSON]:
    """What ``value`` breaks in ``schema``, as stored ``schema_violations`` entries."""
    if schema is None or value is None or schema.is_valid(value):
        return []
    return [{"side": side, "path": path, "reason": reason} for path, reason in schema.errors(value)]


def _result_violations(stype: SpanType | None, status: str, result: JSON | None) -> list[JSON]:
    """The result's violations; a failed or cancelled span's result is an error record."""
    if stype is None or status in _ERROR_RESULT:
        return []
    return _violations("result", stype.result, result)


def _control(instance_status: str, reason: str | None) -> JSON | None:
    """The ``control`` a span write answers with: the terminate signal, once terminated."""
    if instance_status == "terminated":
        return {"terminate": True, "reason": reason}
    return None


def _respond(details: JSON | None, control: JSON | None) -> JSON:
    """A span write's success answer; without ``details`` it is the minimal one."""
    response: JSON = {"status": "success"}
    if details is not None:
        response["details"] = details
    if control is not None:
        response["control"] = control
    return response


def minimal_answer(answer: JSON) -> JSON:
    """A success answer as ``Prefer: return=minimal`` asks for it: its status and control."""
    return _respond(None, answer.get("control"))


class SpanFields(NamedTuple):
    """The checked fields of a span create (timestamps normalised)."""

    agent_instance_id: str
    schema_name: str
    status: str
    payload: JSON | None
    result_payload: JSON | None
    id: str | None
    parent_span_id: str | None
    started_at: str | None
    finished_at: str | None
    idempotency_key: str | None
    schema_violations: list[JSON] | None


def span_refs(all_details: Iterable[JSON]) -> list[str]:
    """The span ids span creates name (their own and their parents'), to look up at once."""
    refs: list[str] = []
    for details in all_details:
        ref = details.get("id")
        if isinstance(ref, str):
            refs.append(ref)
        ref = details.get("parent_span_id")
        if isinstance(ref, str):
            refs.append(ref)
    return refs


def check_span_details(details: JSON) -> SpanFields:
    """Check span create details as :class:`SpanDetailsForCreate` does, quickly.

    The common, valid shape is checked by hand (a model costs more than
    everything else a span needs on the bulk path); anything unusual goes
    through the model, whose errors are the answer. Tests hold the two to the
    same verdicts.

    Raises:
        ApiProblem: 422 with the model's errors.
    """
    get = details.get
    instance_id, name, status = get("agent_instance_id"), get("schema_name"), get("status")
    payload, result, key = get("payload"), get("result_payload"), get("idempotency_key")
    span_id, parent = get("id"), get("parent_span_id")
    started, finished = get("started_at"), get("finished_at")
    if (
        type(instance_id) is str
        and type(name) is str
        and name
        and type(status) is str
        and status in _CREATE_STATUSES
        and (payload is None or type(payload) is dict)
        and (result is None or type(result) is dict)
        and (span_id is None or type(span_id) is str)
        and (parent is None or type(parent) is str)
        and (key is None or (type(key) is str and 0 < len(key) <= 64))
        and get("schema_violations") is None
        and (status in _TERMINAL_SPAN or (finished is None and result is None))
    ):
        try:
            started = None if started is None else normalize_timestamp(started)
            finished = None if finished is None else normalize_timestamp(finished)
        except ValueError:
            pass
        else:
            return SpanFields(
                instance_id,
                name,
                status,
                payload,
                result,
                span_id,
                parent,
                started,
                finished,
                key,
                None,
            )
    req = parse(SpanDetailsForCreate, details)
    declared = req.schema_violations
    return SpanFields(
        req.agent_instance_id,
        req.schema_name,
        req.status,
        req.payload,
        req.result_payload,
        req.id,
        req.parent_span_id,
        req.started_at,
        req.finished_at,
        req.idempotency_key,
        None if declared is None else [v.model_dump() for v in declared],
    )


# The instance columns a run of span creates reads, in the order _SpanBatch uses them.
_SPAN_NEEDS = ("account_id", "agent_id", "status", "schema_version_id", "termination_reason")
_SPAN_NEEDS_OF_ROW = operator.itemgetter(*(StoreBase.INSTANCE_COLUMN_INDEX[c] for c in _SPAN_NEEDS))


class _Instance(NamedTuple):
    """What a run of span creates needs of an instance, looked up once per run."""

    account_id: str
    agent_id: str
    schemas: SchemaSet
    control: JSON | None


class _SpanBatch:
    """The state of one run of span creates: prefetched facts and the rows to write."""

    __slots__ = (
        "checked_keys",
        "details",
        "instances",
        "known",
        "now",
        "replays",
        "span_rows",
        "store",
        "unit",
    )

    def __init__(self, store: SpanRules, unit: UnitOfWork, now: str, details: bool) -> None:
        self.store = store
        self.unit = unit
        self.now = now
        self.details = details
        # Span id -> instance id of every span known to exist, this run's included.
        self.known = unit.spans
        self.replays, self.checked_keys = unit.keys_in("agent_spans/create")
        self.instances: dict[str, _Instance] = {}
        self.span_rows: list[tuple[Any, ...]] = []

    def _instance(self, instance_id: str) -> _Instance:
        inst = self.instances.get(instance_id)
        if inst is None:
            known = self.unit.instance(instance_id, lock=False)
            if known is not None:
                row = _SPAN_NEEDS_OF_ROW(known)
            else:
                # Only the columns a span needs: a run that reads its instance once does
                # not need the rest of it again.
                row = self.store._conn.execute(
                    f"SELECT {', '.join(_SPAN_NEEDS)} FROM instances WHERE id = ?",
                    (instance_id,),
                ).fetchone()
                if row is None:
                    raise not_found("agent instance", instance_id)
            schemas = self.store._schema_set(row[3])
            inst = _Instance(row[0], row[1], schemas, _control(row[2], row[4]))
            self.instances[instance_id] = inst
        return inst

    def add(self, details: JSON, top_key: str | None) -> JSON:
        """Check one span and queue its rows; its answer, or the stored one on a replay.

        The answer carries the span's ``details`` unless the batch was asked for
        minimal answers (then only ``status`` and ``control``).

        Raises:
            ApiProblem: the span is refused; nothing was queued for it.
        """
        req = check_span_details(details)
        if req.id is not None and not is_pfid(req.id):
            raise ApiProblem(422, "validation_error", "id must be a PFID", {"id": ["not a PFID"]})
        key = top_key if top_key is not None else req.idempotency_key
        digest = ""
        # Whether the span's own row records its key (see _V5_SPAN_CREATE_RECORD).
        in_row = False
        if key is not None:
            body = (
                {k: v for k, v in details.items() if k != "idempotency_key"}
                if "idempotency_key" in details
                else details  # the usual bulk item: its key sits beside the details
            )
            digest = fingerprint("agent_spans/create", None, body)
            replay = self.replays.get(key)
            if replay is None and key not in self.checked_keys:
                replay = self.unit.stored("agent_spans/create", key)
            if replay is None and req.id is not None and key == create_key(req.id):
                if req.id in self.known:
                    replay = self._recorded_in_row(req.id)
                in_row = self.unit.serial
            if replay is not None:
                if replay[0] != digest:
                    raise idempotency_conflict(key)
                return self._replayed(loads(replay[1]))
        inst = self._instance(req.agent_instance_id)
        parent = req.parent_span_id
        if parent is not None and self.known.get(parent) != req.agent_instance_id:
            raise ApiProblem(
                422,
                "validation_error",
                "parent_span_id is not a span of this instance",
                {"parent_span_id": [f"no span {parent!r} in this instance"]},
            )
        schemas = inst.schemas
        stype = schemas.span_types.get(req.schema_name)
        payload = req.payload if req.payload is not None else {}
        result = req.result_payload
        # Serialised before validation: a value JSON cannot carry is refused here, and one
        # too deep for the encoder never reaches a validator.
        payload_text = dumps(payload)
        result_text = dumps(result) if result is not None else None
        found: list[JSON] = []
        if stype is None and not schemas.open:
            reason = f"{req.schema_name!r} is not a span type of this schema version"
            found.append({"side": "params", "path": "$", "reason": reason})
        if stype is not None:
            found += _violations("params", stype.params, payload)
        found += _result_violations(stype, req.status, result)
        violations = found or req.schema_violations
        span_id = req.id or generate_pfid()
        if span_id in self.known:
            raise ApiProblem(409, "conflict", f"agent span {span_id!r} already exists")
        now = self.now
        started = req.started_at or now
        finished = None
        if req.status in _TERMINAL_SPAN:
            finished = req.finished_at or now
        title = stype.title if stype is not None else req.schema_name
        summary = render_template(stype.template, payload) if stype is not None else None
        control = inst.control
        memo: str | None = None
        if key is not None:
            # Not the whole answer: the span row holds everything that cannot change, so
            # the memo keeps only what a later finish may overwrite (a third of the bytes).
            memo = dumps(
                {
                    "span_id": span_id,
                    "status": req.status,
                    "violations": len(violations) if violations else None,
                    "control": control,
                }
            )
            if not in_row:
                self.unit.stage_idempotency("agent_spans/create", key, digest, memo)
        self.span_rows.append(
            (
                span_id,
                req.agent_instance_id,
                parent,
                req.schema_name,
                title,
                summary,
                req.status,
                payload_text,
                result_text,
                dumps(violations) if violations else None,
                started,
                finished,
                now,
                now,
                digest if in_row else None,
                memo if in_row else None,
            )
        )
        self.known[span_id] = req.agent_instance_id
        details_out: JSON | None = None
        if self.details:
            details_out = {
                "type": "agent_span",
                "id": span_id,
                "agent_instance_id": req.agent_instance_id,
                "schema_name": req.schema_name,
                "status": req.status,
                "payload": payload,
                "result_payload": result,
                "parent_span_id": parent,
                "schema_title": title,
                "summary": summary,
                "started_at": started,
                "finished_at": finished,
                "inserted_at": now,
                "updated_at": now,
                "schema_violations": violations or None,
                "account_id": inst.account_id,
                "agent_id": inst.agent_id,
            }
        return _respond(details_out, control)

    def _recorded_in_row(self, span_id: str) -> tuple[str, str] | None:
        """The ``(fingerprint, memo)`` of the key a span's row records, if it records one."""
        self.unit.flush()
        row = self.store._conn.execute(
            "SELECT create_digest, create_memo FROM spans WHERE id = ?", (span_id,)
        ).fetchone()
        return None if row is None or row[0] is None else (row[0], row[1])

    def _replayed(self, memo: JSON) -> JSON:
        """The answer a span create gave, rebuilt from its row and its memo."""
        if not self.details:
            return _respond(None, memo["control"])
        self.unit.flush()
        row = self.store._conn.execute(
            f"SELECT {_SPAN_COLUMNS} FROM spans s JOIN instances i ON i.id = s.agent_instance_id"
            " WHERE s.id = ?",
            (memo["span_id"],),
        ).fetchone()
        details = _span_details(row)
        if memo["status"] not in _TERMINAL_SPAN:  # finished since: show it as it was created
            details.update(status=memo["status"], result_payload=None, finished_at=None)
        details["updated_at"] = details["inserted_at"]
        count = memo["violations"]
        details["schema_violations"] = (
            None if count is None else details["schema_violations"][:count]
        )
        return _respond(details, memo["control"])


class SpanRules(StoreBase):
    """Span create/finish/list on top of :class:`StoreBase`."""

    def _create_spans(
        self,
        entries: Sequence[tuple[JSON, str | None]],
        *,
        with_details: bool = True,
        prefetched: bool = False,
    ) -> tuple[list[JSON], ApiProblem | None]:
        """Create spans in order, stopping at the first that fails.

        Reads are made up front in a few ``IN`` queries and the rows are inserted
        with the transaction's other new rows (:class:`UnitOfWork`), so a run of N
        spans costs a handful of statements instead of about 6N. Nothing is
        written for the failing entry or any after it.

        Args:
            entries: ``(details, idempotency_key)`` pairs; the key given here wins
                over ``details["idempotency_key"]``.
            with_details: whether answers carry each span's ``details`` (else only
                ``status`` and ``control``).
            prefetched: the span ids and keys of ``entries`` were read already (a
                bulk request reads those of all its items at once).

        Returns:
            The answers of the spans created (or replayed), and the problem that
            stopped the run, if any.
        """
        unit = self._work
        if not prefetched:
            self._prefetch_creates(unit, entries)
        batch = _SpanBatch(self, unit, now_iso(), with_details)
        responses: list[JSON] = []
        problem: ApiProblem | None = None
        for details, key in entries:
            try:
                responses.append(batch.add(details, key))
            except ApiProblem as exc:
                problem = exc
                break
        if batch.span_rows:
            unit.insert_spans(batch.span_rows)
        return responses, problem

    @staticmethod
    def _prefetch_creates(unit: UnitOfWork, entries: Sequence[tuple[JSON, str | None]]) -> None:
        # Span ids before keys (see UnitOfWork.prefetch_spans).
        unit.prefetch_spans(span_refs(details for details, _ in entries))
        keys = [
            key if key is not None else details.get("idempotency_key") for details, key in entries
        ]
        unit.prefetch_keys("agent_spans/create", (k for k in keys if isinstance(k, str)))

    def _finish_span(self, span_id: str, body: JSON) -> JSON:
        req = parse(FinishSpanRequest, body)

        def op() -> JSON:
            conn = self._conn
            unit = self._work
            unit.flush()
            row = conn.execute(
                f"SELECT {_SPAN_COLUMNS}, i.status, i.termination_reason, i.schema_version_id"
                " FROM spans s JOIN instances i ON i.id = s.agent_instance_id"
                f" WHERE s.id = ?{self._sql.lock_span}",
                (span_id,),
            ).fetchone()
            if row is None:
                raise not_found("agent span", span_id)
            status = req.status or "complete"
            if row[3] in _TERMINAL_SPAN:
                raise ApiProblem(409, "invalid_action", f"agent span is already {row[3]}")
            if row[3] == "pending" and status != "cancelled":
                raise ApiProblem(
                    409, "invalid_action", "a pending span can only be finished as cancelled"
                )
            stype = self._schema_set(row[18]).span_types.get(row[2])
            result = dumps(req.result_payload) if req.result_payload is not None else None
            found = _result_violations(stype, status, req.result_payload)
            violations = loads(row[13]) if row[13] is not None else None
            added = found or [v.model_dump() for v in req.schema_violations or ()]
            if added:
                violations = (violations or []) + added
            now = now_iso()
            finished = req.timestamp or now
            encoded = dumps(violations) if violations is not None else None
            conn.execute(
                "UPDATE spans SET status = ?, finished_at = ?, result_payload = ?,"
                " schema_violations = ?, updated_at = ? WHERE id = ?",
                (status, finished, result, encoded, now, span_id),
            )
            unit.span_finished(row[1], row[3], status)
            updated = (
                *row[:3],
                status,
                row[4],
                result,
                *row[6:10],
                finished,
                row[11],
                now,
                encoded,
                row[14],
                row[15],
            )
            return _respond(_span_details(updated), _control(row[16], row[17]))

        return self._idempotent(
            "agent_spans/finish",
            req.idempotency_key,
            span_id,
            {k: v for k, v in body.items() if k != "idempotency_key"},
            op,
        )

    def _list_spans(self, agent_instance_id: str, offset: int, page_size: int) -> JSON:
        conn = self._conn
        self._instance_row(agent_instance_id)
        total = conn.execute(
            "SELECT count(*) FROM spans WHERE agent_instance_id = ?", (agent_instance_id,)
        ).fetchone()[0]
        rows = conn.execute(
            f"SELECT {_SPAN_COLUMNS} FROM spans s JOIN instances i ON i.id = s.agent_instance_id"
            " WHERE s.agent_instance_id = ? ORDER BY s.started_at, s.rowid LIMIT ? OFFSET ?",
            (agent_instance_id, page_size, offset),
        ).fetchall()
        summaries = [_span_details(r) for r in rows]
        return {
            "status": "success",
            "summaries": summaries,
            "pagination": pagination(offset, page_size, total, len(summaries)),
            "sorting": {"field": "started_at", "direction": "asc"},
        }
