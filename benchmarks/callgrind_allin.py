"""A span's whole cost in instructions, every thread of the process, counted by callgrind.

``bench_allin.py`` measures CPU seconds, and on a shared two-core machine its
figures drift with the load (OpenTelemetry's own per-span figure moves by up
to two times between runs). Instruction counts do not: this script runs
``bench_allin.py``'s variants under ``valgrind --tool=callgrind``, counting
every thread of the process together (the caller and the exporter), twice:
``--small`` and ``--large`` calls after the same warm-up. The difference per
call is what one more span costs; start-up, imports, warm-up and shut-down
cancel out. ``prefactor serve`` and the OTLP receiver run outside valgrind,
so their work is not counted, as in ``bench_allin.py``. Every run is verified
afterwards, outside valgrind, against what reached the store or the receiver.

Instructions are not seconds: interpreted Python and C code (orjson,
OpenTelemetry's protobuf encoder, SQLite) run at different rates, so a ratio
of instructions approximates the ratio of CPU time rather than measuring it.
What it gives exactly is the same count for the same code: use it to compare
source trees (``--trees``, each imported through ``PYTHONPATH``), and
``bench_allin.py`` for the figures in seconds.

    git archive main | tar -x -C /tmp/main-tree
    python benchmarks/callgrind_allin.py --trees /tmp/main-tree . --variants nested-http

Variants: ``{nested,root}-{http,embedded,inline,otel}`` (see ``bench_allin.py``).
Valgrind follows no child process: the embedded store's writer process is not
counted, as ``prefactor serve`` is not; ``inline`` counts the store's work too.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import bench_allin  # beside this script: its folder is the first entry of sys.path
from callgrind_traced import callgrind_total, per_call

VARIANTS = [
    f"{shape}-{backend}" for shape in bench_allin.SHAPES for backend in bench_allin.BACKENDS
]


def run_child(variant: str, calls: int, where: dict[str, str]) -> None:
    """The measured process: warm up, make ``calls`` calls, flush, shut down (no checks here)."""
    shape, backend = variant.split("-")
    run, flush, close = bench_allin.build(backend, shape, where)
    run(bench_allin.WARM_UP)
    flush()
    run(calls)
    flush()
    lost = close()
    if lost:
        raise SystemExit(f"{variant}: {lost} records dropped")


def _instructions(tree: Path, variant: str, calls: int, where: dict[str, str], tag: str) -> int:
    """Instructions of every thread of one run of ``variant``, verified against its backend."""
    shape, backend = variant.split("-")
    where = {**where, "agent_id": f"cg-{variant}-{tag}", "queue": str(2 * calls + 4096)}
    where["db"] = str(Path(where["tmp"], f"embedded-{variant}-{tag}.db"))
    child = [str(Path(__file__).resolve()), "--child", variant, str(calls), json.dumps(where)]
    total = callgrind_total(tree, child)
    arrived = bench_allin.verify(backend, shape, calls + bench_allin.WARM_UP, 2, where)
    if arrived["stored"] != arrived["expected"]:
        raise RuntimeError(f"{variant} in {tree} lost spans: {arrived}")
    return total


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--small", type=int, default=500, help="calls of the shorter run")
    parser.add_argument("--large", type=int, default=2_500, help="calls of the longer run")
    parser.add_argument("--runs", type=int, default=1, help="median of this many pairs")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        variant, calls, where = args.child
        run_child(variant, int(calls), json.loads(where))
        return
    if args.large <= args.small:
        parser.error("--large must be more calls than --small")
    trees = [tree.resolve() for tree in args.trees]
    calls = args.large - args.small
    with tempfile.TemporaryDirectory() as tmp, bench_allin.helpers(Path(tmp)) as helpers:
        where = {**helpers, "tmp": tmp}

        def instructions(tree: Path, variant: str) -> float:
            def count(size: int, run: int) -> int:
                tag = f"{trees.index(tree)}-{run}-{size}"
                return _instructions(tree, variant, size, where, tag)

            return per_call(count, args.small, args.large, args.runs)

        table = {(tree, v): instructions(tree, v) for tree in trees for v in args.variants}
    print(
        f"instructions per call, every thread of the process ({calls:,} calls:"
        f" {args.large:,} less {args.small:,}; median of {args.runs})"
    )
    print(f"{'variant':<17}" + "".join(f"{tree.name[-16:]:>18}" for tree in trees))
    for variant in args.variants:
        counts = [table[tree, variant] for tree in trees]
        ratios = "".join(f"  x{c / counts[0]:.3f}" for c in counts[1:])
        print(f"{variant:<17}" + "".join(f"{c:>18,.0f}" for c in counts) + ratios)
    for shape in bench_allin.SHAPES:
        if f"{shape}-otel" not in args.variants:
            continue
        for tree in trees:
            otel = table[tree, f"{shape}-otel"]
            for backend in ("http", "embedded", "inline"):
                if f"{shape}-{backend}" in args.variants:
                    ours = table[tree, f"{shape}-{backend}"]
                    print(f"{shape}-{backend} / {shape}-otel ({tree.name}): {ours / otel:.2f}")


if __name__ == "__main__":
    main()
