"""Secret-looking keys are redacted, counters like max_tokens are not."""

from __future__ import annotations

from typing import Any

import pydantic
import pytest

from prefactor._tracing.capture import (
    DEFAULT_REDACT_KEYS,
    REDACTED,
    Capturer,
    capture,
    capture_mapping,
)

SECRET_KEYS = [
    "api_key",
    "apiKey",
    "API-KEY",
    "apikey",
    "openai_api_key",
    "OPENAI_API_KEY",
    "x-api-key",
    "token",
    "access_token",
    "accessToken",
    "refresh_token",
    "github_token",
    "password",
    "db_password",
    "passwd",
    "passphrase",
    "secret",
    "client_secret",
    "aws_secret_access_key",
    "authorization",
    "Authorization",
    "auth",
    "basic_auth",
    "cookie",
    "Set-Cookie",
    "private_key",
    "privateKey",
    "credential",
    "credentials",
    "session",
    "session_token",
    "jwt",
    "bearer",
    "pwd",
    "db_pwd",
    "userPwd",
    "pass",
    "passcode",
    "otp",
    "totp",
    "otp_code",
    "pin",
    "PIN",
    "pin_code",
    "cardPin",
    "cvv",
    "mfa_code",
    "github_token",
    "x-auth-token",
    "Proxy-Authorization",
    "ssh_key",
    "signing_key",
    "connection_string",
]

PUBLIC_KEYS = [
    "tokens_used",
    "max_tokens",
    "maxTokens",
    "token_count",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "token_type",
    "author",
    "authority",
    "session_id",
    "keyword",
    "key",
    "monkey",
    "query",
    "messages",
    "pin_memory",
    "pinned",
    "ping",
    "spinner",
    "shipping",
    "photo",
    "option",
    "passenger",
    "bypass",
    "dsn",
]


@pytest.mark.parametrize("key", SECRET_KEYS)
def test_secret_looking_key_is_redacted(key: str) -> None:
    assert capture_mapping({key: "s3cr3t"}) == {key: REDACTED}


@pytest.mark.parametrize("key", PUBLIC_KEYS)
def test_ordinary_key_is_not_redacted(key: str) -> None:
    assert capture_mapping({key: 42}) == {key: 42}


def test_nested_secret_is_redacted_at_any_depth() -> None:
    value = {"config": {"headers": [{"Authorization": "Bearer abc"}]}}
    assert capture(value) == {"config": {"headers": [{"Authorization": REDACTED}]}}


def test_non_scalar_secret_value_is_redacted_whole() -> None:
    assert capture_mapping({"credentials": {"user": "u", "pw": "p"}}) == {"credentials": REDACTED}


def test_secret_key_with_none_value_stays_none() -> None:
    assert capture_mapping({"api_key": None}) == {"api_key": None}


def test_redaction_switched_off_keeps_values() -> None:
    capturer = Capturer(redact=False)
    assert capturer.capture_mapping({"api_key": "sk", "nested": {"password": "p"}}) == {
        "api_key": "sk",
        "nested": {"password": "p"},
    }


def test_custom_patterns_replace_the_defaults() -> None:
    capturer = Capturer(redact_keys=[r"ssn$"])
    assert capturer.capture_mapping({"user_ssn": "1", "api_key": "k"}) == {
        "user_ssn": REDACTED,
        "api_key": "k",
    }


def test_custom_patterns_can_extend_the_defaults() -> None:
    capturer = Capturer(redact_keys=DEFAULT_REDACT_KEYS | {r"ssn$"})
    captured = capturer.capture_mapping({"ssn": "1", "password": "p", "name": "n"})
    assert captured == {"ssn": REDACTED, "password": REDACTED, "name": "n"}


def test_empty_pattern_list_redacts_nothing() -> None:
    assert Capturer(redact_keys=[]).capture_mapping({"password": "p"}) == {"password": "p"}


