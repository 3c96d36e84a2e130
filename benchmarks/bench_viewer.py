"""How long the web viewer's pages take with many runs in the store.

Fills a SQLite store through ``Store.bulk`` (the server's own rules) with
``--runs`` agent instances of four spans each (some failed, some flagged, six
agents), starts ``prefactor serve`` on it, signs in as a browser does (the
token posted once, then the session cookie), and times each page over
loopback HTTP: the newest runs page, filtered pages, a page deep in the list
(reached by following "Older" links, as a reader would), the live-update
fragment, a run's page and the schemas page. A store of ``--small`` runs is
timed in the same run, so the figures compare as a ratio.

    python benchmarks/bench_viewer.py [--runs 100000] [--small 100] [--requests 40]
        [--db PATH] [--browser]

``--db`` keeps the large store between runs (it is filled only when missing).
``--browser`` also loads the runs page in headless Chromium and reports its
load time as the browser measures it (navigation start to the load event).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from prefactor._ids import generate_pfid
from prefactor.server.store import Store

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-viewer-token-0000"
AGENTS = [f"agent-{n}" for n in range(6)]
CHUNK = 500  # instances per bulk request


def _items(n: int) -> Iterator[dict[str, Any]]:
    """The bulk items of instance number ``n``: register, start, four spans, finish."""
    run_id = generate_pfid()
    agent_id = AGENTS[n % len(AGENTS)]
    failed = n % 17 == 0
    key = f"b{n:08d}"
    yield {
        "_type": "agent_instances/register",
        "idempotency_key": key + "r",
        "id": run_id,
        "agent_id": agent_id,
        "agent_version": {"external_identifier": f"1.{n % 3}"},
    }
    yield {
        "_type": "agent_instances/start",
        "idempotency_key": key + "s",
        "agent_instance_id": run_id,
    }
    root = generate_pfid()
    for index in range(4):
        status = "failed" if failed and index == 2 else "complete"
        details: dict[str, Any] = {
            "agent_instance_id": run_id,
            "id": root if index == 0 else generate_pfid(),
            "parent_span_id": None if index == 0 else root,
            "schema_name": "agent:run" if index == 0 else "tool:search",
            "status": status,
            "payload": {"query": f"question {n}", "limit": 3},
            "result_payload": (
                {"error": {"type": "TimeoutError", "message": "slow"}}
                if status == "failed"
                else {"value": ["a", "b"]}
            ),
        }
        if n % 11 == 0 and index == 3:
            details["schema_violations"] = [{"side": "params", "path": "$.limit", "reason": "x"}]
        yield {
            "_type": "agent_spans/create",
            "idempotency_key": f"{key}c{index}",
            "details": details,
        }
    yield {
        "_type": "agent_instances/finish",
        "idempotency_key": key + "f",
        "agent_instance_id": run_id,
        "status": "failed" if failed else "complete",
    }


def fill(path: Path, runs: int) -> float:
    """Write ``runs`` instances into a new store at ``path``; the seconds it took."""
    started = time.perf_counter()
    store = Store(path)
    try:
        for first in range(0, runs, CHUNK):
            items = [i for n in range(first, min(first + CHUNK, runs)) for i in _items(n)]
            outputs = store.bulk({"items": items})["outputs"]
            bad = [o for o in outputs.values() if o.get("status") == "error"]
            if bad:
                raise SystemExit(f"the store refused an item: {bad[0]}")
    finally:
        store.close()
    return time.perf_counter() - started


@contextmanager
def serve(db: Path) -> Iterator[tuple[str, int]]:
    """``prefactor serve`` on ``db``, on a free loopback port; its URL and process id."""
    command = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--db", str(db)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    if not first.startswith("prefactor serve: listening on "):
        proc.kill()
        raise SystemExit(f"prefactor serve did not start: {first!r}")
    try:
        yield first.split("listening on ", 1)[1].strip(), proc.pid
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def older_link(html: str) -> str:
    found = re.search(r'href="(/\?[^"]+)" rel="next"', html)
    if found is None:
        raise SystemExit("the runs page has no Older link")
    return found.group(1).replace("&amp;", "&")


def signed_in(url: str) -> httpx.Client:
    """A client signed in as a browser is: the token posted once, then the session cookie."""
    client = httpx.Client(base_url=url, timeout=60)
    signed = client.post("/signin", data={"token": TOKEN})
    if signed.status_code != 303 or "prefactor_session" not in client.cookies:
        raise SystemExit("signing in did not set the session cookie")
    return client


def pages(client: httpx.Client, deep: int) -> dict[str, str]:
    """The pages to time on one server, by name: the same pages, this server's ids."""
    html = client.get("/").text
    run_id = re.findall(r'<tr data-id="(\w+)"', html)[0]
    path = "/"
    for _ in range(deep):
        body = client.get(path).text
        if 'rel="next"' not in body:
            break
        path = older_link(body)
    return {
        "runs page, newest 50": "/",
        "runs page, agent filter": "/?agent=agent-3",
        "runs page, status=failed": "/?status=failed",
        "runs page, last 24 hours": "/?window=24h",
        f"runs page, {deep} pages deep": path,
        "live rows fragment": "/runs/rows",
        "a run's page": f"/runs/{run_id}",
        "schemas page": "/schemas",
        "(reference: API ping)": "/api/v1/ping",
    }


