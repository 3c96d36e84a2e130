"""The benchmark scripts still run and report what they claim to measure.

Run small, as real processes, and checked for their rows only: timing
figures are never asserted here (the machine is shared and noisy), but a
script that breaks, drops its verification or stops printing a target must
fail the suite rather than rot until someone needs the figures.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(script: str, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


@pytest.mark.timeout(300)
def test_bench_traced_reports_every_variant_and_the_targets() -> None:
    out = _run("bench_traced.py", "--quick")
    variants = ("plain", "no-check", "lenient", "strict", "lenient+io", "otel")
    for variant in (*variants, "async-plain", "async-lenient", "async-strict"):
        assert re.search(rf"^{re.escape(variant)}\s+[\d,]+\s", out, re.M), out
    for mode in ("lenient", "strict"):
        ratios = rf"^nested async / nested sync \({mode}\): [\d.]+x caller CPU, [\d.]+x call$"
        assert re.search(ratios, out, re.M), out
    assert "targets: no-check overhead <= 5 µs, strict <= 10 µs, otel/no-check >= 5," in out
    assert "dropped: 0" in out


@pytest.mark.timeout(300)
def test_bench_pipeline_delivers_and_verifies_every_span() -> None:
    out = _run(
        "bench_pipeline.py",
        *("--spans", "2000", "--memory-spans", "2000"),
        *("--caller-samples", "4", "--submits", "2000"),
    )
    assert re.search(r"^\(a\) caller cost of async with span\(\)\s+[\d,]+ ns", out, re.M), out
    assert re.search(r"^\(b\) spans stored, verified via the API\s+2,000\s+== 2,000", out, re.M)
    assert re.search(r"^\(c\) HTTP requests per span\s+0\.\d+", out, re.M), out
    assert "(d) RSS growth over 2,000 spans" in out


@pytest.mark.timeout(300)
def test_bench_server_bulk_ingests_over_http_and_in_process() -> None:
    out = _run("bench_server_bulk.py", "--spans", "2000", "--batch", "500", "--in-process")
    assert re.search(r"prefactor serve over loopback HTTP: [\d,]+ spans/s ingested", out), out
    assert re.search(r"Store\.bulk in process \(file, WAL\):\s+[\d,]+ spans/s ingested", out), out
