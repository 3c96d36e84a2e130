"""Ingest rate of ``prefactor serve`` on SQLite, and on PostgreSQL with one and two servers.

All in one run, with the same load: ``--clients`` threads, each with an
instance of its own, POST ``/api/v1/bulk`` batches of coalesced terminal spans
(the spans of ``bench_server_bulk.py``) as fast as the servers answer. With
two servers the clients alternate between them, as a load balancer would.
Request bodies are serialised before the clock starts; every span is counted
back through the API afterwards.

    python benchmarks/bench_store_backends.py [--spans 20000] [--batch 500] [--clients 4]
        [--postgres URL] [--drivers]

PostgreSQL comes from ``--postgres``, else ``PREFACTOR_TEST_POSTGRES_URL``,
else the test database ``.ci/start-postgres`` creates; each configuration
runs in a schema of its own, made empty first. ``--drivers`` also times the
store's hottest statement, inserting a batch of span rows, with psycopg 3
(``executemany``, which pipelines) and with asyncpg (``executemany``, needs
``pip install asyncpg``), the two maintained drivers.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import orjson
import psycopg
from bench_server_bulk import (
    PAYLOAD,
    RESULT,
    SCHEMA_VERSION,
    TOKEN,
    span_items,
    start_serve,
    stop_serve,
)

from prefactor.server.store import Store

try:
    import asyncpg  # not a dependency: only --drivers uses it
except ImportError:
    asyncpg = None

DEFAULT_POSTGRES = "postgresql://prefactor:prefactor@127.0.0.1:5432/prefactor_test"
HEADERS = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def fresh_schema(url: str, schema: str) -> str:
    """``url`` confined to ``schema``, dropped and created empty."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{schema}"')
    return f"{url}{'&' if '?' in url else '?'}options={quote(f'-csearch_path={schema}')}"


def ingest(urls: list[str], spans: int, batch: int, clients: int) -> float:
    """Spans per second stored by the servers at ``urls`` under the benchmark's load."""
    http = [httpx.Client(base_url=u, headers=HEADERS, timeout=300) for u in urls]
    try:
        per_client = spans // clients
        plans: list[tuple[str, list[bytes]]] = []
        for n in range(clients):
            reg = http[n % len(http)].post(
                "/api/v1/agent_instance/register", json={"agent_schema_version": SCHEMA_VERSION}
            )
            instance_id = reg.json()["details"]["id"]
            items = span_items(instance_id, per_client)
            bodies = [
                orjson.dumps({"items": items[i : i + batch]}) for i in range(0, per_client, batch)
            ]
            plans.append((instance_id, bodies))
        for client in http:  # warm-up: each server's first request is not timed
            client.get("/api/v1/agent_instance")
        gate = threading.Barrier(clients + 1)
        failures: list[str] = []

        def send(n: int) -> None:
            gate.wait()
            for k, body in enumerate(plans[n][1]):
                response = http[(n + k) % len(http)].post("/api/v1/bulk", content=body)
                outputs = orjson.loads(response.content).get("outputs", {})
                if response.status_code != 200 or any(
                    o["status"] != "success" for o in outputs.values()
                ):
                    failures.append(response.text[:200])

        threads = [threading.Thread(target=send, args=(n,)) for n in range(clients)]
        for t in threads:
            t.start()
        gate.wait()
        started = time.perf_counter()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        assert not failures, failures[:3]
        for instance_id, _ in plans:
            details = http[0].get(f"/api/v1/agent_instance/{instance_id}").json()["details"]
            assert details["span_counts"]["total"] == per_client, details["span_counts"]
        return per_client * clients / elapsed
    finally:
        for client in http:
            client.close()


def run_servers(dbs: list[str], body: Callable[[list[str]], float]) -> float:
    started = [start_serve(db) for db in dbs]
    try:
        return body([url for _, url in started])
    finally:
        for proc, _ in started:
            stop_serve(proc)


