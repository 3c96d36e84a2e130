"""The embedded store's costs against another commit's, in one run: import and the write path.

Checks out ``--against`` (default ``main``) into a temporary directory and
runs the same measurements on both source trees, in fresh interpreters,
alternating between them so that both see the same machine:

* ``import prefactor``: the wall time of the import, in a new interpreter;
* the embedded write path: ``Store.bulk`` of coalesced spans on a new SQLite
  file (what ``LocalSink`` does with each batch), single span creates and
  finishes, each its own transaction, registers of instances that carry
  the same schema version (what each ``@agent`` run begins with), and root
  calls (a ``@traced`` call outside any agent: register, start, one finished
  span, finish), ``--batch`` items per ``Store.bulk``, as the exporter sends them.

    python benchmarks/bench_embedded_store.py [--against main] [--rounds 7] [--callgrind]

Prints the median of each, per tree, and the ratio of this tree to the other.
With ``--callgrind`` it counts instructions under valgrind instead, which a
busy machine does not disturb: the import, and the write path as the
difference between a run of twice the work and a run of the work (so that
neither the import nor opening the file counts).

Both trees import from compiled bytecode, as an installed package does: the
script lets Python write ``__pycache__`` and imports each tree once first.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter with the tree under test first on sys.path.
IMPORT = """
import time
started = time.perf_counter()
import prefactor
print(time.perf_counter() - started)
"""
WRITES = """
import inspect, json, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from bench_server_bulk import SCHEMA_VERSION, span_items
from prefactor._ids import generate_pfid
from prefactor.server.store import Store
spans, batch, singles = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
# As LocalSink calls it: for outcomes only, where the tree's store can answer so.
minimal = {"details": False} if "details" in inspect.signature(Store.bulk).parameters else {}
with tempfile.TemporaryDirectory() as tmp:
    store = Store(Path(tmp) / "traces.db")
    instance_id = store.register_instance({"agent_schema_version": SCHEMA_VERSION})["details"]["id"]
    items = span_items(instance_id, spans)
    started = time.perf_counter()
    for i in range(0, spans, batch):
        store.bulk({"items": items[i : i + batch]}, **minimal)
    bulk = spans / (time.perf_counter() - started)
    started = time.perf_counter()
    for item in span_items(instance_id, singles):
        details = {**item["details"], "status": "active", "result_payload": None,
                   "finished_at": None}
        span_id = store.create_span({"details": details})["details"]["id"]
        store.finish_span(span_id, {"status": "complete", "result_payload": {"text": "t"}})
    single = singles / (time.perf_counter() - started)
    # What each @agent run starts with: a register carrying the agent's schema version.
    started = time.perf_counter()
    for n in range(singles):
        register = {"_type": "agent_instances/register", "idempotency_key": f"register-{n:06d}",
                    "agent_schema_version": SCHEMA_VERSION}
        store.bulk({"items": [register]}, **minimal)
    registers = singles / (time.perf_counter() - started)
    # Root calls: each its own instance, four items, as the exporter sends them.
    roots = []
    for _ in range(singles):
        iid = generate_pfid()
        (span,) = span_items(iid, 1)
        roots += [
            {"_type": "agent_instances/register", "idempotency_key": f"{iid}-register",
             "id": iid, "agent_schema_version": SCHEMA_VERSION},
            {"_type": "agent_instances/start", "idempotency_key": f"{iid}-start",
             "agent_instance_id": iid, "timestamp": "2026-02-09T00:00:00.123456+00:00"},
            span,
            {"_type": "agent_instances/finish", "idempotency_key": f"{iid}-finish",
             "agent_instance_id": iid, "status": "complete",
             "timestamp": "2026-02-09T00:02:00.123456+00:00"},
        ]
    started = time.perf_counter()
    for i in range(0, len(roots), batch):
        store.bulk({"items": roots[i : i + batch]}, **minimal)
    root_calls = singles / (time.perf_counter() - started)
    store.close()
