"""One setting sends every record to the embedded store and over OTLP at once."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from otlp_receiver import OtlpReceiver

from prefactor import _runtime as runtime
from prefactor._tracing.agents import agent, tool


@tool
def beside_lookup(city: str) -> str:
    return f"sunny in {city}"


@agent(agent_id="beside-bot", name="beside_forecaster")
def beside_forecaster(city: str) -> str:
    return beside_lookup(city)


def stored_span_types(db: Path) -> list[str]:
    conn = sqlite3.connect(db)
    try:
        return sorted(row[0] for row in conn.execute("SELECT schema_name FROM spans"))
    finally:
        conn.close()


def test_configure_otlp_sends_to_the_store_and_the_otlp_endpoint(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
    runtime.configure(db_path=tmp_path / "traces.db", otlp=True)
    beside_forecaster("Oslo")
    assert runtime.flush(10)
    assert stored_span_types(tmp_path / "traces.db") == [
        "agent:beside_forecaster",
        "tool:beside_lookup",
    ]
    assert sorted(receiver.by_name()) == [
        "execute_tool beside_lookup",
        "invoke_agent beside_forecaster",
    ]


def test_the_environment_variable_turns_otlp_on_beside_the_store(
    tmp_path: Path, receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFACTOR_OTLP", "1")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.url)
    runtime.configure(db_path=tmp_path / "traces.db")
    beside_forecaster("Lima")
    assert runtime.flush(10)
    assert len(stored_span_types(tmp_path / "traces.db")) == 2
    assert len(receiver.spans()) == 2


def test_invalid_otlp_settings_keep_the_store_and_say_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with caplog.at_level(logging.ERROR, logger="prefactor.export"):
        runtime.configure(db_path=tmp_path / "traces.db", otlp=True)
    beside_forecaster("Quito")
    assert runtime.flush(10)
    assert len(stored_span_types(tmp_path / "traces.db")) == 2
    assert "OTLP settings are invalid" in caplog.text
