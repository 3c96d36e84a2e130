"""The embedded store's writer process: its failures cost retries, never spans.

Each test uses the real writer (a Python process of the test's interpreter)
and reads what reached the SQLite file back through the server's store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from export_helpers import fork, instance_closing, instance_opening, span_pair, stored_spans

from prefactor._config import QueueConfig
from prefactor._export.base import TransientExportError
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import LocalSink
from prefactor._ids import generate_pfid
from prefactor._records import CreateSpan, Record
from prefactor.server.store import Store

ROOT = Path(__file__).resolve().parents[2]


def _writer_pid(sink: LocalSink) -> int:
    writer = sink._writer
    assert writer is not None, "no writer process is running"
    return writer.process.pid


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has exited (a zombie nobody reaped counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        assert time.monotonic() < deadline, f"process {pid} is still running"
        time.sleep(0.02)


def _spans_of(path: Path, instance: str) -> dict[str, tuple[str | None, str]]:
    store = Store(path)
    try:
        return stored_spans(store, instance)
    finally:
        store.close()


def test_the_default_sink_writes_in_a_process_of_its_own(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "t.db")
    assert sink.writer == "process"
    exporter = Exporter(sink)
    instance = generate_pfid()
    create, finish = span_pair(instance)
    for record in [*instance_opening(instance), create, finish]:
        exporter.submit(record)
    assert exporter.flush(10)
    pid = _writer_pid(sink)
    assert pid != os.getpid()
    assert _spans_of(tmp_path / "t.db", instance) == {create.span_id: (None, "complete")}
    assert exporter.close()
    _wait_gone(pid)  # closing the sink ends its writer


def test_a_killed_writer_costs_a_retry_and_no_span(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "t.db")
    exporter = Exporter(sink, QueueConfig(retry_delay_base=0.01, retry_delay_max=0.05))
    instance = generate_pfid()
    for record in instance_opening(instance):
        exporter.submit(record)
    assert exporter.flush(10)
    first = _writer_pid(sink)
    os.kill(first, signal.SIGKILL)
    _wait_gone(first)
    create, finish = span_pair(instance)
    for record in [create, finish, instance_closing(instance)]:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, stats.dropped_total, stats.rejected) == (5, 0, 0)
    assert stats.retried >= 1
    assert _writer_pid(sink) != first
    assert sink.writer == "process"
    assert _spans_of(tmp_path / "t.db", instance) == {create.span_id: (None, "complete")}
    assert exporter.close()


def test_after_a_third_death_the_sink_writes_inline_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance)]
    for _ in range(4):
        records += span_pair(instance)

    async def scenario(sink: LocalSink) -> list[str]:
        outcomes: list[str] = []
        batches = [records[:2]] + [records[i : i + 2] for i in range(2, len(records), 2)]
        for index in range(3):
            await sink.export(batches[index])  # a writer (a new one after a death) applies it
            pid = _writer_pid(sink)
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid)
            try:
                await sink.export(batches[index + 1])
            except TransientExportError as exc:
                outcomes.append(str(exc))
        for batch in batches[1:]:  # the retries: the three that failed, and the last
            await sink.export(batch)
        await sink.aclose()
        return outcomes

    sink = LocalSink(tmp_path / "t.db")
    with caplog.at_level(logging.WARNING, "prefactor.export"):
        outcomes = asyncio.run(scenario(sink))
    assert len(outcomes) == 3
    assert all("writer process died" in message for message in outcomes)
    assert sink.writer == "inline"
    given_up = [r.getMessage() for r in caplog.records if "given up" in r.getMessage()]
    assert len(given_up) == 1
    assert "died 3 times" in given_up[0]
    creates = [r for r in records if isinstance(r, CreateSpan)]
    assert _spans_of(tmp_path / "t.db", instance) == {
        c.span_id: (None, "complete") for c in creates
    }


def test_a_writer_that_cannot_start_leaves_the_sink_writing_inline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-such-python"))
    sink = LocalSink(tmp_path / "t.db")
    exporter = Exporter(sink)
    instance = generate_pfid()
    create, finish = span_pair(instance)
    with caplog.at_level(logging.WARNING, "prefactor.export"):
        for record in [*instance_opening(instance), create, finish]:
            exporter.submit(record)
        assert exporter.flush(10)
    assert sink.writer == "inline"
    assert any("could not start" in r.getMessage() for r in caplog.records)
    assert exporter.stats().sent == 4
    assert _spans_of(tmp_path / "t.db", instance) == {create.span_id: (None, "complete")}
    assert exporter.close()


def test_a_store_the_writer_cannot_open_is_reported_as_the_inline_store_reports_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a directory")
    sink = LocalSink(blocked / "t.db")  # its parent is a file: no store can be made there

    async def scenario() -> BaseException | None:
        try:
            await sink.export(list(instance_opening(generate_pfid())))
        except Exception as exc:
            return exc
        finally:
            await sink.aclose()
        return None

    with caplog.at_level(logging.WARNING, "prefactor.export"):
        error = asyncio.run(scenario())
    assert sink.writer == "inline"
    (warning,) = [r.getMessage() for r in caplog.records if "could not start" in r.getMessage()]
    assert "FileExistsError" in warning  # the writer's own error, passed on
    assert isinstance(error, FileExistsError)  # and the store's, raised inline as ever


def test_the_writer_ignores_ctrl_c_so_the_agent_can_still_flush(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "t.db")
    exporter = Exporter(sink)
    instance = generate_pfid()
    for record in instance_opening(instance):
        exporter.submit(record)
    assert exporter.flush(10)
    pid = _writer_pid(sink)
    os.kill(pid, signal.SIGINT)
    time.sleep(0.2)
    create, finish = span_pair(instance)
    for record in [create, finish]:
        exporter.submit(record)
    assert exporter.flush(10)
    assert _writer_pid(sink) == pid
    assert exporter.stats().retried == 0
    assert _spans_of(tmp_path / "t.db", instance) == {create.span_id: (None, "complete")}
    assert exporter.close()


def _run_agent(db: Path, agent_id: str, then: str) -> subprocess.CompletedProcess[str]:
    """An agent process on the embedded store at ``db``: one traced call, then ``then``."""
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        import prefactor

        prefactor.configure(db_path={str(db)!r}, agent_id={agent_id!r})

        @prefactor.traced
        def step(x: int) -> int:
            return x + 1

        assert step(1) == 2
        """
    ) + textwrap.dedent(then)
    return subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def _instances_of(db: Path, agent_id: str) -> list[str]:
    """The statuses of ``agent_id``'s instances in the store at ``db``, read back."""
    store = Store(db)
    try:
        page = store.list_instances(agent_id=agent_id, offset=0, page_size=10)
    finally:
        store.close()
    return [summary["status"] for summary in page["summaries"]]


