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

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

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
    assert re.search(r"^\(b\) CPU per span: prefactor serve\s+[\d.]+ µs", out, re.M), out
    assert re.search(r"^\(b\) OpenTelemetry: spans received\s+2,000\s+== 2,000", out, re.M), out
    assert re.search(r"^\(b\) ours / OpenTelemetry, spans/s\s+\d+\.\d\dx", out, re.M), out
    assert re.search(r"^\(c\) HTTP requests per span\s+0\.\d+", out, re.M), out
    assert "(d) RSS growth over 2,000 spans" in out


@pytest.mark.timeout(300)
def test_bench_server_bulk_ingests_over_http_and_in_process() -> None:
    out = _run("bench_server_bulk.py", "--spans", "2000", "--batch", "500", "--in-process")
    assert re.search(r"prefactor serve over loopback HTTP: [\d,]+ spans/s ingested", out), out
    assert re.search(r"Store\.bulk in process \(file, WAL\):\s+[\d,]+ spans/s ingested", out), out


@pytest.mark.timeout(300)
def test_bench_embedded_store_compares_this_tree_with_a_commit() -> None:
    out = _run(
        "bench_embedded_store.py",
        *("--against", "HEAD", "--rounds", "1", "--spans", "500", "--batch", "250"),
        *("--singles", "20"),
    )
    assert "medians of 1 alternating rounds; this tree vs HEAD" in out
    rows = ("import prefactor (ms)", "Store.bulk on a file", "create + finish, one span")
    for row in (*rows, "register with a schema version", "root calls in Store.bulk"):
        assert re.search(rf"^{re.escape(row)}.*ratio \d+\.\d+$", out, re.M), out


@pytest.mark.timeout(300)
def test_bench_otlp_ingest_stores_every_span_it_sends() -> None:
    out = _run("bench_otlp_ingest.py", "--traces", "60", "--batch", "64", "--in-process")
    for line in ("protobuf:", "in process:"):
        assert re.search(rf"{re.escape(line)}\s+[\d,]+ spans/s ingested", out), out


@pytest.mark.timeout(300)
def test_bench_otlp_export_compares_both_encoders() -> None:
    out = _run("bench_otlp_export.py", "--spans", "400", "--batch", "100")
    for name in ("encode proto", "encode sdk+exporter", "send proto+httpx", "send sdk+exporter"):
        assert re.search(rf"^{re.escape(name)}\s+[\d.]+ µs/span", out, re.M), out
    assert re.search(r"encode x[\d.]+, encode\+send x[\d.]+", out), out


@pytest.mark.timeout(300)
def test_bench_viewer_times_every_page_on_both_stores() -> None:
    out = _run(
        "bench_viewer.py", "--runs", "120", "--small", "60", "--requests", "2", "--deep", "2"
    )
    assert "filled 120 runs (840 bulk items)" in out
    for page in (
        "runs page, newest 50",
        "runs page, status=failed",
        "a run's page",
        "schemas page",
    ):
        assert re.search(rf"^{re.escape(page)}\s+[\d.]+ \(\s*[\d.]+\) cpu\s+[\d.]+", out, re.M), out


@pytest.mark.timeout(300)
def test_bench_allin_verifies_every_variant_against_opentelemetry() -> None:
    out = _run("bench_allin.py", "--spans", "300", "--roots", "40", "--rounds", "1")
    for shape, spans in (("nested", "502"), ("root", "480")):
        for backend in ("http", "embedded", "inline"):
            # The embedded store's row adds its writer process's CPU, and the ratio with it.
            numbers = 6 if backend == "embedded" else 4
            row = rf"^{shape} {backend}(\s+[\d.]+){{{numbers}}}\s+{spans} verified$"
            assert re.search(row, out, re.M), out
        assert re.search(rf"^{shape} otel\s+[\d.]+\s+1\.00\s+[\d.]+\s+1\.00\s+", out, re.M), out
        for backend in ("http", "embedded", "inline", "otel"):
            assert re.search(rf"^gc {shape} {backend}(\s+[\d.]+){{3}}$", out, re.M), out
    assert "targets: nested all-in ours/otel <= 0.33 (http, embedded);" in out


@pytest.mark.timeout(300)
def test_bench_capture_times_every_case_against_a_baseline() -> None:
    baseline = ROOT / "prefactor" / "_tracing" / "capture.py"
    out = _run("bench_capture.py", "--quick", "--baseline", str(baseline))
    assert re.search(r"^case\s+this\s+baseline\s+this/baseline$", out, re.M), out
    cases = ("params", "flat dict", "result str", "messages", "list 1M", "set 1M", "keys 1M")
    for case in cases:
        row = rf"^{case}\s+[\d,]+ ns\s+[\d,]+ ns\s+\d+\.\d\d$"
        assert re.search(row, out, re.M), out


@pytest.mark.timeout(300)
def test_callgrind_traced_counts_the_calling_threads_instructions_per_call() -> None:
    sizes = ("--small", "20", "--large", "60", "--runs", "1")
    out = _run("callgrind_traced.py", "--variants", "sync-lenient", *sizes)
    assert "instructions per call, calling thread only (40 calls, median of 1)" in out
    found = re.search(r"^sync-lenient\s+([\d,]+)$", out, re.M)
    assert found, out
    # A traced call runs thousands of instructions; a zero or a negative difference would
    # mean the two runs were not the lengths the script thinks they were.
    assert int(found.group(1).replace(",", "")) > 2_000, out


@pytest.mark.timeout(300)
def test_callgrind_allin_counts_verified_runs_of_each_backend_against_opentelemetry() -> None:
    variants = ("nested-http", "root-embedded", "nested-otel")
    out = _run("callgrind_allin.py", "--variants", *variants, "--small", "10", "--large", "30")
    assert "instructions per call, every thread of the process (20 calls: 30 less 10;" in out
    counts = {}
    for variant in variants:
        found = re.search(rf"^{variant}\s+([\d,]+)$", out, re.M)
        assert found, out
        counts[variant] = int(found.group(1).replace(",", ""))
    # A span costs thousands of instructions in every backend: a zero or a negative
    # difference would mean the two runs were not what the script thinks they were.
    assert all(count > 10_000 for count in counts.values()), out
    found = re.search(r"^nested-http / nested-otel \(\S+\): (\d+\.\d\d)$", out, re.M)
    assert found, out
    assert float(found.group(1)) == pytest.approx(
        counts["nested-http"] / counts["nested-otel"], abs=0.006
    )


@pytest.mark.timeout(300)
def test_bench_import_times_prefactor_beside_opentelemetry_and_another_tree() -> None:
    out = _run("bench_import.py", "--runs", "1", "--against", str(ROOT))
    assert "medians of 1 fresh interpreters each, bytecode cached, rounds alternating" in out
    mine = ("import prefactor", "import prefactor + one @traced function")
    rows = (*mine, "from prefactor import agent, tool, traced", "OpenTelemetry API + SDK")
    for row in (*rows, *(f"{row} ({ROOT})" for row in mine)):
        assert re.search(rf"^{re.escape(row)}.*\s[\d.]+\s+[\d.]+$", out, re.M), out
    for row in rows[:3]:
        assert re.search(rf"^{re.escape(row)} / OpenTelemetry API.*: \d+\.\d{{3}}$", out, re.M), out
    for row in mine:
        ratio = rf"^{re.escape(row)}, this tree / {re.escape(str(ROOT))}: \d+\.\d{{3}}$"
        assert re.search(ratio, out, re.M), out
    assert "target: import prefactor <= 150 ms:" in out
