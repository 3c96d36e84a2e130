"""What ``--db`` accepts: a file path or a ``postgresql://`` URL; anything else is a clear error."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from server_helpers import SCHEMA_VERSION

from prefactor._cli import main
from prefactor._errors import PrefactorConfigError
from prefactor.server._database import describe_target, is_database_url
from prefactor.server.store import Store


def test_serve_with_an_unsupported_url_exits_2_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["serve", "--port", "0", "--db", "mysql://db.example/traces"]) == 2
    assert "unsupported database 'mysql:'" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_serve_that_cannot_reach_postgresql_says_why_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Port 1 on loopback: nothing listens there, so the connection is refused at once.
    url = "postgresql://prefactor:s3cret-pw@127.0.0.1:1/traces"
    assert main(["serve", "--port", "0", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open postgresql://prefactor:***@127.0.0.1:1/traces" in err
    assert "s3cret-pw" not in err


def test_serve_refuses_fewer_than_one_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--workers", "0"]) == 2
    assert "--workers" in capsys.readouterr().err


def test_a_postgresql_url_without_the_postgres_extra_names_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if psycopg were not installed
    monkeypatch.delitem(sys.modules, "prefactor.server._postgres")
    with pytest.raises(PrefactorConfigError, match=r"pip install 'prefactor\[postgres\]'"):
        Store("postgresql://127.0.0.1:1/traces")


@pytest.mark.parametrize(
    ("target", "is_url"),
    [
        pytest.param("postgresql://h/db", True, id="postgresql"),
        pytest.param("postgres://h/db", True, id="postgres-alias"),
        pytest.param("mysql://h/db", True, id="other-scheme"),
        pytest.param(".prefactor/traces.db", False, id="relative-file"),
        pytest.param("./a:b.db", False, id="colon-after-dot-slash"),
        pytest.param("C:\\traces\\t.db", False, id="windows-drive"),
        pytest.param(":memory:", False, id="memory"),
    ],
)
def test_a_target_is_a_url_only_when_it_starts_with_a_scheme(target: str, is_url: bool) -> None:
    assert is_database_url(target) is is_url


def test_a_file_whose_name_has_a_colon_opens_when_written_with_a_dot_slash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Store("./a:b.db").close()
    assert (tmp_path / "a:b.db").exists()


@pytest.mark.parametrize(
    ("target", "shown"),
    [
        pytest.param("postgresql://u:pw@h:5432/db", "postgresql://u:***@h:5432/db", id="password"),
        pytest.param("postgresql://u@h/db", "postgresql://u@h/db", id="no-password"),
        pytest.param(
            "postgresql://h/db?sslmode=require&password=pw",
            "postgresql://h/db?sslmode=require&password=***",
            id="password-parameter",
        ),
        pytest.param("postgresql:/u:pw@h/db", "postgresql:***@h/db", id="one-slash"),
        pytest.param("traces.db", "traces.db", id="file"),
    ],
)
def test_describe_target_masks_only_a_password(target: str, shown: str) -> None:
    assert describe_target(target) == shown


def test_prefactor_traces_reads_a_store_given_by_db(
    db_target: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = Store(db_target)
    instance_id = store.register_instance(
        {"agent_id": "cli-reader", "agent_schema_version": SCHEMA_VERSION}
    )["details"]["id"]
    store.close()
    assert main(["traces", "--db", db_target]) == 0
    assert instance_id in capsys.readouterr().out


def test_prefactor_show_reads_the_store_named_by_prefactor_db(
    db_target: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = Store(db_target)
    instance_id = store.register_instance({"agent_id": "env-reader"})["details"]["id"]
    store.close()
    monkeypatch.setenv("PREFACTOR_DB", db_target)
    assert main(["show"]) == 0
    assert instance_id in capsys.readouterr().out
