"""The exporter across process boundaries: a forked child, and the interpreter's exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from export_helpers import fork, instance_opening, span_pair, stored_spans
from http_helpers import api_config, serve_process

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink, LocalSink
from prefactor._ids import generate_pfid
from prefactor._records import CreateSpan, Record
from prefactor.server.store import Store

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


def run_script(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
        check=False,
    )


def test_a_forked_child_exports_its_own_records_and_not_the_parents(tmp_path: Path) -> None:
    path = tmp_path / "traces.db"
    parent_instance, child_instance = generate_pfid(), generate_pfid()
    exporter = Exporter(LocalSink(path), QueueConfig(flush_interval=30))
    for record in instance_opening(parent_instance):
        exporter.submit(record)
    assert exporter.flush(10)  # the sink's store is now open in the parent
    parent_spans: list[Record] = [*span_pair(parent_instance)]
    for record in parent_spans:
        exporter.submit(record)  # still queued when the fork happens
    child_spans: list[Record] = [*instance_opening(child_instance), *span_pair(child_instance)]
    pid = fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for record in child_spans:
                exporter.submit(record)
            flushed = exporter.flush(20)
            if flushed and exporter.stats().submitted == len(child_spans):
                code = 0
            exporter.close()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert exporter.flush(10)
    assert exporter.stats().submitted == 4
    exporter.close()
    store = Store(path)
    parent_create, child_create = parent_spans[0], child_spans[2]
    assert isinstance(parent_create, CreateSpan)
    assert isinstance(child_create, CreateSpan)
    assert stored_spans(store, parent_instance) == {parent_create.span_id: (None, "complete")}
    assert stored_spans(store, child_instance) == {child_create.span_id: (None, "complete")}
    store.close()


def test_the_exit_hook_flushes_what_is_queued(tmp_path: Path) -> None:
    instance = generate_pfid()
    result = run_script(
        f"""
        import sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from export_helpers import instance_opening, span_pair
        from prefactor._config import QueueConfig
        from prefactor._export.exporter import Exporter
        from prefactor._export.sinks import HttpSink, LocalSink

        exporter = Exporter(LocalSink("traces.db"), QueueConfig(flush_interval=60))
        for record in [*instance_opening({instance!r}), *span_pair({instance!r})]:
            exporter.submit(record)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "lost" not in result.stderr
    store = Store(tmp_path / "traces.db")
    assert [status for _, status in stored_spans(store, instance).values()] == ["complete"]
    store.close()


def test_the_exit_hook_warns_how_many_records_were_lost(tmp_path: Path) -> None:
    result = run_script(
        f"""
        import asyncio, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from export_helpers import ScriptedSink, spans
        from prefactor._config import QueueConfig
        from prefactor._export.exporter import Exporter

        async def hang(batch):
            await asyncio.sleep(3600)

        exporter = Exporter(ScriptedSink(hang), QueueConfig(shutdown_timeout=0.2))
        for record in spans("0" * 32, 3):
            exporter.submit(record)
        """,
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert "prefactor: 6 telemetry records were lost (shutdown=6); 0 were sent" in result.stderr


def test_a_forked_child_sends_through_its_own_http_client(tmp_path: Path) -> None:
    db = tmp_path / "served.db"
    parent_instance, child_instance = generate_pfid(), generate_pfid()
    with serve_process(db) as url:
        exporter = Exporter(HttpSink(api_config().model_copy(update={"api_url": url})))
        for record in instance_opening(parent_instance):
            exporter.submit(record)
        assert exporter.flush(10)  # the parent's client now holds a pooled connection
        child_spans: list[Record] = [*instance_opening(child_instance), *span_pair(child_instance)]
        pid = fork()
        if pid == 0:  # pragma: no cover - runs in the child
            code = 1
            try:
                for record in child_spans:
                    exporter.submit(record)
                if exporter.flush(20) and exporter.stats().sent == len(child_spans):
                    code = 0
                exporter.close()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        parent_spans = span_pair(parent_instance)
        for record in parent_spans:
            exporter.submit(record)  # the parent's pooled connection still works
        assert exporter.flush(10)
        exporter.close()
    store = Store(db)
    child_create = child_spans[2]
    assert isinstance(child_create, CreateSpan)
    assert stored_spans(store, child_instance) == {child_create.span_id: (None, "complete")}
    assert stored_spans(store, parent_instance) == {parent_spans[0].span_id: (None, "complete")}
    store.close()


# --- SIGTERM and multiprocessing: real processes, read back from the store --------------------

AGENT_SCRIPT = """
import os, signal, sys, time
import prefactor
from prefactor import QueueConfig

QUEUE = QueueConfig(flush_interval=60)  # nothing is sent before the process ends
prefactor.configure(db_path="traces.db", queue=QUEUE, agent_id="ending")


@prefactor.tool
def step(i: int) -> int:
    return i * 2


@prefactor.agent(agent_id="ending")
def run(n: int) -> int:
    return sum(step(i) for i in range(n))
"""


def start_script(source: str, tmp_path: Path) -> subprocess.Popen[str]:
    """Run ``source`` in a new interpreter; its stdout is a pipe."""
    script = tmp_path / "script.py"
    script.write_text(AGENT_SCRIPT + textwrap.dedent(source))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, text=True, env=env, cwd=tmp_path
    )