print(json.dumps({"bulk": bulk, "single": single, "register": registers, "roots": root_calls}))
"""


def _env(tree: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFACTOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = str(tree)
    env["PYTHONHASHSEED"] = "0"
    return env


def run(tree: Path, code: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tempfile.gettempdir(),
        env=_env(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def instructions(tree: Path, code: str, *args: str) -> int:
    """Instructions the run executes, counted by valgrind's callgrind."""
    valgrind = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null"]
    result = subprocess.run(
        [*valgrind, sys.executable, "-c", code, *args],
        cwd=tempfile.gettempdir(),
        env=_env(tree),
        capture_output=True,
        text=True,
        check=True,
    )
    (count,) = re.findall(r"Collected : (\d+)", result.stderr)
    return int(count)


def by_callgrind(trees: dict[str, Path], spans: int, batch: int, singles: int) -> None:
    bench = str(ROOT / "benchmarks")
    counts: dict[str, dict[str, int]] = {}
    for name, tree in trees.items():
        once = instructions(tree, WRITES, bench, str(spans), str(batch), str(singles))
        twice = instructions(tree, WRITES, bench, str(2 * spans), str(batch), str(2 * singles))
        counts[name] = {"import": instructions(tree, IMPORT), "writes": twice - once}
    mine, theirs = counts.values()
    other = list(trees)[1]
    print(f"instructions (callgrind); this tree vs {other}")
    rows = [
        ("import prefactor", "import"),
        (f"{spans:,} bulk spans; {singles:,} singles, registers, roots", "writes"),
    ]
    for label, key in rows:
        print(
            f"{label:42} {mine[key]:>14,} {theirs[key]:>14,}   ratio {mine[key] / theirs[key]:.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--against", default="main", help="the commit to compare with (main)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--spans", type=int, default=5_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--singles", type=int, default=500, help="single spans, registers and root calls (500)"
    )
    parser.add_argument("--callgrind", action="store_true", help="count instructions instead")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        other = Path(tmp) / "other"
        other.mkdir()
        archive = subprocess.run(
            ["git", "archive", args.against], cwd=ROOT, capture_output=True, check=True
        )
        subprocess.run(["tar", "-x", "-C", str(other)], input=archive.stdout, check=True)
        trees = {"this tree": ROOT, args.against: other}
        bench = str(ROOT / "benchmarks")
        for tree in trees.values():
            # Compiles and caches the bytecode of every module the runs import, the ones
            # imported on first use included (else a tree's first run compiles them, and
            # with --callgrind that cost would count against its writes).
            run(tree, IMPORT)
            run(tree, WRITES, bench, "20", "10", "2")
        if args.callgrind:
            by_callgrind(trees, args.spans, args.batch, args.singles)
            return
        found: dict[str, dict[str, list[float]]] = {
            name: {"import_ms": [], "bulk": [], "single": [], "register": [], "roots": []}
            for name in trees
        }
        for _ in range(args.rounds):
            for name, tree in trees.items():
                found[name]["import_ms"].append(float(run(tree, IMPORT)) * 1000)
                rates = json.loads(
                    run(tree, WRITES, bench, str(args.spans), str(args.batch), str(args.singles))
                )
                found[name]["bulk"].append(rates["bulk"])
                found[name]["single"].append(rates["single"])
                found[name]["register"].append(rates["register"])
                found[name]["roots"].append(rates["roots"])
    medians = {name: {k: statistics.median(v) for k, v in m.items()} for name, m in found.items()}
    mine, theirs = medians["this tree"], medians[args.against]
    print(f"medians of {args.rounds} alternating rounds; this tree vs {args.against}")
    rows = [
        ("import prefactor (ms)", "import_ms"),
        ("Store.bulk on a file (spans/s)", "bulk"),
        ("create + finish, one span each (spans/s)", "single"),
        ("register with a schema version (instances/s)", "register"),
        ("root calls in Store.bulk (calls/s)", "roots"),
    ]
    for label, key in rows:
        print(
            f"{label:42} {mine[key]:>10,.1f} {theirs[key]:>10,.1f}"
            f"   ratio {mine[key] / theirs[key]:.3f}"
        )


if __name__ == "__main__":
    main()