def test_model_fields_are_redacted_too() -> None:
    class Settings(pydantic.BaseModel):
        api_key: str
        model: str

    assert capture(Settings(api_key="sk", model="m")) == {"api_key": REDACTED, "model": "m"}


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        pytest.param("openai_api_key", True, id="secret"),
        pytest.param("max_tokens", False, id="counter"),
    ],
)
def test_is_secret_key_answers_consistently_when_asked_twice(key: str, expected: bool) -> None:
    capturer = Capturer()
    assert (capturer.is_secret_key(key), capturer.is_secret_key(key)) == (expected, expected)


def test_is_secret_key_is_false_when_redaction_is_off() -> None:
    assert Capturer(redact=False).is_secret_key("password") is False


def test_redacted_value_of_secret_in_list_of_pairs_is_not_guessed() -> None:
    # Only mapping keys are inspected: a list of pairs is data, not configuration.
    value: Any = [["api_key", "sk"]]
    assert capture(value) == [["api_key", "sk"]]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "postgres://bob:hunter2@db.internal:5432/app",
            "postgres://bob:[REDACTED]@db.internal:5432/app",
            id="dsn",
        ),
        pytest.param(
            "connect to https://ann:pa55@api.example/v1?x=1 then stop",
            "connect to https://ann:[REDACTED]@api.example/v1?x=1 then stop",
            id="url-inside-text",
        ),
        pytest.param(
            "redis://:s3cret@cache:6379/0", "redis://:[REDACTED]@cache:6379/0", id="no-user"
        ),
        pytest.param(
            "amqp://bob:p@ss@rabbit/vhost",
            "amqp://bob:[REDACTED]@rabbit/vhost",
            id="at-in-password",
        ),
        pytest.param(
            "a://u:1@h and b://v:2@k", "a://u:[REDACTED]@h and b://v:[REDACTED]@k", id="two-urls"
        ),
        pytest.param("https://bob@example.com/x", "https://bob@example.com/x", id="user-only"),
        pytest.param("mail ann@example.com", "mail ann@example.com", id="an-email"),
        pytest.param("https://host:8080/path", "https://host:8080/path", id="a-port"),
    ],
)
def test_the_password_of_a_url_in_a_string_is_redacted(text: str, expected: str) -> None:
    assert capture({"note": text}) == {"note": expected}


def test_a_url_cut_inside_its_password_loses_the_rest_of_it() -> None:
    captured = Capturer(max_string_length=25).capture("x postgres://bob:hunter2hunter2@db/app")
    assert captured == "x postgres://bob:[REDACTED]…[truncated 13 chars]"


def test_urls_in_keys_values_lists_and_results_are_all_redacted() -> None:
    url = "https://u:pw@h/"
    redacted = "https://u:[REDACTED]@h/"
    assert capture_mapping({"a": url, "b": [url], "c": {"d": url}}) == {
        "a": redacted,
        "b": [redacted],
        "c": {"d": redacted},
    }
    assert Capturer().capture_params(("a",), (url,)) is None  # the general path redacts it
    assert Capturer().capture_result(url) == {"value": redacted}


def test_redaction_switched_off_keeps_url_passwords() -> None:
    assert Capturer(redact=False).capture("https://u:pw@h/") == "https://u:pw@h/"


def test_extra_patterns_are_added_to_the_defaults() -> None:
    capturer = Capturer(extra_redact_keys=[r"ssn$"])
    captured = capturer.capture_mapping({"user_ssn": "1", "api_key": "k", "name": "n"})
    assert captured == {"user_ssn": REDACTED, "api_key": REDACTED, "name": "n"}


def test_a_secret_parameter_name_is_redacted_on_the_strict_fast_path_too() -> None:
    capturer = Capturer()
    assert capturer.capture_params(("user", "pwd"), ("ann", "x")) is None
    assert capturer.capture_mapping({"user": "ann", "pwd": "x"}) == {"user": "ann", "pwd": REDACTED}