def driver_rows(count: int) -> list[tuple[Any, ...]]:
    payload, result = orjson.dumps(PAYLOAD).decode(), orjson.dumps(RESULT).decode()
    now = "2026-02-09T00:00:00.000000Z"
    fixed = ("instance", None, "agent:llm", "LLM", None, "complete", payload, result, None)
    return [(f"span-{i:08d}", *fixed, now, now, now, now) for i in range(count)]


SPAN_COLUMNS = (
    "id, agent_instance_id, parent_span_id, schema_name, schema_title, summary, status,"
    " payload, result_payload, schema_violations, started_at, finished_at, inserted_at,"
    " updated_at"
)


def bench_drivers(url: str, rows: int, rounds: int) -> None:
    """Rows per second inserted in one transaction by psycopg and by asyncpg."""
    db = fresh_schema(url, "bench_drivers")
    Store(db).close()  # the store's own tables
    data = driver_rows(rows)
    insert = f"INSERT INTO spans ({SPAN_COLUMNS}) VALUES ({', '.join(['%s'] * 14)})"

    def with_psycopg() -> float:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DELETE FROM spans")
            started = time.perf_counter()
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(insert, data)
            return rows / (time.perf_counter() - started)

    def with_copy() -> float:
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("DELETE FROM spans")
            started = time.perf_counter()
            copy_in = f"COPY spans ({SPAN_COLUMNS}) FROM STDIN"
            with conn.transaction(), conn.cursor() as cur, cur.copy(copy_in) as copy:
                for row in data:
                    copy.write_row(row)
            return rows / (time.perf_counter() - started)

    async def asyncpg_round() -> float:
        conn = await asyncpg.connect(url, server_settings={"search_path": "bench_drivers"})
        try:
            await conn.execute("DELETE FROM spans")
            numbered = ", ".join(f"${i}" for i in range(1, 15))
            started = time.perf_counter()
            async with conn.transaction():
                await conn.executemany(
                    f"INSERT INTO spans ({SPAN_COLUMNS}) VALUES ({numbered})", data
                )
            return rows / (time.perf_counter() - started)
        finally:
            await conn.close()

    results: dict[str, list[float]] = {
        "psycopg 3 executemany": [],
        "psycopg 3 COPY": [],
        "asyncpg executemany": [],
    }
    for _ in range(rounds):  # interleaved, so that all see the same machine
        results["psycopg 3 executemany"].append(with_psycopg())
        results["psycopg 3 COPY"].append(with_copy())
        if asyncpg is not None:
            results["asyncpg executemany"].append(asyncio.run(asyncpg_round()))
    for name, rates in results.items():
        if rates:
            best = max(rates)
            print(f"driver, {name}: {best:,.0f} span rows/s inserted (best of {rounds})")
        else:
            print(f"driver, {name}: not installed (pip install asyncpg)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--postgres", default=None, help="a PostgreSQL URL to benchmark on")
    parser.add_argument("--drivers", action="store_true", help="also compare the drivers")
    args = parser.parse_args()
    postgres = args.postgres or os.environ.get("PREFACTOR_TEST_POSTGRES_URL") or DEFAULT_POSTGRES
    print(
        f"{args.spans} spans per configuration, batches of {args.batch},"
        f" {args.clients} concurrent clients; {os.cpu_count()} cores shared by everything"
    )

    def load(urls: list[str]) -> float:
        return ingest(urls, args.spans, args.batch, args.clients)

    with tempfile.TemporaryDirectory() as tmp:
        rates = {
            "sqlite, 1 server": run_servers([str(Path(tmp) / "traces.db")], load),
            "postgresql, 1 server": run_servers([fresh_schema(postgres, "bench_one")], load),
            "postgresql, 2 servers": run_servers([fresh_schema(postgres, "bench_two")] * 2, load),
        }
    for name, rate in rates.items():
        print(f"{name + ':':24} {rate:>9,.0f} spans/s ingested")
    one, two = rates["postgresql, 1 server"], rates["postgresql, 2 servers"]
    print(f"postgresql 2 servers / 1 server: {two / one:.2f}")
    if args.drivers:
        bench_drivers(postgres, rows=args.batch * 4, rounds=5)


if __name__ == "__main__":
    main()
