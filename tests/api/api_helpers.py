"""Shared values for the API client tests."""

from __future__ import annotations

from pydantic import SecretStr

from prefactor._config import HttpClientConfig

TOKEN = "client-test-token-42"


def make_config(token: str = TOKEN, **overrides: object) -> HttpClientConfig:
    """A config for the in-process server with quick retries."""
    fields: dict[str, object] = {
        "api_url": "http://prefactor.test",
        "api_token": SecretStr(token),
        "initial_retry_delay": 0.001,
        "max_retry_delay": 0.01,
    }
    fields.update(overrides)
    return HttpClientConfig.model_validate(fields)
