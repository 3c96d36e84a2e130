"""The exporter across process boundaries: a forked child, and the interpreter's exit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from export_helpers import instance_opening, span_pair, stored_spans
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
        pid = os.fork()
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
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork with threads
            pid = os.fork()
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
