"""Every example runs, offline, and leaves exactly the trace it describes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from prefactor.server.store import Store
from prefactor.testing.server import LocalServer

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _run(script: Path, cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    return subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _spans(db: Path, agent_id: str) -> tuple[dict[str, object], list[dict[str, object]]]:
    store = Store(db)
    try:
        (inst,) = store.list_instances(agent_id=agent_id)["summaries"]
        return inst, list(store.list_spans(agent_instance_id=inst["id"])["summaries"])
    finally:
        store.close()


def test_quickstart_prints_its_tree_and_stores_the_run(tmp_path: Path) -> None:
    run = _run(EXAMPLES / "quickstart.py", tmp_path)
    assert run.returncode == 0, run.stderr
    inst, spans = _spans(tmp_path / ".prefactor" / "traces.db", "quickstart-agent")
    assert inst["status"] == "complete"
    assert inst["span_counts"]["total"] == len(spans) == 10  # type: ignore[index]
    root = next(s for s in spans if s["parent_span_id"] is None)
    assert root["schema_name"] == "agent:research_agent"
    assert {s["parent_span_id"] for s in spans if s is not root} == {root["id"]}
    assert f"{inst['id']}  quickstart-agent  [complete]  10 spans" in run.stdout
    assert "└─ agent:research_agent [complete]" in run.stdout
    assert f"prefactor show {inst['id']}" in run.stdout


def test_async_agent_nests_concurrent_and_threaded_tools(tmp_path: Path) -> None:
    run = _run(EXAMPLES / "async_agent.py", tmp_path)
    assert run.returncode == 0, run.stderr
    inst, spans = _spans(tmp_path / ".prefactor" / "traces.db", "async-weather-agent")
    root = next(s for s in spans if s["parent_span_id"] is None)
    children = sorted(str(s["schema_name"]) for s in spans if s["parent_span_id"] == root["id"])
    assert children == ["tool:checksum", "tool:forecast", "tool:forecast", "tool:forecast"]
    assert inst["status"] == "complete"


def test_core_quickstart_never_blocks_without_a_network(tmp_path: Path) -> None:
    start = time.monotonic()
    run = _run(EXAMPLES / "core_quickstart.py", tmp_path)
    elapsed = time.monotonic() - start
    assert run.returncode == 0, run.stderr
    # close() waits at most QueueConfig.shutdown_timeout (5 s) for the dead API.
    assert elapsed < 30
    assert "telemetry records were lost" in run.stderr


def test_core_quickstart_delivers_to_a_real_server(tmp_path: Path) -> None:
    source = (EXAMPLES / "core_quickstart.py").read_text()
    with LocalServer(tmp_path / "server.db") as server:
        # Only the address and token differ from the README's snippet.
        script = tmp_path / "quickstart_local.py"
        script.write_text(
            source.replace("https://api.prefactor.ai", server.url).replace(
                '"your-token"', repr(server.token)
            )
        )
        run = _run(script, tmp_path)
        assert run.returncode == 0, run.stderr
    inst, spans = _spans(tmp_path / "server.db", "my-agent")
    assert inst["status"] == "complete"
    (span,) = spans
    assert span["schema_name"] == "agent:llm"
    assert span["payload"] == {"model": "gpt-4", "prompt": "Hello"}
    assert span["result_payload"] == {"response": "Hello! How can I help?"}
