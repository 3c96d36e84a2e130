"""Two ``prefactor serve`` processes on one PostgreSQL database, as behind a load balancer.

Server A runs two worker processes, server B one, so three processes share
the database. Clients send each request to several of them at the same
moment: the same retried bulk requests, and transitions of one instance or
span that race each other. The database must end as if the requests had
arrived one after the other: no duplicate, no illegal state, nothing lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import psycopg
import pytest
from pg_helpers import in_schema
from serve_helpers import ServeProcess
from server_helpers import GOOD_PAYLOAD, SCHEMA_VERSION

from prefactor._ids import generate_pfid

pytestmark = pytest.mark.slow

TOKEN = "cluster-token-0123456789"
CLIENTS = 4  # copies of each request, sent at once


class Cluster:
    """The servers' HTTP clients and a direct connection to their database."""

    def __init__(self, urls: list[str], db: str) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        self.clients = [httpx.Client(base_url=u, headers=headers, timeout=60) for u in urls]
        self.db = db

    def post(self, n: int, path: str, body: dict[str, Any]) -> httpx.Response:
        """POST through the ``n``-th server (round robin over them)."""
        return self.clients[n % len(self.clients)].post(path, json=body)

    def at_once(self, calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
        """Run ``calls`` from as many threads, released together."""
        gate = threading.Barrier(len(calls))

        def run(call: Callable[[], httpx.Response]) -> httpx.Response:
            gate.wait()
            return call()

        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(run, calls))

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db) as conn:
            return conn.execute(sql.encode(), params).fetchall()

    def register(self, **body: Any) -> str:
        response = self.post(0, "/api/v1/agent_instance/register", body)
        assert response.status_code == 200, response.text
        instance_id: str = response.json()["details"]["id"]
        assert self.post(1, f"/api/v1/agent_instance/{instance_id}/start", {}).status_code == 200
        return instance_id


@pytest.fixture(scope="module")
def cluster(pg_url: str) -> Iterator[Cluster]:
    db = in_schema(pg_url, "serve_cluster")
    servers = [ServeProcess(db, TOKEN, "--workers", "2"), ServeProcess(db, TOKEN)]
    try:
        urls = [server.wait_listening() for server in servers]
        # A's URL twice: its requests are shared between its two workers by the kernel.
        c = Cluster([urls[0], urls[1], urls[0]], db)
        yield c
        for client in c.clients:
            client.close()
    finally:
        errors = [server.stop() for server in servers]
    assert not any("Traceback" in e for e in errors), errors


def _all_answered_alike(responses: list[httpx.Response]) -> dict[str, Any]:
    assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
    bodies = [r.json() for r in responses]
    assert all(b == bodies[0] for b in bodies), "a retry was answered differently"
    first: dict[str, Any] = bodies[0]
    return first


def test_the_same_register_sent_to_every_server_at_once_makes_one_instance(
    cluster: Cluster,
) -> None:
    for n in range(8):
        body = {"agent_id": "cluster-register", "idempotency_key": f"cluster-register-{n}"}
        _all_answered_alike(
            cluster.at_once(
                [
                    lambda i=i: cluster.post(i, "/api/v1/agent_instance/register", body)
                    for i in range(CLIENTS)
                ]
            )
        )
    rows = cluster.query("SELECT count(*) FROM instances WHERE agent_id = 'cluster-register'")
    assert rows == [(8,)]


