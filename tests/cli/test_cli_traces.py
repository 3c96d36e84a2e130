"""``prefactor traces`` and ``prefactor show`` read runs back from the store or a server."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor import _runtime as runtime
from prefactor._cli import main
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.agents import agent, tool
from prefactor._tracing.decorator import traced
from prefactor.testing.server import LocalServer


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return key.upper()


@agent(agent_id="cli-agent", version="1")
def cli_agent(key: str) -> str:
    return lookup(key)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.db"
    runtime.configure(db_path=path, strict=True)
    yield path
    runtime.shutdown()


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_traces_lists_runs_newest_first(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli_agent("a")
    cli_agent("b")
    assert runtime.flush(10)
    code, out, _ = _run(capsys, "traces", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert all("cli-agent  [complete]  2 spans" in line for line in lines)


def test_show_prints_the_tree_of_the_newest_run(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_agent("a")
    assert runtime.flush(10)
    code, out, _ = _run(capsys, "show", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    assert "cli-agent  [complete]  2 spans" in lines[0]
    assert lines[1].startswith("└─ agent:cli_agent [complete] ")
    assert lines[2].startswith("   └─ tool:lookup [complete] ")


def test_show_marks_flagged_spans_with_their_violations(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = SchemaRegistry()
    registry.register_type("agent:llm", {"type": "object", "required": ["model"]})

    @traced("agent:llm")
    def llm(prompt: str) -> str:
        return prompt

    path = tmp_path / "flagged.db"
    runtime.configure(db_path=path, strict=False, registry=registry)
    try:
        llm("hi")
        assert runtime.flush(10)
    finally:
        runtime.shutdown()
    code, out, _ = _run(capsys, "show", "--db", str(path))
    assert code == 0
    assert "agent:llm [complete]" in out
    assert "! params $: 'model' is a required property" in out


def test_show_of_an_unknown_instance_fails_clearly(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_agent("a")
    assert runtime.flush(10)
    code, _, err = _run(capsys, "show", "0" * 32, "--db", str(db))
    assert code == 1
    assert "no agent instance" in err


def test_reading_a_missing_store_fails_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _run(capsys, "traces", "--db", str(tmp_path / "absent.db"))
    assert code == 1
    assert "no trace store" in err


def test_traces_and_show_read_a_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with LocalServer(tmp_path / "server.db") as server:
        runtime.configure(api_url=server.url, api_token=server.token, strict=True)
        try:
            cli_agent("x")
            assert runtime.flush(10)
        finally:
            runtime.shutdown()
        token_file = tmp_path / "token"
        token_file.write_text(f"  {server.token}\n", encoding="utf-8")
        source: list[Any] = ["--url", server.url, "--token-file", str(token_file)]
        code, out, _ = _run(capsys, "traces", *source)
        assert code == 0
        (line,) = out.splitlines()
        instance_id = line.split()[0]
        code, out, _ = _run(capsys, "show", instance_id, *source)
    assert code == 0
    assert "└─ agent:cli_agent [complete]" in out
    assert "tool:lookup [complete]" in out


def test_url_without_a_token_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PREFACTOR_API_TOKEN", raising=False)
    code, _, err = _run(capsys, "traces", "--url", "http://127.0.0.1:9")
    assert code == 1
    assert "needs a token" in err


@pytest.mark.parametrize("command", ["traces", "show", "push"])
def test_a_token_on_the_command_line_is_refused_without_being_printed(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "a-secret-token-0123456789"
    code, out, err = _run(capsys, command, "--url", "http://127.0.0.1:9", "--token", token)
    assert code == 1
    assert f"{command}: --token is not accepted" in err
    assert "--token-file" in err
    assert token not in out + err


def test_an_empty_token_file_is_refused_clearly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("\n", encoding="utf-8")
    argv = ["traces", "--url", "http://127.0.0.1:9", "--token-file", str(token_file)]
    code, _, err = _run(capsys, *argv)
    assert code == 1
    assert f"the token file {token_file} is empty" in err


def test_output_into_a_closed_pipe_stops_quietly(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli_agent("a")
    assert runtime.flush(10)
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone, as with `prefactor traces | head -0`
    closed_pipe = os.fdopen(write_end, "w", buffering=1)
    monkeypatch.setattr(sys, "stdout", closed_pipe)
    try:
        assert main(["traces", "--db", str(db)]) == 141
    finally:
        monkeypatch.undo()
        closed_pipe.close()
