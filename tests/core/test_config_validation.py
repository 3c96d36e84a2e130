"""Every option is checked by one rule: in code, in a config object or in the environment.

Code that gives a bad value gets a ``PrefactorConfigError`` naming the option,
what it accepts and the value; the environment gets the same sentence logged
once, and the option's default applies, so the agent keeps running, traced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from prefactor import (
    HttpClientConfig,
    MemorySink,
    PrefactorConfigError,
    PrefactorCoreClient,
    PrefactorCoreConfig,
    PrefactorError,
    QueueConfig,
    configure,
    flush,
    get_tracer,
    stats,
    traced,
)
from prefactor import _config as config_module
from prefactor.server.store import Store


@pytest.fixture(autouse=True)
def local_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREFACTOR_DB", str(tmp_path / "traces.db"))
    # Each test sees its own "logged once".
    monkeypatch.setattr(config_module, "_reported", set())


def build(factory: Callable[[], Any]) -> str:
    with pytest.raises(PrefactorConfigError) as refused:
        factory()
    return str(refused.value)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        pytest.param(
            lambda: QueueConfig(num_workers=0),
            "num_workers must be from 1 to 20 (an integer), got 0",
            id="queue-bounds",
        ),
        pytest.param(
            lambda: QueueConfig(batch_size="many"),
            "batch_size must be from 1 to 10000 (an integer), got 'many'",
            id="queue-type",
        ),
        pytest.param(
            lambda: QueueConfig(on_full="explode"),
            "on_full must be one of 'drop', 'block', got 'explode'",
            id="queue-choice",
        ),
        pytest.param(
            lambda: HttpClientConfig(api_url="localhost:8040", api_token="t"),
            "api_url must be an http:// or https:// URL, got 'localhost:8040'",
            id="http-url",
        ),
        pytest.param(
            lambda: HttpClientConfig(api_url="https://a.test", api_token="t", request_timeout=0),
            "request_timeout must be positive (a number), got 0",
            id="http-timeout",
        ),
        pytest.param(
            lambda: HttpClientConfig(api_url="https://a.test"),
            "api_token is required: a non-empty string",
            id="http-missing",
        ),
        pytest.param(
            lambda: HttpClientConfig("https://a.t", "t", initial_retry_delay=9, max_retry_delay=1),
            "initial_retry_delay must be <= max_retry_delay, got 9.0 > 1.0",
            id="http-across-options",
        ),
        pytest.param(
            lambda: PrefactorCoreConfig(strict="maybe"),
            "strict must be true or false (or 1/0, yes/no, on/off), got 'maybe'",
            id="core-flag",
        ),
        pytest.param(
            lambda: PrefactorCoreConfig(agent_id=" "),
            "agent_id must be a non-empty string, got ' '",
            id="core-name",
        ),
        pytest.param(
            lambda: PrefactorCoreConfig(queue_config={"max_retries": -1}),
            "max_retries must be non-negative (an integer), got -1",
            id="core-nested",
        ),
        pytest.param(
            lambda: PrefactorCoreConfig(verbose=True),
            "PrefactorCoreConfig has no option 'verbose' (options: http_config, queue_config, "
            "schema_registry, db_path, embedded_writer, strict, validation, sink, agent_id, "
            "environment_id, otlp)",
            id="core-unknown",
        ),
    ],
)
def test_config_objects_refuse_a_value_naming_the_option_what_it_accepts_and_the_value(
    factory: Callable[[], Any], message: str
) -> None:
    assert build(factory) == message


def test_config_errors_are_value_errors_of_the_prefactor_tree() -> None:
    with pytest.raises(PrefactorConfigError) as refused:
        QueueConfig(num_workers=0)
    assert isinstance(refused.value, ValueError) and isinstance(refused.value, PrefactorError)
    assert refused.value.option == "num_workers"


@pytest.mark.parametrize(
    ("options", "same_as"),
    [
        pytest.param({"on_full": "explode"}, lambda: QueueConfig(on_full="explode"), id="on_full"),
        pytest.param({"strict": "maybe"}, lambda: PrefactorCoreConfig(strict="maybe"), id="strict"),
        pytest.param({"validation": 2}, lambda: PrefactorCoreConfig(validation=2), id="validation"),
        pytest.param({"agent_id": ""}, lambda: PrefactorCoreConfig(agent_id=""), id="agent_id"),
        pytest.param({"db_path": 3}, lambda: PrefactorCoreConfig(db_path=3), id="db_path"),
        pytest.param(
            {"api_url": "ftp://a.test", "api_token": "t"},
            lambda: HttpClientConfig(api_url="ftp://a.test", api_token="t"),
            id="api_url",
        ),
    ],
)
def test_configure_refuses_a_value_with_the_config_objects_own_message(
    options: dict[str, Any], same_as: Callable[[], Any]
) -> None:
    assert build(lambda: configure(**options)) == build(same_as)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param({"queue": {"batch_size": 1}}, "queue must be a prefactor.QueueConfig", id="q"),
        pytest.param({"registry": "x"}, "registry must be a prefactor.SchemaRegistry", id="r"),
        pytest.param({"capturer": object}, "capturer must be a prefactor.Capturer", id="c"),
        pytest.param({"api_url": "https://a.test"}, "must be given together", id="url-alone"),
    ],
)
def test_configure_refuses_options_that_are_not_what_they_must_be(
    options: dict[str, Any], message: str
) -> None:
    assert message in build(lambda: configure(**options))


async def test_a_core_client_refuses_a_schema_registry_that_is_not_one() -> None:
    client = PrefactorCoreClient(PrefactorCoreConfig(sink=MemorySink(), schema_registry={}))
    with pytest.raises(PrefactorConfigError, match="schema_registry must be a prefactor"):
        await client.initialize()


def test_a_refused_configure_leaves_the_installed_tracer_in_place() -> None:
    installed = configure(sink=MemorySink())
    build(lambda: configure(sink=MemorySink(), on_full="explode"))
    assert get_tracer() is installed


def test_boolean_options_take_the_words_the_environment_uses_in_code_too() -> None:
    config = PrefactorCoreConfig(strict="yes", validation="off")
    assert (config.strict, config.validation) == (True, False)


def test_a_token_never_appears_in_a_config_error_nor_rides_along_in_its_context() -> None:
    with pytest.raises(PrefactorConfigError) as refused:
        HttpClientConfig(api_url="nope", api_token="sk-very-secret")
    with pytest.raises(PrefactorConfigError) as wrong_type:
        HttpClientConfig(api_url="https://a.test", api_token=["sk-very-secret"])  # type: ignore[arg-type]
    for error in (refused.value, wrong_type.value):
        assert "sk-very-secret" not in str(error)
        assert error.__context__ is None and error.__cause__ is None
    assert str(wrong_type.value) == "api_token must be a non-empty string"


# --- the environment --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "resolve", "same_as", "default"),
    [
        pytest.param(
            "PREFACTOR_STRICT",
            "maybe",
            lambda: PrefactorCoreConfig().resolved_strict(),
            lambda: PrefactorCoreConfig(strict="maybe"),
            "off",
            id="strict",
        ),
        pytest.param(
            "PREFACTOR_API_URL",
            "localhost:8040",
            HttpClientConfig.from_env,
            lambda: HttpClientConfig(api_url="localhost:8040", api_token="t"),
            "no API: the local SQLite store",
            id="api_url",
        ),
    ],
)
def test_an_environment_variable_is_checked_by_its_options_rule_and_logged_in_its_words(
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    variable: str,
    value: str,
    resolve: Callable[[], Any],
    same_as: Callable[[], Any],
    default: str,
) -> None:
    monkeypatch.setenv(variable, value)
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "env-token")
    with caplog.at_level(logging.ERROR, logger="prefactor.config"):
        assert not resolve()
    (record,) = caplog.records
    expected = f"{variable}={value!r} is ignored: {build(same_as)}; using the default ({default})"
    assert record.getMessage() == expected


def test_a_blank_environment_variable_counts_as_unset(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PREFACTOR_STRICT", "  ")
    with caplog.at_level(logging.ERROR, logger="prefactor.config"):
        assert PrefactorCoreConfig().resolved_strict() is False
    assert caplog.records == []


def stored(db: Path) -> list[dict[str, Any]]:
    """Every span in the local store, of every instance."""
    store = Store(db)
    try:
        instances = store.list_instances()["summaries"]
        return [
            span
            for instance in instances
            for span in store.list_spans(agent_instance_id=instance["id"])["summaries"]
        ]
    finally:
        store.close()


def test_a_bad_prefactor_strict_is_logged_once_and_calls_stay_traced_leniently(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFACTOR_STRICT", "maybe")

    @traced
    def double(x: int) -> int:
        return 2 * x

    @traced
    def run() -> list[int]:
        return [double(1), double("two"), double(3)]  # type: ignore[arg-type]

    with caplog.at_level(logging.ERROR, logger="prefactor"):
        assert run() == [2, "twotwo", 6]  # strict's default, off: the violation is only flagged
        assert run() == [2, "twotwo", 6]
        assert flush(10)
    (record,) = caplog.records
    assert "PREFACTOR_STRICT='maybe'" in record.getMessage()
    spans = stored(tmp_path / "traces.db")
    assert [s["status"] for s in spans] == ["complete"] * 8
    flagged = sorted(v["path"] for s in spans for v in s["schema_violations"] or [])
    # double("two"): its params and its result; run(): its result.
    assert flagged == ["$.value", "$.value", "$.value[1]", "$.value[1]", "$.x", "$.x"]


def test_a_malformed_prefactor_api_url_is_logged_once_and_spans_go_to_the_local_store(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    monkeypatch.setenv("PREFACTOR_API_URL", "localhost:8040")
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "sk-env-secret")

    @traced
    def step(n: int) -> int:
        return n

    with caplog.at_level(logging.DEBUG, logger="prefactor"):
        assert [step(n) for n in range(3)] == [0, 1, 2]
        assert flush(10)
        counters = stats()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert "PREFACTOR_API_URL='localhost:8040'" in errors[0].getMessage()
    assert "http:// or https://" in errors[0].getMessage()
    assert "sk-env-secret" not in caplog.text
    assert counters["sent"] == 3 and dict(counters["dropped"]) == {}  # a root call: one record
    assert [s["status"] for s in stored(tmp_path / "traces.db")] == ["complete"] * 3
