"""What capturing costs: the hot paths of ``Capturer`` and large collections.

Run: ``python benchmarks/bench_capture.py`` (``--quick`` for a short run).

With ``--baseline PATH`` (another version of ``prefactor/_tracing/capture.py``, e.g.
``git show main:prefactor/_tracing/capture.py > /tmp/capture_main.py``; it must import
nothing from ``prefactor``, as the version on ``main`` before the capture contract), each
case runs on both, interleaved round by round in one process, and the ratio
``this/baseline`` is printed: the figure to trust on a noisy machine.

Cases:
  params        ``capture_params`` of a four-argument call (the strict hot path)
  flat dict     ``capture_mapping`` of a flat five-key dict (``_flat_dict``)
  result str    ``capture_result`` of a short string
  messages      ``capture_mapping`` of a chat request (nested lists and dicts)
  list 1M       ``capture`` of a list of 1,000,000 ints
  set 1M        ``capture`` of a set of 1,000,000 ints
  keys 1M       ``capture`` of the ``keys()`` of a dict of 1,000,000 entries
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from prefactor._tracing import capture as current

NAMES = ("model", "prompt", "temperature", "max_tokens")
ARGS = ("gpt-4o", "Summarise the quarterly report", 0.2, 256)
FLAT = {"model": "gpt-4o", "prompt": "Summarise the report", "temperature": 0.2, "n": 1, "k": None}
MESSAGES = {
    "model": "gpt-4o",
    "messages": [
        {"role": "system", "content": "You are a careful analyst."},
        {"role": "user", "content": "Summarise the quarterly report in three bullets."},
        {"role": "assistant", "content": "1. Revenue grew. 2. Costs fell. 3. Margins rose."},
    ],
    "tools": [{"name": "search", "parameters": {"query": "string", "limit": 5}}],
    "temperature": 0.2,
}
MILLION = 1_000_000


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("capture_baseline", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cases(module: ModuleType) -> dict[str, tuple[Callable[[], Any], int]]:
    """Each case: a call and how many calls one sample makes."""
    capturer = module.Capturer()
    big_list = list(range(MILLION))
    big_set = set(big_list)
    big_keys = dict.fromkeys(big_list).keys()
    return {
        "params": (lambda: capturer.capture_params(NAMES, ARGS), 2_000),
        "flat dict": (lambda: capturer.capture_mapping(FLAT), 2_000),
        "result str": (lambda: capturer.capture_result("A short answer."), 2_000),
        "messages": (lambda: capturer.capture_mapping(MESSAGES), 500),
        "list 1M": (lambda: capturer.capture(big_list), 5),
        "set 1M": (lambda: capturer.capture(big_set), 2),
        "keys 1M": (lambda: capturer.capture(big_keys), 2),
    }


def _sample(call: Callable[[], Any], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        call()
    return (time.perf_counter_ns() - start) / loops


def _format(ns: float) -> str:
    return f"{ns / 1e6:,.1f} ms" if ns >= 1e6 else f"{ns:,.0f} ns"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="What capturing costs.")
    parser.add_argument("--quick", action="store_true", help="fewer samples")
    parser.add_argument("--baseline", type=Path, help="another capture.py to compare with")
    args = parser.parse_args(argv)
    rounds = 5 if args.quick else 30

    versions = {"this": _cases(current)}
    if args.baseline is not None:
        versions["baseline"] = _cases(_load(args.baseline))
    samples: dict[tuple[str, str], list[float]] = {}
    for _ in range(rounds):  # interleaved: drift hits every version alike
        for case in versions["this"]:
            for version, cases in versions.items():
                call, loops = cases[case]
                samples.setdefault((version, case), []).append(_sample(call, loops))

    header = f"{'case':<12}{'this':>14}"
    if "baseline" in versions:
        header += f"{'baseline':>14}{'this/baseline':>16}"
    print(header)
    for case in versions["this"]:
        this = statistics.median(samples[("this", case)])
        line = f"{case:<12}{_format(this):>14}"
        if "baseline" in versions:
            base = statistics.median(samples[("baseline", case)])
            line += f"{_format(base):>14}{this / base:>16.2f}"
        print(line)


if __name__ == "__main__":
    main()
