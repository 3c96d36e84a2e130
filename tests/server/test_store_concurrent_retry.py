"""PostgreSQL: a retry that reads across another server's commit is answered as a replay.

Each statement sees what was committed when it began, so a request's reads may
straddle the commit of the same request on another server. The commit is made
to land exactly there: the second store's trace callback, called just before a
statement runs, lets the first store write the whole request at that moment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pg_helpers import in_schema
from server_helpers import SCHEMA_VERSION, span_item

from prefactor._ids import generate_pfid
from prefactor.server.store import Store

BODY = {"agent_id": "agent-1", "agent_version": {"external_identifier": "v1", "name": "A"}}


def _commit_before(marker: str, commit: Callable[[], Any]) -> Callable[[str], None]:
    """A trace callback that runs ``commit`` once, before the first statement holding ``marker``."""
    done: list[bool] = []

    def trace(sql: str) -> None:
        if not done and marker in sql:
            done.append(True)
            commit()

    return trace


def _answers_alike(pg_url: str, marker: str, *, finish: bool) -> None:
    """The same bulk request on two stores, the first committing it before ``marker`` runs.

    With ``finish``, the spans are created first and the request finishes them;
    else the request creates them.
    """
    db = in_schema(pg_url, "retry_race")
    first, second = Store(db), Store(db)
    try:
        instance_id = first.register_instance({**BODY, "agent_schema_version": SCHEMA_VERSION})
        iid = instance_id["details"]["id"]
        first.start_instance(iid, {})
        spans = [generate_pfid() for _ in range(3)]
        creates = [span_item(iid, f"create-{n}", id=s) for n, s in enumerate(spans)]
        finishes = [
            {"_type": "agent_spans/finish", "idempotency_key": f"finish-{n}", "agent_span_id": s}
            for n, s in enumerate(spans)
        ]
        if finish:
            first.bulk({"items": creates})
        body = {"items": finishes if finish else creates}
        answers: list[Any] = []
        second.set_trace_callback(_commit_before(marker, lambda: answers.append(first.bulk(body))))
        retried = second.bulk(body)
        assert answers, f"no statement held {marker!r}"
        assert retried == answers[0]
        assert all(out["status"] == "success" for out in retried["outputs"].values())
    finally:
        first.close()
        second.close()


def test_span_creates_read_across_a_commit_replay_rather_than_conflict(pg_url: str) -> None:
    # The commit lands just before the creates read which span ids exist.
    _answers_alike(pg_url, "SELECT id, agent_instance_id FROM spans", finish=False)


def test_a_span_finish_read_across_a_commit_replays_rather_than_conflicts(pg_url: str) -> None:
    # The commit lands after the finish's idempotency read, before it reads the span.
    _answers_alike(pg_url, "WHERE s.id", finish=True)


def test_root_calls_whose_instances_another_server_inserted_first_replay(pg_url: str) -> None:
    # The new instances are inserted at commit: the commit of the same request by another
    # server lands just before, so the insert meets their ids, and the retry replays.
    db = in_schema(pg_url, "retry_root")
    first, second = Store(db), Store(db)
    try:
        # The agent, its deployment and version exist already (else the second store's
        # transaction would hold them uncommitted while the first one waits for them).
        for store in (first, second):
            store.register_instance({})
        items: list[dict[str, Any]] = []
        for _ in range(3):
            iid = generate_pfid()
            items += [
                {"_type": "agent_instances/register", "idempotency_key": f"{iid}-reg", "id": iid},
                {
                    "_type": "agent_instances/start",
                    "idempotency_key": f"{iid}-start",
                    "agent_instance_id": iid,
                },
                span_item(iid, f"{iid}-span"),
                {
                    "_type": "agent_instances/finish",
                    "idempotency_key": f"{iid}-finish",
                    "agent_instance_id": iid,
                },
            ]
        body = {"items": items}
        answers: list[Any] = []
        second.set_trace_callback(
            _commit_before("COPY instances", lambda: answers.append(first.bulk(body)))
        )
        retried = second.bulk(body)
        assert answers, "the instances were not inserted with COPY"
        assert retried == answers[0]
        assert {out["status"] for out in retried["outputs"].values()} == {"success"}
        assert second.list_instances()["pagination"]["item_count"] == 2 + 3
    finally:
        first.close()
        second.close()


def test_an_instance_finish_refused_across_a_commit_replays_the_finish_answer(
    pg_url: str,
) -> None:
    # The commit lands after the key was read absent, before the finish locks the instance:
    # it finds the instance finished, and answers the stored finish as the retry it is.
    db = in_schema(pg_url, "retry_finish")
    first, second = Store(db), Store(db)
    try:
        iid = first.register_instance(BODY)["details"]["id"]
        first.start_instance(iid, {})
        item = {
            "_type": "agent_instances/finish",
            "idempotency_key": "finish-race-1",
            "agent_instance_id": iid,
            "status": "failed",
        }
        body = {"items": [item]}
        answers: list[Any] = []
        second.set_trace_callback(
            _commit_before("FOR UPDATE", lambda: answers.append(first.bulk(body)))
        )
        retried = second.bulk(body)
        assert answers, "the finish did not lock its instance"
        assert retried == answers[0]
        assert retried["outputs"]["finish-race-1"]["details"]["status"] == "failed"
    finally:
        first.close()
        second.close()
