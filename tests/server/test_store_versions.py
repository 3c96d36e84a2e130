"""Versioned stores: a 0.1.0 file and older databases open and upgrade; newer ones are refused."""

from __future__ import annotations

import shutil
import sqlite3
import threading
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pg_helpers import in_schema

from prefactor.server._migrations import MIGRATIONS, STORE_VERSION
from prefactor.server._postgres import POSTGRES
from prefactor.server.store import Store, StoreVersionError

RELEASE_FILE = Path(__file__).resolve().parents[1] / "data" / "store-0.1.0.db"


@pytest.fixture
def release_file(tmp_path: Path) -> Path:
    """A copy of the file release 0.1.0 wrote (opening it upgrades it)."""
    copy = tmp_path / "traces.db"
    shutil.copyfile(RELEASE_FILE, copy)
    return copy


def _by_external(store: Store) -> dict[str | None, dict[str, Any]]:
    listed = store.list_instances(page_size=1000)["summaries"]
    return {inst["external_identifier"]: inst for inst in listed}


def test_a_release_0_1_0_file_opens_with_every_instance_and_span(release_file: Path) -> None:
    store = Store(release_file)
    try:
        found = _by_external(store)
        assert {k: v["status"] for k, v in found.items()} == {
            "run-complete": "complete",
            "run-active": "active",
            "run-terminated": "terminated",
            None: "pending",
        }
        done = found["run-complete"]
        assert done["quality_payloads"] == {"accuracy": {"score": 0.9}}
        assert done["span_counts"] == {
            "total": 3,
            "pending": 0,
            "active": 0,
            "complete": 2,
            "failed": 1,
            "cancelled": 0,
            "finished": 3,
        }
        spans = store.list_spans(agent_instance_id=done["id"])["summaries"]
        assert [(s["schema_name"], s["status"]) for s in spans] == [
            ("agent:llm", "complete"),
            ("agent:tool", "complete"),
            ("agent:llm", "failed"),
        ]
        assert spans[0]["summary"] == "gpt-4o call"
        assert [v["path"] for v in spans[2]["schema_violations"]] == ["$.model"]
    finally:
        store.close()


def test_a_release_0_1_0_file_replays_a_span_create_key_as_it_was_answered(
    release_file: Path,
) -> None:
    store = Store(release_file)
    try:
        done = _by_external(store)["run-complete"]
        root = store.list_spans(agent_instance_id=done["id"])["summaries"][0]
        replay = store.create_span(
            {
                "details": {
                    "agent_instance_id": done["id"],
                    "schema_name": "agent:llm",
                    "status": "active",
                    "payload": {"model": "gpt-4o"},
                    "started_at": "2026-02-09T10:00:01Z",
                },
                "idempotency_key": "create-root",
            }
        )
        assert (replay["details"]["id"], replay["details"]["status"]) == (root["id"], "active")
        assert store.get_instance(done["id"])["details"]["span_counts"]["total"] == 3
    finally:
        store.close()


def test_a_release_0_1_0_file_keeps_its_schemas_and_takes_new_spans(release_file: Path) -> None:
    store = Store(release_file)
    try:
        running = _by_external(store)["run-active"]["id"]
        unknown = store.create_span(
            {"details": {"agent_instance_id": running, "schema_name": "x", "status": "active"}}
        )
        assert unknown["details"]["schema_violations"] == [
            {
                "side": "params",
                "path": "$",
                "reason": "'x' is not a span type of this schema version",
            }
        ]
        created = store.create_span(
            {
                "details": {
                    "agent_instance_id": running,
                    "schema_name": "agent:llm",
                    "status": "active",
                    "payload": {"model": "m"},
                }
            }
        )
        assert created["details"]["summary"] == "m call"
    finally:
        store.close()