def test_the_writer_exits_when_its_agent_is_killed(tmp_path: Path) -> None:
    then = """
        assert prefactor.flush(10)
        children = set()
        for task in os.listdir(f"/proc/{os.getpid()}/task"):
            with open(f"/proc/{os.getpid()}/task/{task}/children") as f:
                children.update(f.read().split())
        print(" ".join(sorted(children)), flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    result = _run_agent(tmp_path / "t.db", "killed", then)
    assert result.returncode == -signal.SIGKILL, result.stderr
    (pid,) = (int(p) for p in result.stdout.split())
    _wait_gone(pid)
    assert _instances_of(tmp_path / "t.db", "killed") == ["complete"]


def test_an_agent_process_on_the_embedded_store_never_opens_it_itself(tmp_path: Path) -> None:
    then = """
        assert prefactor.shutdown(10)
        print("prefactor.server.store" in sys.modules)
        """
    result = _run_agent(tmp_path / "t.db", "lean", then)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False"]
    assert _instances_of(tmp_path / "t.db", "lean") == ["complete"]


def test_a_forked_child_lets_go_of_its_parents_writer(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    sink = LocalSink(path)
    exporter = Exporter(sink, QueueConfig(flush_interval=30))
    parent, child = generate_pfid(), generate_pfid()
    for record in instance_opening(parent):
        exporter.submit(record)
    assert exporter.flush(10)
    writer = sink._writer
    assert writer is not None
    pipes = writer.pipes()
    assert len(pipes) == 2
    release_read, release_write = os.pipe()
    report_read, report_write = os.pipe()
    pid = fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            os.close(release_write)
            targets = [os.readlink(f"/proc/self/fd/{fd}") for fd in pipes]
            for record in [*instance_opening(child), *span_pair(child)]:
                exporter.submit(record)
            flushed = exporter.flush(20)
            own = sink._writer
            report = {"targets": targets, "flushed": flushed, "own": own.process.pid if own else 0}
            os.write(report_write, json.dumps(report).encode())
            os.close(report_write)
            os.read(release_read, 1)  # alive, with its inherited descriptors, until released
            exporter.close()
            code = 0
        finally:
            os._exit(code)
    os.close(report_write)
    report = json.loads(os.read(report_read, 65536))
    assert report["targets"] == [os.devnull, os.devnull]
    assert report["flushed"]
    assert report["own"] not in (0, writer.process.pid)
    # The child is still alive: closing must still end the parent's writer by its input.
    assert exporter.close()
    assert writer.process.returncode == 0  # exited by itself, not killed after a timeout
    os.write(release_write, b"x")
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    store = Store(path)
    try:
        statuses = {
            s["id"]: s["status"]
            for s in store.list_instances(agent_id=None, offset=0, page_size=10)["summaries"]
        }
    finally:
        store.close()
    assert set(statuses) == {parent, child}


def _writers_running() -> set[int]:
    """The writer processes this process started that are still running."""
    found: set[int] = set()
    for task in os.listdir(f"/proc/{os.getpid()}/task"):
        children = Path(f"/proc/{os.getpid()}/task/{task}/children").read_text().split()
        for pid in map(int, children):
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except FileNotFoundError:
                continue
            if b"prefactor.server.writer" in command and not _gone(pid):
                found.add(pid)
    return found


def test_the_writer_starts_with_the_exporter_before_any_batch_is_due(tmp_path: Path) -> None:
    sink = LocalSink(tmp_path / "t.db")
    exporter = Exporter(sink, QueueConfig(flush_interval=30))
    instance = generate_pfid()
    exporter.submit(instance_opening(instance)[0])
    deadline = time.monotonic() + 20
    while sink._writer is None:  # no batch is due for 30 s: only prepare() starts it
        assert time.monotonic() < deadline, "the writer did not start ahead of the first batch"
        time.sleep(0.01)
    assert exporter.stats().sent == 0
    assert exporter.close()
    assert _instances_of(tmp_path / "t.db", "agent-test") == ["pending"]


def test_a_first_batch_sent_while_the_writer_starts_waits_for_that_writer(tmp_path: Path) -> None:
    before = _writers_running()
    sink = LocalSink(tmp_path / "t.db")
    exporter = Exporter(sink)
    instance = generate_pfid()
    for record in instance_opening(instance):
        exporter.submit(record)
    assert exporter.flush(10)  # at once: the batch and prepare() both want a writer
    assert _writers_running() - before == {_writer_pid(sink)}
    assert exporter.close()