def terminate_when_ready(proc: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGTERM once the script printed ``ready``; its exit status and later output."""
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    rest = proc.stdout.read()
    proc.stdout.close()
    return proc.wait(30), rest


def stored_runs(db: Path) -> list[tuple[str, int]]:
    """(status, span count) of every instance of the agent ``ending``."""
    store = Store(db)
    try:
        found = store.list_instances(agent_id="ending", page_size=100)["summaries"]
        return sorted((i["status"], len(stored_spans(store, i["id"]))) for i in found)
    finally:
        store.close()


def test_sigterm_delivers_the_queued_spans_and_ends_the_process_as_sigterm(tmp_path: Path) -> None:
    proc = start_script(
        """
        run(200)
        print("ready", flush=True)
        time.sleep(60)
        """,
        tmp_path,
    )
    status, _ = terminate_when_ready(proc)
    assert status == -signal.SIGTERM
    assert stored_runs(tmp_path / "traces.db") == [("complete", 201)]


def test_sigterm_chains_the_handler_the_user_installed_before(tmp_path: Path) -> None:
    proc = start_script(
        """
        def mine(signum, frame):
            print("user handler", flush=True)
            sys.exit(3)

        signal.signal(signal.SIGTERM, mine)
        run(50)
        print("ready", flush=True)
        time.sleep(60)
        """,
        tmp_path,
    )
    status, output = terminate_when_ready(proc)
    assert (status, output) == (3, "user handler\n")
    assert stored_runs(tmp_path / "traces.db") == [("complete", 51)]


def test_a_sigterm_handler_set_after_prefactor_started_is_never_replaced(tmp_path: Path) -> None:
    proc = start_script(
        """
        run(1)

        def later(signum, frame):
            print("later handler", flush=True)
            os._exit(5)

        signal.signal(signal.SIGTERM, later)
        prefactor.configure(db_path="traces.db", queue=QUEUE, agent_id="ending")
        run(1)  # a new exporter starts
        print("ready", flush=True)
        time.sleep(60)
        """,
        tmp_path,
    )
    assert terminate_when_ready(proc) == (5, "later handler\n")


def test_an_ignored_sigterm_stays_ignored(tmp_path: Path) -> None:
    result = run_script(
        AGENT_SCRIPT
        + textwrap.dedent(
            """
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            run(1)
            print(signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)
            """
        ),
        tmp_path,
    )
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr


@pytest.mark.parametrize(
    ("how", "workers"),
    [
        pytest.param("fork", 2, id="fork"),
        pytest.param("spawn", 1, id="spawn"),  # one: each spawned worker imports everything
        pytest.param("fork-pool", 2, id="fork-pool-terminated"),
    ],
)
def test_multiprocessing_workers_deliver_their_spans(
    tmp_path: Path, how: str, workers: int
) -> None:
    proc = start_script(
        f"""
        import multiprocessing

        def work(n):
            return run(n)

        if __name__ == "__main__":
            how = {how!r}
            ctx = multiprocessing.get_context(how.split("-")[0])
            if how.endswith("pool"):
                with ctx.Pool(2) as pool:  # leaving the block terminates the workers
                    pool.map(work, [100] * {workers})
            else:
                procs = [ctx.Process(target=work, args=(100,)) for _ in range({workers})]
                for proc in procs:
                    proc.start()
                for proc in procs:
                    proc.join()
                print([proc.exitcode for proc in procs], flush=True)
        """,
        tmp_path,
    )
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(60) == 0
    if how != "fork-pool":
        assert output == f"{[0] * workers}\n"
    assert stored_runs(tmp_path / "traces.db") == [("complete", 101)] * workers
