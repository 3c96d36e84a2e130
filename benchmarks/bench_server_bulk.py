"""Bulk ingestion throughput of ``prefactor serve``: span items per second over loopback HTTP.

Starts ``prefactor serve`` in a subprocess on a free loopback port with a
temporary database file, registers an instance whose schema version has an
LLM-call span type, then POSTs ``/api/v1/bulk`` batches of coalesced terminal
spans (one create item per span, carrying its result) with a ~500-byte payload
that the server validates. Request bodies are serialised before the clock
starts, so the figure is the server's: parse, validate, store, answer. Like
the SDK's exporter, requests ask for each item's outcome only (``Prefer:
return=minimal``) rather than an echo of every span.

    python benchmarks/bench_server_bulk.py [--spans 20000] [--batch 1000] [--in-process]

``--in-process`` also times ``Store.bulk`` directly on a file, without HTTP.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from prefactor._ids import generate_pfid
from prefactor.server.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0000"

PARAMS_SCHEMA = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "temperature": {"type": "number", "minimum": 0, "maximum": 2},
        "max_tokens": {"type": "integer"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["system", "user", "assistant", "tool"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
            },
        },
    },
    "required": ["model", "messages"],
}
RESULT_SCHEMA = {
    "type": "object",
    "properties": {"text": {"type": "string"}, "tokens": {"type": "integer"}},
    "required": ["text"],
}
SCHEMA_VERSION = {
    "external_identifier": "bench-v1",
    "span_type_schemas": [
        {"name": "agent:llm", "params_schema": PARAMS_SCHEMA, "result_schema": RESULT_SCHEMA}
    ],
}
PAYLOAD = {
    "model": "gpt-4o-mini",
    "temperature": 0.2,
    "max_tokens": 512,
    "messages": [
        {"role": "system", "content": "You are a careful assistant who answers briefly. " * 2},
        {"role": "user", "content": "Summarise the quarterly report in three bullet points. " * 3},
    ],
}
RESULT = {"text": "Revenue grew; costs fell; outlook stable.", "tokens": 42}


def span_items(instance_id: str, count: int) -> list[dict[str, Any]]:
    """``count`` coalesced terminal span creates, as the exporter sends them."""
    items = []
    for i in range(count):
        span_id = generate_pfid()
        items.append(
            {
                "_type": "agent_spans/create",
                "idempotency_key": f"{span_id}-create",
                "details": {
                    "id": span_id,
                    "agent_instance_id": instance_id,
                    "schema_name": "agent:llm",
                    "status": "complete",
                    "payload": PAYLOAD,
                    "result_payload": RESULT,
                    "parent_span_id": None,
                    "started_at": f"2026-02-09T00:00:{i % 60:02d}.123456+00:00",
                    "finished_at": f"2026-02-09T00:01:{i % 60:02d}.123456+00:00",
                },
            }
        )
    return items


def start_serve(db: str, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``prefactor serve`` on a free loopback port with the benchmark's token; it and its URL."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0", "--db", db, *args]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, proc.stdout.readline().split("listening on ", 1)[1].strip()


def stop_serve(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def bench_http(spans: int, batch: int, db: Path) -> float:
    proc, url = start_serve(str(db))
    try:
        headers = {
            "Authorization": f"Bearer {TOKEN}",
            "Content-Type": "application/json",
            "Prefer": "return=minimal",
        }
        with httpx.Client(base_url=url, headers=headers, timeout=120) as http:
            reg = http.post(
                "/api/v1/agent_instance/register", json={"agent_schema_version": SCHEMA_VERSION}
            )
            instance_id = reg.json()["details"]["id"]
            items = span_items(instance_id, spans)
            bodies = [orjson.dumps({"items": items[i : i + batch]}) for i in range(0, spans, batch)]
            print(f"request body: {len(bodies[0]) / 1024:.0f} KiB per {batch} items")
            http.post("/api/v1/bulk", content=bodies[0])  # warm-up: first batch, not timed
            started = time.perf_counter()
            for body in bodies[1:]:
                response = http.post("/api/v1/bulk", content=body)
                outputs = orjson.loads(response.content)["outputs"]
                assert all(o["status"] == "success" for o in outputs.values()), response.text
            elapsed = time.perf_counter() - started
            counts = http.get(f"/api/v1/agent_instance/{instance_id}").json()["details"]
            assert counts["span_counts"]["total"] == spans, counts["span_counts"]
        return (spans - batch) / elapsed
    finally:
        stop_serve(proc)


def bench_store(spans: int, batch: int, db: Path) -> float:
    store = Store(db)
    try:
        body = {"agent_schema_version": SCHEMA_VERSION}
        instance_id = store.register_instance(body)["details"]["id"]
        items = span_items(instance_id, spans)
        started = time.perf_counter()
        for i in range(0, spans, batch):
            store.bulk({"items": items[i : i + batch]}, details=False)
        return spans / (time.perf_counter() - started)
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--in-process", action="store_true", help="also time Store.bulk alone")
    args = parser.parse_args()
    payload_bytes = len(orjson.dumps(PAYLOAD))
    print(f"{args.spans} spans in batches of {args.batch}; payload {payload_bytes} bytes")
    with tempfile.TemporaryDirectory() as tmp:
        rate = bench_http(args.spans, args.batch, Path(tmp) / "http.db")
        print(f"prefactor serve over loopback HTTP: {rate:,.0f} spans/s ingested")
        if args.in_process:
            rate = bench_store(args.spans, args.batch, Path(tmp) / "store.db")
            print(f"Store.bulk in process (file, WAL):  {rate:,.0f} spans/s ingested")


if __name__ == "__main__":
    main()
