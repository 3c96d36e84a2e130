"""The ``prefactor`` command line: parsing and the missing-extra message."""

from __future__ import annotations

import os
import subprocess
import sys
from importlib.machinery import ModuleSpec
from pathlib import Path

import httpx
import pytest

from prefactor import _cli as cli

ROOT = Path(__file__).resolve().parents[2]


def test_serve_without_the_server_extra_explains_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def missing(name: str) -> ModuleSpec | None:
        return None

    monkeypatch.setattr(cli, "find_spec", missing)
    assert cli.main(["serve"]) == 2
    assert "pip install 'prefactor[server]'" in capsys.readouterr().err


def test_serve_defaults_to_loopback_port_8040() -> None:
    args = cli.build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.db, args.token) == ("127.0.0.1", 8040, None, None)


def test_a_subcommand_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main([])
    assert exited.value.code == 2


def test_serve_tunes_the_collector_for_itself_and_puts_it_back() -> None:
    """Only the server process changes the GC, and only while it serves."""
    import gc

    from prefactor.server import serve as serve_module

    before = gc.get_threshold()
    with serve_module._server_gc():
        assert gc.get_threshold() == (serve_module._SERVER_GEN0_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_the_token_flag_is_refused_naming_the_safe_ways(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert cli.main(["serve", "--token", "a-long-enough-token-1234"]) == 2
    err = capsys.readouterr().err
    assert "PREFACTOR_API_TOKEN" in err and "--token-file" in err
    assert "a-long-enough-token-1234" not in err


def test_a_short_token_in_the_environment_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token = "Qz7xK9wJvB"
    monkeypatch.setenv("PREFACTOR_API_TOKEN", token)
    assert cli.main(["serve", "--port", "0", "--db", str(tmp_path / "t.db")]) == 2
    err = capsys.readouterr().err
    assert "at least 16 characters (this one has 10)" in err
    assert not any(token[i : i + 3] in err for i in range(len(token) - 2))
    assert not (tmp_path / "t.db").exists()


def test_a_short_token_in_a_token_file_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text("tiny\n")
    assert cli.main(["serve", "--token-file", str(token_file)]) == 2
    assert "at least 16 characters (this one has 4)" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "message"),
    [pytest.param(None, "No such file", id="missing"), pytest.param(" \n", "is empty", id="empty")],
)
def test_an_unusable_token_file_is_refused_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: str | None, message: str
) -> None:
    token_file = tmp_path / "token"
    if content is not None:
        token_file.write_text(content)
    assert cli.main(["serve", "--token-file", str(token_file)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(token_file) in err


def test_serve_requires_the_token_from_its_token_file(tmp_path: Path) -> None:
    token = "file-token-" + "7" * 16
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PREFACTOR_API_TOKEN", None)
    command = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--db", str(tmp_path / "t.db"), "--token-file", str(token_file)],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        banner = [proc.stdout.readline() for _ in range(3)]
        url = banner[0].split("listening on ", 1)[1].strip()
        assert banner[2].strip() == f"token: from the file {token_file}"
        good = httpx.get(url + "/api/v1/ping", headers={"Authorization": f"Bearer {token}"})
        bad = httpx.get(url + "/api/v1/ping", headers={"Authorization": "Bearer " + "x" * 27})
        assert (good.status_code, bad.status_code) == (200, 401)
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
