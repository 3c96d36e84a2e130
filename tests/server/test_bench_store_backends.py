"""``benchmarks/bench_store_backends.py`` still runs, on the test PostgreSQL, and reports its rows.

Run small and checked for its rows only (timings are never asserted): a
script that breaks must fail the suite rather than rot.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from serve_helpers import ROOT

pytestmark = pytest.mark.slow


@pytest.mark.timeout(300)
def test_bench_store_backends_ingests_on_sqlite_and_on_postgresql_with_one_and_two_servers(
    pg_url: str,
) -> None:
    script = str(ROOT / "benchmarks" / "bench_store_backends.py")
    small = ["--spans", "400", "--batch", "100", "--clients", "2"]
    result = subprocess.run(
        [sys.executable, script, *small, "--postgres", pg_url, "--drivers"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    for row in ("sqlite, 1 server", "postgresql, 1 server", "postgresql, 2 servers"):
        assert re.search(rf"^{row}:\s+[\d,]+ spans/s ingested$", out, re.M), out
    assert re.search(r"^postgresql 2 servers / 1 server: \d+\.\d+$", out, re.M), out
    assert re.search(r"^driver, psycopg 3 COPY: [\d,]+ span rows/s", out, re.M), out
