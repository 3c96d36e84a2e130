"""The ``prefactor`` command line: parsing and the missing-extra message."""

from __future__ import annotations

from importlib.machinery import ModuleSpec

import pytest

from prefactor import _cli as cli


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
