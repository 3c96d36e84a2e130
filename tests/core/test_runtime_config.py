"""Where spans go is decided by code first, then the environment, then the embedded store."""

from __future__ import annotations

from pathlib import Path

import pytest

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig
from prefactor._errors import PrefactorConfigError
from prefactor._export.sinks import HttpSink, LocalSink, MemorySink
from prefactor._tracing.decorator import traced
from prefactor.server.store import Store


def test_no_configuration_writes_to_the_embedded_store_in_prefactor_db(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    db = tmp_path / "traces.db"
    monkeypatch.setenv("PREFACTOR_DB", str(db))
    monkeypatch.setenv("PREFACTOR_AGENT_ID", "env-agent")

    @traced
    def step(x: int) -> int:
        return x

    step(1)
    assert runtime.flush(10)
    store = Store(db)
    try:
        (inst,) = store.list_instances()["summaries"]
    finally:
        store.close()
    assert (inst["agent_id"], inst["status"]) == ("env-agent", "complete")


def test_api_url_and_token_in_the_environment_select_the_http_sink(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "env-secret")
    sink = runtime.build_sink(PrefactorCoreConfig())
    assert isinstance(sink, HttpSink)


def test_code_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "http://127.0.0.1:9/")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "env-secret")
    sink = MemorySink()
    assert runtime.build_sink(PrefactorCoreConfig(sink=sink)) is sink


def test_only_url_without_token_stays_local(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "http://127.0.0.1:9/")
    assert isinstance(runtime.build_sink(PrefactorCoreConfig()), LocalSink)


def test_prefactor_strict_turns_on_strict_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_STRICT", "1")
    assert PrefactorCoreConfig().resolved_strict() is True


def test_strict_in_code_wins_over_prefactor_strict(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PREFACTOR_STRICT", "1")
    assert PrefactorCoreConfig(strict=False).resolved_strict() is False


def test_prefactor_agent_id_and_environment_id_reach_the_tracer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PREFACTOR_AGENT_ID", "env-agent")
    monkeypatch.setenv("PREFACTOR_ENVIRONMENT_ID", "env-environment")
    tracer = runtime.build_tracer(PrefactorCoreConfig(sink=MemorySink()))
    try:
        assert (tracer.agent_id, tracer.environment_id) == ("env-agent", "env-environment")
    finally:
        tracer.close()


def test_configure_requires_url_and_token_together() -> None:
    with pytest.raises(PrefactorConfigError, match="together"):
        runtime.configure(api_url="http://localhost:8040")