def cpu_ms(pid: int) -> float:
    """CPU time a process has used (user and system), from ``/proc``: it does not count
    the time the process waited for a core, which on a shared machine dwarfs the work."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / os.sysconf("SC_CLK_TCK")


def get_ms(client: httpx.Client, path: str) -> float:
    start = time.perf_counter()
    response = client.get(path)
    elapsed = (time.perf_counter() - start) * 1000
    if response.status_code != 200:
        raise SystemExit(f"GET {path} answered {response.status_code}")
    return elapsed


def measure(
    servers: list[tuple[str, int]], requests: int, deep: int
) -> list[dict[str, tuple[list[float], float]]]:
    """Time every page on every server: wall-clock per request and server CPU per request.

    The machine is shared, so its speed drifts: servers are asked in turn,
    request by request, which puts the large and the small store under the
    same conditions and makes their ratio fair.
    """
    clients = [signed_in(url) for url, _ in servers]
    try:
        for client in clients:
            client.headers["Authorization"] = f"Bearer {TOKEN}"  # for the API ping only
        paths = [pages(client, deep) for client in clients]
        found: list[dict[str, tuple[list[float], float]]] = [{} for _ in servers]
        for name in paths[0]:
            for client, own in zip(clients, paths, strict=True):
                get_ms(client, own[name])  # warm
            samples: list[list[float]] = [[] for _ in servers]
            cpu_before = [cpu_ms(pid) for _, pid in servers]
            for _ in range(requests):
                for client, own, times in zip(clients, paths, samples, strict=True):
                    times.append(get_ms(client, own[name]))
            for index, (_, pid) in enumerate(servers):
                cpu = (cpu_ms(pid) - cpu_before[index]) / requests
                found[index][name] = (samples[index], cpu)
        return found
    finally:
        for client in clients:
            client.close()


def browser_load_ms(url: str) -> float:
    """The runs page's load time in headless Chromium, as the browser measures it."""
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        try:
            page = browser.new_page()
            page.goto(url + "/signin")
            page.fill("#token", TOKEN)
            page.click("text=Sign in >> nth=-1")
            page.wait_for_url(url + "/")
            samples = []
            for _ in range(10):
                page.goto(url + "/", wait_until="load")
                timing = page.evaluate(
                    "JSON.stringify(performance.getEntriesByType('navigation')[0])"
                )
                entry = json.loads(timing)
                samples.append(entry["loadEventEnd"] - entry["startTime"])
            return statistics.median(samples)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=100)
    parser.add_argument("--requests", type=int, default=40)
    parser.add_argument("--deep", type=int, default=20, help="Older links to follow")
    parser.add_argument("--db", type=Path, default=None, help="keep the large store here")
    parser.add_argument("--browser", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        large = args.db or Path(tmp) / "large.db"
        if not large.exists():
            seconds = fill(large, args.runs)
            print(f"filled {args.runs:,} runs ({args.runs * 7:,} bulk items) in {seconds:.1f} s")
        small = Path(tmp) / "small.db"
        fill(small, args.small)
        with serve(large) as big_server, serve(small) as small_server:
            big, little = measure([big_server, small_server], args.requests, args.deep)
            loads = (
                [browser_load_ms(server[0]) for server in (big_server, small_server)]
                if args.browser
                else []
            )
    print(f"per page, {args.requests} requests each, the two servers asked in turn:")
    print("wall-clock ms over loopback HTTP, median (p95); server CPU ms per request")
    print(f"{'page':32} {f'{args.runs:,} runs':>22} {f'{args.small:,} runs':>22}  ratio")
    for name, (times, cpu) in big.items():
        (a, a95), (b, b95) = _stats(times), _stats(little[name][0])
        small_cpu = little[name][1]
        print(
            f"{name:32} {a:6.1f} ({a95:5.1f}) cpu {cpu:5.2f}"
            f"  {b:6.1f} ({b95:5.1f}) cpu {small_cpu:5.2f}  {a / b:5.2f}"
        )
    if loads:
        print(
            f"{'browser: runs page, load event':32} {loads[0]:6.1f}{'':18}{loads[1]:6.1f}"
            f"{'':18}{loads[0] / loads[1]:5.2f}"
        )


def _stats(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[max(0, int(len(ordered) * 0.95) - 1)]


if __name__ == "__main__":
    main()
