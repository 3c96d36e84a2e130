"""Nothing observed is lost on a bad network: a failing workload through a faulty proxy.

The SDK sends to ``prefactor serve`` (a real process on a loopback port, a
real SQLite file) through :mod:`fault_proxy`, which fails a fifth of the
requests in every way a network and a busy server fail, and the server is
restarted halfway. Some tools raise, some runs raise. Afterwards every span
the workload made is in the store exactly once, under the right parent, with
the right status (failed ones with their error), and every instance is
finished.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_proxy import running_proxy

import prefactor
from prefactor import QueueConfig

# A real server process and a proxy thread: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

TOKEN = "fault-injection-token-5b1e"
REPO = Path(__file__).resolve().parents[2]
RUNS = 160
SEED = 1409


class ServerProcess:
    """``prefactor serve`` on a fixed loopback port, restartable over the same file."""

    def __init__(self, db: Path) -> None:
        self.db = db
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO), "PREFACTOR_API_TOKEN": TOKEN}
        command = [sys.executable, "-m", "prefactor", "serve", "--port", str(self.port)]
        command += ["--db", str(self.db)]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        assert match, f"prefactor serve said {line!r}"
        self.port = int(match.group(1))

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self.proc = None


@contextmanager
def served(db: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(db)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class Made:
    """A span as the workload saw it being made."""

    instance_id: str
    parent_id: str | None
    status: str
    span_type: str


class ToolFailed(Exception):
    """What the workload's failing tools raise."""


class RunFailed(Exception):
    """What the workload's failing runs raise."""


class Workload:
    """Agent runs whose tools sometimes raise, and which sometimes raise themselves."""

    def __init__(self) -> None:
        self.spans: dict[str, Made] = {}
        self.instances: dict[str, str] = {}

        # A name of its own: another test module has a different tool:lookup.
        @prefactor.tool(name="fault_lookup")
        def lookup(query: str, fail: bool) -> str:
            self._note("complete" if not fail else "failed")
            if fail:
                raise ToolFailed(f"no result for {query!r}")
            return f"found {query}"

        @prefactor.tool
        def summarise(texts: list[str], fail: bool) -> dict[str, int]:
            self._note("failed" if fail else "complete")
            if fail:
                raise ToolFailed("summariser unavailable")
            return {"chars": sum(len(t) for t in texts)}

        @prefactor.agent(agent_id="fault-agent", version="1")
        def answer(question: str, plan: list[bool], fail_run: bool) -> str:
            me = prefactor.current_span()
            assert me is not None
            self.instances[me.instance.id] = "failed" if fail_run else "complete"
            self._note("failed" if fail_run else "complete")
            found = []
            for i, fail in enumerate(plan):
                try:
                    found.append(lookup(f"{question}-{i}", fail))
                except ToolFailed:
                    pass
            try:
                summarise(found, len(found) % 7 == 3)
            except ToolFailed:
                pass
            if fail_run:
                raise RunFailed(f"run for {question!r} gave up")
            return f"{len(found)} found"

        self.answer = answer

    def _note(self, status: str) -> None:
        span = prefactor.current_span()
        assert span is not None
        self.spans[span.id] = Made(span.instance.id, span.parent_id, status, span.span_type)

    def run(self, n: int, seed: int) -> None:
        rng = random.Random(seed)
        for i in range(n):
            plan = [rng.random() < 1 / 14 for _ in range(rng.randint(2, 8))]
            try:
                self.answer(f"q{i}", plan, rng.random() < 0.1)
            except RunFailed:
                pass


def stored(db: Path) -> tuple[dict[str, tuple[str, str | None, str, str | None]], dict[str, str]]:
    conn = sqlite3.connect(db)
    try:
        spans = {
            row[0]: row[1:]
            for row in conn.execute(
                "SELECT id, agent_instance_id, parent_span_id, status, result_payload FROM spans"
            )
        }
        instances = dict(conn.execute("SELECT id, status FROM instances").fetchall())
    finally:
        conn.close()
    return spans, instances


@pytest.fixture
def isolated_tracer() -> Iterator[None]:
    yield
    prefactor.shutdown(5)


def test_every_span_of_a_failing_workload_survives_faults_and_a_restart(
    tmp_path: Path, isolated_tracer: None
) -> None:
    db = tmp_path / "server.db"
    workload = Workload()
    with served(db) as server, running_proxy(server.port, fault_rate=0.2, seed=SEED) as proxy:
        prefactor.configure(
            api_url=f"http://127.0.0.1:{proxy.port}",
            api_token=TOKEN,
            queue=QueueConfig(
                batch_size=40,
                flush_interval=0.05,
                max_retries=40,
                retry_delay_base=0.02,
                retry_delay_max=0.3,
            ),
        )
        workload.run(RUNS // 2, SEED)
        prefactor.flush(30)
        server.stop()  # a restart while the second half is on its way
        workload.run(RUNS // 2, SEED + 1)
        server.start()
        assert prefactor.flush(60), prefactor.stats()
        stats = prefactor.stats()
        faults = dict(proxy.counts)
    spans, instances = stored(db)

    made = workload.spans
    missing = made.keys() - spans.keys()
    extra = spans.keys() - made.keys()
    assert not missing and not extra, (len(made), len(spans), len(missing), len(extra), stats)
    for span_id, expected in made.items():
        instance_id, parent_id, status, result = spans[span_id]
        assert (instance_id, parent_id, status) == (
            expected.instance_id,
            expected.parent_id,
            expected.status,
        ), span_id
        if status == "failed":
            assert result is not None and '"error"' in result, result
    assert instances == workload.instances
    assert stats["dropped"] == {} or sum(stats["dropped"].values()) == 0, stats
    assert stats["rejected"] == 0, stats
    # The run exercised every kind of fault, and the restart.
    assert all(faults.get(kind, 0) > 0 for kind in ("500", "429", "reset_before", "reset_after"))
    assert faults.get("upstream_down", 0) > 0, faults