def test_a_release_0_1_0_file_gains_quality_flags(release_file: Path) -> None:
    store = Store(release_file)
    try:
        done = _by_external(store)["run-complete"]["id"]
        assert store.get_instance(done)["details"]["quality_violations"] == {}
        flagged = store.record_quality(done, {"name": "accuracy", "payload": {"score": "high"}})
        assert flagged["details"]["quality_violations"] == {
            "accuracy": [{"path": "$.score", "reason": "'high' is not of type 'number'"}]
        }
    finally:
        store.close()


def test_opening_a_release_0_1_0_file_records_the_current_version_and_layout(
    release_file: Path,
) -> None:
    Store(release_file).close()
    with sqlite3.connect(release_file) as conn:
        version = conn.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
        (idempotency,) = conn.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'idempotency'"
        ).fetchone()
        keys = conn.execute("SELECT count(*) FROM idempotency").fetchone()
    assert version == (str(STORE_VERSION),)
    assert idempotency.endswith("WITHOUT ROWID")
    assert keys == (9,)  # every key the release stored, carried into the new table


@pytest.fixture
def own_target(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """A new database that no other test shares: a file, or a PostgreSQL schema of its own."""
    if backend == "sqlite":
        return str(tmp_path / "own.db")
    return in_schema(request.getfixturevalue("pg_url"), "store_own")


def test_a_store_of_a_newer_version_is_refused_and_left_unchanged(
    own_target: str, backend: str
) -> None:
    Store(own_target).close()
    _set_version(own_target, backend, "99")
    with pytest.raises(StoreVersionError, match="upgrade prefactor"):
        Store(own_target)
    assert _version(own_target, backend) == "99"


def test_a_version_1_postgresql_database_is_upgraded_with_its_rows(pg_url: str) -> None:
    url = in_schema(pg_url, "store_v1")
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in MIGRATIONS[0].statements(POSTGRES):
            conn.execute(statement)
        conn.execute(
            "INSERT INTO meta (key, value) VALUES ('account_id', 'acct'), ('environment_id', 'env')"
        )
        conn.execute(
            "INSERT INTO instances (id, account_id, agent_id, agent_version_id, environment_id,"
            " agent_deployment_id, status, purpose, inserted_at, updated_at) VALUES"
            " ('i-1', 'acct', 'a', 'v', 'env', 'd', 'active', 'live', %s, %s)",
            ("2026-02-09T00:00:00.000000Z",) * 2,
        )
        conn.execute(
            "INSERT INTO spans (id, agent_instance_id, schema_name, status, payload, started_at,"
            " inserted_at, updated_at) VALUES ('s-1', 'i-1', 'x', 'complete', '{}', %s, %s, %s)",
            ("2026-02-09T00:00:01.000000Z",) * 3,
        )
    store = Store(url)
    try:
        assert store.account_id == "acct"
        details = store.get_instance("i-1")["details"]
        assert (details["status"], details["span_counts"]["complete"]) == ("active", 1)
    finally:
        store.close()
    assert _version(url, "postgresql") == str(STORE_VERSION)


def test_servers_opening_a_new_postgresql_database_at_once_upgrade_it_once(pg_url: str) -> None:
    url = in_schema(pg_url, "store_race")
    opened: list[Store] = []
    failures: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(Store(url))
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert failures == []
        assert len({s.account_id for s in opened}) == 1
        assert _version(url, "postgresql") == str(STORE_VERSION)
    finally:
        for s in opened:
            s.close()


def _version(target: str, backend: str) -> str:
    if backend == "sqlite":
        with sqlite3.connect(target) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
    else:
        with psycopg.connect(target) as pg:
            row = pg.execute("SELECT value FROM meta WHERE key = 'store_version'").fetchone()
    assert row is not None
    return str(row[0])


def _set_version(target: str, backend: str, version: str) -> None:
    if backend == "sqlite":
        with sqlite3.connect(target) as conn:
            conn.execute("UPDATE meta SET value = ? WHERE key = 'store_version'", (version,))
    else:
        with psycopg.connect(target, autocommit=True) as pg:
            pg.execute("UPDATE meta SET value = %s WHERE key = 'store_version'", (version,))
