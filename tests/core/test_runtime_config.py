"""Where spans go is decided by code first, then the environment, then the embedded store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from prefactor import _runtime as runtime
from prefactor._config import HttpClientConfig, PrefactorCoreConfig, QueueConfig
from prefactor._export.sinks import HttpSink, LocalSink, MemorySink
from prefactor._tracing.decorator import traced
from prefactor.server.store import Store


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in (
        "PREFACTOR_API_URL",
        "PREFACTOR_API_TOKEN",
        "PREFACTOR_AGENT_ID",
        "PREFACTOR_DB",
        "PREFACTOR_STRICT",
        "PREFACTOR_ENVIRONMENT_ID",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    runtime.shutdown()


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
    monkeypatch.setenv("PREFACTOR_STRICT", "maybe")
    with pytest.raises(ValueError, match="PREFACTOR_STRICT"):
        PrefactorCoreConfig().resolved_strict()


def test_configure_requires_url_and_token_together() -> None:
    with pytest.raises(ValueError, match="together"):
        runtime.configure(api_url="http://localhost:8040")


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"api_url": "localhost:8040"}, id="no-scheme"),
        pytest.param({"api_token": " "}, id="blank-token"),
        pytest.param({"request_timeout": 0}, id="zero-timeout"),
        pytest.param({"initial_retry_delay": 100, "max_retry_delay": 1}, id="delays"),
    ],
)
def test_http_config_rejects_bad_values(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"api_url": "http://x", "api_token": "t", **bad}
    with pytest.raises(ValidationError):
        HttpClientConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [{"num_workers": 0}, {"num_workers": 21}, {"max_retries": -1}, {"on_full": "wait"}],
    ids=["no-workers", "too-many-workers", "negative-retries", "unknown-on-full"],
)
def test_queue_config_rejects_bad_values(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        QueueConfig(**bad)  # type: ignore[arg-type]


def test_token_never_appears_in_reprs_or_errors() -> None:
    config = HttpClientConfig(api_url="http://x", api_token=SecretStr("sk-very-secret"))
    assert "sk-very-secret" not in repr(config)
    assert "sk-very-secret" not in str(PrefactorCoreConfig(http_config=config))
    assert "sk-very-secret" not in repr(HttpSink(config))
    with pytest.raises(ValidationError) as info:
        HttpClientConfig(api_url="nope", api_token=SecretStr("sk-very-secret"))
    assert "sk-very-secret" not in str(info.value)
