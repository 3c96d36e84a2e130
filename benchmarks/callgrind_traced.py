"""Instructions per ``@traced`` call, counted by callgrind: deterministic, for comparing trees.

Timings on a shared two-core machine drift by up to two times; instruction
counts do not. This script runs one variant's loop under
``valgrind --tool=callgrind`` twice (``--small`` and ``--large`` calls) and
reports the difference per call, counting only the calling thread (the
exporter's thread is left out: it is not on the caller's path), with the hash
seed fixed and the cyclic collector off during the loop, as the median of
``--runs`` runs. Given several
source trees, it runs the same loop against each, so a change can be compared
with ``main`` exactly:

    git archive main | tar -x -C /tmp/main-tree
    python benchmarks/callgrind_traced.py --trees /tmp/main-tree . \\
        --variants sync-lenient async-lenient

The loop uses only what every tree since the ``_tracing`` rename has: the
runtime's ``build_tracer``, ``CURRENT_SPAN``, ``SpanState`` and ``traced``.

Variants: ``plain-sync``/``plain-async`` (undecorated), ``sync-*``/``async-*``
with ``lenient``, ``strict`` or ``nocheck`` (validation off): a traced
four-argument function or coroutine called inside an open span.
``root-lenient`` is ``sync-lenient`` called outside any span: each call the
root of an instance of its own. ``self-lenient`` is ``sync-lenient`` for a
module-level function whose first parameter is named ``self``: one that may
become a method, so ``@traced`` wraps it with wrapt (see
``prefactor._tracing.decorator``) where a plain function is a closure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

VARIANTS = [
    "plain-sync",
    "sync-nocheck",
    "sync-lenient",
    "sync-strict",
    "self-lenient",
    "root-lenient",
    "plain-async",
    "async-lenient",
    "async-strict",
]


def work(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


async def awork(model: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


def selfwork(self: str, prompt: str, temperature: float, max_tokens: int) -> str:
    return prompt


def run_loop(variant: str, calls: int) -> None:
    """Make ``calls`` calls of ``variant`` (the part callgrind measures)."""
    from prefactor import _runtime as runtime
    from prefactor._config import PrefactorCoreConfig, QueueConfig
    from prefactor._export.sinks.base import OK
    from prefactor._tracing.context import CURRENT_SPAN
    from prefactor._tracing.decorator import traced
    from prefactor._tracing.state import SpanState

    class Discard:
        async def export(self, batch: Sequence[object]) -> Any:
            return OK

        async def aclose(self) -> None:
            return None

    kind, _, mode = variant.partition("-")
    options = {"strict": {"strict": True}, "nocheck": {"validation": False}}.get(mode, {})
    config = PrefactorCoreConfig(
        sink=Discard(), queue_config=QueueConfig(max_queue_size=2_000_000), **options
    )
    tracer = runtime.build_tracer(config)
    state = SpanState("0" * 32, tracer.new_instance(agent_version={"name": "bench"}), "bench")
    is_async = "async" in variant
    fn: Any = awork if is_async else selfwork if kind == "self" else work
    if kind != "plain":
        fn = traced(fn)
    # The cyclic collector runs when allocations (of any thread) cross a threshold;
    # left on, where its passes fall would move the counts by several percent.
    gc.disable()
    token = CURRENT_SPAN.set(None if kind == "root" else state)
    if is_async:

        async def loop() -> None:
            for _ in range(calls):
                await fn("gpt-4o", "Summarise the report", 0.2, 256)

        asyncio.run(loop())
    else:
        for _ in range(calls):
            fn("gpt-4o", "Summarise the report", 0.2, 256)
    CURRENT_SPAN.reset(token)
    gc.enable()
    tracer.close(60)


def callgrind_total(tree: Path, args: Sequence[str], *, main_thread_only: bool = False) -> int:
    """Instructions callgrind counts for ``python args...``, importing ``tree`` first.

    The hash seed is fixed; the run happens in an empty folder, because a
    working directory holding a ``prefactor`` package would shadow
    ``PYTHONPATH``. ``main_thread_only`` counts the main thread alone, else
    every thread of the process.

    Raises:
        RuntimeError: the run failed (with what it printed).
    """
    with tempfile.TemporaryDirectory() as out:
        threads = ["--separate-threads=yes"] if main_thread_only else []
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                *threads,
                f"--callgrind-out-file={out}/cg.out",
                sys.executable,
                *args,
            ],
            env={**os.environ, "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"},
            cwd=out,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{args} with {tree} failed:\n{result.stdout}{result.stderr}")
        counted = Path(out, "cg.out-01" if main_thread_only else "cg.out").read_text()
        found = re.search(r"^(?:summary|totals): (\d+)", counted, re.M)
        assert found is not None, "no totals in callgrind's output"
        return int(found.group(1))


def per_call(count: Callable[[int, int], int], small: int, large: int, runs: int) -> float:
    """Median over ``runs`` of ``(count(large, run) - count(small, run)) / (large - small)``.

    The two runs of a pair go side by side, one per core: instruction counts
    do not depend on what else the machine does.
    """
    counts: list[float] = []
    for run in range(runs):
        with ThreadPoolExecutor(2) as pool:
            shorter, longer = pool.map(count, (small, large), (run, run))
        counts.append((longer - shorter) / (large - small))
    return statistics.median(counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Instructions per @traced call (callgrind).")
    parser.add_argument("--trees", nargs="+", type=Path, default=[Path(".")])
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=6_000)
    parser.add_argument("--runs", type=int, default=3, help="median of this many")
    parser.add_argument("--loop", nargs=2, metavar=("VARIANT", "CALLS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop:
        run_loop(args.loop[0], int(args.loop[1]))
        return
    trees = [tree.resolve() for tree in args.trees]
    calls = args.large - args.small
    print(f"instructions per call, calling thread only ({calls:,} calls, median of {args.runs})")
    print(f"{'variant':<15}" + "".join(f"{tree.name[-14:]:>16}" for tree in trees))

    def instructions(tree: Path, variant: str) -> float:
        def count(calls: int, _run: int) -> int:
            loop = [__file__, "--loop", variant, str(calls)]
            return callgrind_total(tree, loop, main_thread_only=True)

        return per_call(count, args.small, args.large, args.runs)

    for variant in args.variants:
        counts = [instructions(tree, variant) for tree in trees]
        ratios = "".join(f"  x{c / counts[0]:.3f}" for c in counts[1:])
        print(f"{variant:<15}" + "".join(f"{c:>16,.0f}" for c in counts) + ratios)


if __name__ == "__main__":
    main()
