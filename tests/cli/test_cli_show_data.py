"""``prefactor show -v`` / ``--json`` and ``prefactor traces --json`` print what the spans hold.

Runs are made by the SDK into a real SQLite file (lenient mode, so a span that
breaks its schema is stored flagged) or sent over HTTP to the real server.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prefactor import _runtime as runtime
from prefactor._cli import main
from prefactor._tracing.agents import agent, tool
from prefactor.testing.server import LocalServer

pytestmark = pytest.mark.usefixtures("internal_errors_raise")


@tool
def fetch_key(key: str) -> str:
    """Fetch a key."""
    return f"value of {key}"


@tool
def explode_on(key: str):  # type: ignore[no-untyped-def]
    """Fail on purpose (no return annotation: its error record breaks no schema)."""
    raise ValueError(f"no such key: {key}")


@tool
def summarise_for_show(notes: list[str]) -> dict[str, Any]:
    """Return a nested result."""
    return {
        "summary": " / ".join(notes),
        "sources": [{"n": i, "text": t} for i, t in enumerate(notes)],
    }


@agent(agent_id="show-agent", version="2.0")
def show_agent(key: str) -> str:
    first = fetch_key(key)
    try:
        explode_on(key)
    except ValueError:
        pass
    summarise_for_show([first, "a second note that is long enough to wrap the line " * 2])
    return first


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.db"
    runtime.configure(db_path=path, strict=False)
    try:
        show_agent("k1")
        assert runtime.flush(10)
    finally:
        runtime.shutdown()
    yield path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_failed_span_shows_its_error_type_and_message_by_default(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "--db", str(db))
    assert code == 0
    (line,) = [line for line in out.splitlines() if "tool:explode_on" in line]
    assert line.startswith("   ├─ tool:explode_on [failed] ")
    assert line.endswith("  ✗ ValueError: no such key: k1")
    assert "params" not in out


def test_show_verbose_prints_each_spans_params_and_result_under_it(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "-v", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    root = next(i for i, line in enumerate(lines) if "agent:show_agent" in line)
    assert lines[root + 1 : root + 3] == [
        '   │  params: {"key": "k1"}',
        '   │  result: {"value": "value of k1"}',
    ]
    fetch_line = next(i for i, line in enumerate(lines) if "tool:fetch_key [complete]" in line)
    assert lines[fetch_line + 1 : fetch_line + 3] == [
        '   │     params: {"key": "k1"}',
        '   │     result: {"value": "value of k1"}',
    ]


def test_show_verbose_prints_a_failed_spans_params_and_its_error_once(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "--verbose", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "tool:explode_on" in line)
    assert lines[at].endswith("✗ ValueError: no such key: k1")
    assert lines[at + 1] == '   │     params: {"key": "k1"}'
    assert "tool:summarise_for_show" in lines[at + 2]
    assert out.count("no such key") == 1


def test_show_verbose_indents_a_value_too_long_for_one_line(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "-v", "--db", str(db))
    assert code == 0
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if "tool:summarise_for_show" in line)
    assert lines[at + 1] == "         params:"
    assert lines[at + 2] == "           {"
    assert lines[at + 3] == '             "notes": ['
    result_at = lines.index("         result:", at)
    body = "\n".join(line[11:] for line in lines[result_at + 1 :])
    assert json.loads(body)["sources"][0] == {"n": 0, "text": "value of k1"}


def test_show_json_prints_the_instance_and_every_span_as_the_api_has_them(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "show", "--json", "--db", str(db))
    assert code == 0
    data = json.loads(out)
    assert data["instance"]["agent_id"] == "show-agent"
    assert data["instance"]["span_counts"]["total"] == 4
    spans = {s["schema_name"]: s for s in data["spans"]}
    assert spans["tool:fetch_key"]["payload"] == {"key": "k1"}
    assert spans["tool:fetch_key"]["result_payload"] == {"value": "value of k1"}
    assert spans["tool:explode_on"]["status"] == "failed"
    assert spans["tool:explode_on"]["result_payload"] == {
        "error": {"type": "ValueError", "message": "no such key: k1"}
    }


def test_show_refuses_verbose_and_json_together(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["show", "-v", "--json", "--db", str(db)])
    assert exited.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_show_help_offers_the_verbose_and_json_options(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["show", "--help"])
    text = capsys.readouterr().out
    assert "-v, --verbose" in text and "--json" in text


def test_traces_json_prints_the_instances_newest_first(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    runtime.configure(db_path=db, strict=False)
    try:
        show_agent("k2")
        assert runtime.flush(10)
    finally:
        runtime.shutdown()
    code, out, _ = _run(capsys, "traces", "--json", "--db", str(db))
    assert code == 0
    listed = json.loads(out)
    assert [i["agent_id"] for i in listed] == ["show-agent", "show-agent"]
    _, shown, _ = _run(capsys, "show", "--json", "--db", str(db))
    assert listed[0]["id"] == json.loads(shown)["instance"]["id"]  # show's default: the newest


def test_traces_json_of_an_empty_agent_filter_is_an_empty_array(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "traces", "--json", "--agent", "nobody", "--db", str(db))
    assert (code, json.loads(out)) == (0, [])


def test_show_reads_every_span_of_a_run_larger_than_one_page(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    @agent(agent_id="wide-agent")
    def wide_agent(n: int) -> int:
        for i in range(n):
            fetch_key(str(i))
        return n

    path = tmp_path / "wide.db"
    runtime.configure(db_path=path, strict=False, on_full="block")
    try:
        wide_agent(10_000)  # with the agent's own span, one more than the API's largest page
        assert runtime.flush(60)
    finally:
        runtime.shutdown()
    code, out, _ = _run(capsys, "show", "--json", "--db", str(path))
    assert code == 0
    assert len(json.loads(out)["spans"]) == 10_001


def test_show_and_traces_print_the_same_data_from_a_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with LocalServer(tmp_path / "server.db") as server:
        server.route_tracer(strict=False)
        show_agent("remote")
        assert runtime.flush(10)
        monkeypatch.setenv("PREFACTOR_API_TOKEN", server.token)
        source = ["--url", server.url]
        code, out, _ = _run(capsys, "traces", "--json", "--agent", "show-agent", *source)
        assert code == 0
        (listed,) = json.loads(out)
        code, verbose, _ = _run(capsys, "show", listed["id"], "-v", *source)
        assert code == 0
        code, as_json, _ = _run(capsys, "show", listed["id"], "--json", *source)
        assert code == 0
    assert "✗ ValueError: no such key: remote" in verbose
    assert '│     params: {"key": "remote"}' in verbose
    spans = {s["schema_name"]: s for s in json.loads(as_json)["spans"]}
    assert spans["tool:fetch_key"]["result_payload"] == {"value": "value of remote"}
    assert spans["tool:explode_on"]["status"] == "failed"