def test_the_same_bulk_requests_sent_to_every_server_at_once_store_each_span_once(
    cluster: Cluster,
) -> None:
    instance_id = cluster.register(agent_id="cluster-bulk", agent_schema_version=SCHEMA_VERSION)
    spans = [generate_pfid() for _ in range(300)]
    bodies = []
    for start in range(0, len(spans), 50):
        batch = spans[start : start + 50]
        items: list[dict[str, Any]] = [
            {
                "_type": "agent_spans/create",
                "idempotency_key": f"{span_id}-create",
                "id": span_id,
                "agent_instance_id": instance_id,
                "schema_name": "agent:llm",
                "status": "active",
                "payload": GOOD_PAYLOAD,
            }
            for span_id in batch
        ]
        items += [
            {
                "_type": "agent_spans/finish",
                "idempotency_key": f"{span_id}-finish",
                "agent_span_id": span_id,
                "status": "complete",
                "result_payload": {"text": "ok"},
            }
            for span_id in batch[::2]
        ]
        bodies.append({"items": items})
    for body in bodies:
        answer = _all_answered_alike(
            cluster.at_once(
                [lambda i=i: cluster.post(i, "/api/v1/bulk", body) for i in range(CLIENTS)]
            )
        )
        assert {o["status"] for o in answer["outputs"].values()} == {"success"}
    stored = cluster.query(
        "SELECT status, count(*) FROM spans WHERE agent_instance_id = %s GROUP BY status",
        instance_id,
    )
    assert dict(stored) == {"complete": 150, "active": 150}


def test_racing_finishes_and_terminates_of_an_instance_leave_exactly_one_winner(
    cluster: Cluster,
) -> None:
    racers = [
        ("finish", {"status": "complete"}),
        ("finish", {"status": "failed"}),
        ("finish", {"status": "cancelled"}),
        ("terminate", {"reason": "stop"}),
    ]
    for _ in range(10):
        instance_id = cluster.register(agent_id="cluster-race")
        responses = cluster.at_once(
            [
                lambda i=i, action=action, body=body: cluster.post(
                    i, f"/api/v1/agent_instance/{instance_id}/{action}", body
                )
                for i, (action, body) in enumerate(racers)
            ]
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [200, 409, 409, 409], [r.text for r in responses]
        winner = next(r for r in responses if r.status_code == 200).json()["details"]
        stored = cluster.query(
            "SELECT status, finished_at FROM instances WHERE id = %s", instance_id
        )
        assert stored == [(winner["status"], winner["finished_at"])]


def test_racing_finishes_of_a_span_leave_exactly_one_winner(cluster: Cluster) -> None:
    instance_id = cluster.register(agent_id="cluster-span-race")
    statuses = ["complete", "failed", "cancelled", "complete"]
    for _ in range(10):
        created = cluster.post(
            0,
            "/api/v1/agent_spans",
            {
                "details": {
                    "agent_instance_id": instance_id,
                    "schema_name": "step",
                    "status": "active",
                }
            },
        )
        span_id = created.json()["details"]["id"]
        responses = cluster.at_once(
            [
                lambda i=i, status=status: cluster.post(
                    i,
                    f"/api/v1/agent_spans/{span_id}/finish",
                    {"status": status, "result_payload": {"by": i}},
                )
                for i, status in enumerate(statuses)
            ]
        )
        assert sorted(r.status_code for r in responses) == [200, 409, 409, 409]
        winner = next(r for r in responses if r.status_code == 200).json()["details"]
        stored = cluster.query("SELECT status, result_payload FROM spans WHERE id = %s", span_id)
        assert [(status, orjson.loads(result)) for status, result in stored] == [
            (winner["status"], winner["result_payload"])
        ]


def test_quality_recorded_at_once_through_every_server_loses_no_name(cluster: Cluster) -> None:
    instance_id = cluster.register(agent_id="cluster-quality")
    names = [f"grade-{n}" for n in range(8)]
    responses = cluster.at_once(
        [
            lambda i=i, name=name: cluster.post(
                i,
                f"/api/v1/agent_instance/{instance_id}/record_quality",
                {"name": name, "payload": {"n": i}},
            )
            for i, name in enumerate(names)
        ]
    )
    assert [r.status_code for r in responses] == [200] * len(names)
    final = cluster.clients[1].get(f"/api/v1/agent_instance/{instance_id}").json()["details"]
    assert sorted(final["quality_payloads"]) == names
