"""What ``import prefactor`` costs, next to OpenTelemetry's tracing SDK, in one run.

Each figure is the median over ``--runs`` fresh interpreters of the time the
import statement takes inside the interpreter (wall and CPU; the interpreter's
own start-up is not counted), with every module already compiled to bytecode,
as an installed package is. The rounds alternate between the targets so that
all of them see the same machine:

* ``import prefactor`` (this tree);
* ``from prefactor import agent, tool, traced``: what a program that decorates
  its agent imports before the first decoration;
* ``import prefactor`` and decorating one typed function with ``@traced``: the
  first decoration imports what schema derivation and registration need;
* ``import opentelemetry.trace`` + ``opentelemetry.sdk.trace`` (+ the OTLP/HTTP
  span exporter when it is installed): what an OpenTelemetry-traced program
  imports;
* with ``--against DIR``: ``import prefactor`` alone and with one decoration
  from another source tree (a checkout of ``main``, say), and the ratios of
  this tree to it.

    python benchmarks/bench_import.py [--runs 15] [--against /work/main]

Bytecode goes to a temporary ``PYTHONPYCACHEPREFIX``, the same for every
target, so nothing is written into either tree.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_MS = 150

# Run in a fresh interpreter: times the statement in argv[1], prints wall and CPU ms.
TIMED = """
import json, sys, time
wall, cpu = time.perf_counter(), time.process_time()
exec(sys.argv[1])
print(json.dumps([(time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3]))
"""

OTLP_HTTP = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
IMPORT = "import prefactor"
DECORATORS = "from prefactor import agent, tool, traced"
DECORATED = "import prefactor + one @traced function"
DECORATE = """
import prefactor

@prefactor.traced
def add(a: int, b: int) -> int:
    return a + b
"""


def otel_statement() -> tuple[str, str]:
    """OpenTelemetry's imports for tracing, with the OTLP/HTTP exporter when installed."""
    modules = ["opentelemetry.trace", "opentelemetry.sdk.trace"]
    label = "OpenTelemetry API + SDK"
    try:
        found = importlib.util.find_spec(OTLP_HTTP) is not None
    except ModuleNotFoundError:
        found = False
    if found:
        modules.append(OTLP_HTTP)
        label += " + OTLP/HTTP exporter"
    return label, "import " + ", ".join(modules)


def measure(statement: str, tree: Path, cache: Path) -> tuple[float, float]:
    """Wall and CPU milliseconds of ``statement`` in a new interpreter importing ``tree``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PREFACTOR_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env["PYTHONPATH"] = str(tree)
    env["PYTHONPYCACHEPREFIX"] = str(cache)
    result = subprocess.run(
        [sys.executable, "-c", TIMED, statement],
        cwd=tempfile.gettempdir(),
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    wall, cpu = json.loads(result.stdout)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="fresh interpreters per target")
    parser.add_argument("--against", type=Path, help="another source tree to time, e.g. main's")
    args = parser.parse_args()
    otel_label, otel = otel_statement()
    targets: dict[str, tuple[str, Path]] = {
        IMPORT: (IMPORT, ROOT),
        DECORATORS: (DECORATORS, ROOT),
        DECORATED: (DECORATE, ROOT),
        otel_label: (otel, ROOT),
    }
    against = args.against.resolve() if args.against is not None else None
    if against is not None:
        targets[f"{IMPORT} ({against})"] = (IMPORT, against)
        targets[f"{DECORATED} ({against})"] = (DECORATE, against)
    found: dict[str, list[tuple[float, float]]] = {label: [] for label in targets}
    with tempfile.TemporaryDirectory() as cache:
        for statement, tree in targets.values():
            measure(statement, tree, Path(cache))  # compiles and caches the bytecode
        for _ in range(args.runs):
            for label, (statement, tree) in targets.items():
                found[label].append(measure(statement, tree, Path(cache)))
    wall = {label: statistics.median(w for w, _ in runs) for label, runs in found.items()}
    cpu = {label: statistics.median(c for _, c in runs) for label, runs in found.items()}
    print(f"medians of {args.runs} fresh interpreters each, bytecode cached, rounds alternating")
    print(f"{'':58} {'wall ms':>9} {'cpu ms':>9}")
    for label in targets:
        print(f"{label:58} {wall[label]:9.1f} {cpu[label]:9.1f}")
    for label in (IMPORT, DECORATORS, DECORATED):
        print(f"{label} / {otel_label}: {wall[label] / wall[otel_label]:.3f}")
    if against is not None:
        for label in (IMPORT, DECORATED):
            ratio = wall[label] / wall[f"{label} ({against})"]
            print(f"{label}, this tree / {against}: {ratio:.3f}")
    mine = wall[IMPORT]
    verdict = "met" if mine <= TARGET_MS else "NOT met"
    print(f"target: import prefactor <= {TARGET_MS} ms: {verdict}")


if __name__ == "__main__":
    main()
