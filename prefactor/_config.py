"""Configuration: typed, keyword-only models, and the environment variables they read.

Every setting can come from code or from the environment; code wins. The
environment variables, all in one place:

============================  =======================================  ==========================
variable                      meaning                                  default
============================  =======================================  ==========================
``PREFACTOR_API_URL``         base URL of the Prefactor API            unset: embedded store
``PREFACTOR_API_TOKEN``       bearer token for the API                 unset: embedded store
``PREFACTOR_AGENT_ID``        agent for instances made without one     ``default-agent``
``PREFACTOR_ENVIRONMENT_ID``  environment sent on register             unset
``PREFACTOR_DB``              file of the embedded store               ``.prefactor/traces.db``
``PREFACTOR_STRICT``          ``1``/``true``: violations raise         off
============================  =======================================  ==========================

With both ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN`` set (in code or
in the environment) spans go to the API; otherwise they go to the embedded
SQLite store, which ``prefactor serve`` can then show.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from prefactor._export.base import Sink

__all__ = [
    "DEFAULT_AGENT_ID",
    "DEFAULT_DB_PATH",
    "HttpClientConfig",
    "PrefactorCoreConfig",
    "QueueConfig",
    "env_flag",
]

DEFAULT_AGENT_ID = "default-agent"
DEFAULT_DB_PATH = Path(".prefactor") / "traces.db"


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """Read a boolean environment variable: ``None`` when unset or empty."""
    value = (environ if environ is not None else os.environ).get(name, "").strip().lower()
    if not value:
        return None
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be a boolean (1/0, true/false), got {value!r}")


class HttpClientConfig(BaseModel):
    """How to reach the Prefactor REST API.

    The retry fields govern :class:`prefactor._api.client.PrefactorApiClient`
    when it is used directly. The background exporter retries whole batches
    itself (see :class:`QueueConfig`) and so runs the client with its own
    retries off: one retry layer, never two multiplied.

    ``api_token`` is a :class:`~pydantic.SecretStr`: it never appears in a
    repr, a log line or an exception message.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_url: str
    api_token: SecretStr
    request_timeout: float = Field(30.0, gt=0, description="Seconds for a whole request.")
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to open a connection.")
    max_retries: int = Field(3, ge=0, description="Retries after the first attempt.")
    initial_retry_delay: float = Field(1.0, gt=0, description="First backoff, seconds.")
    max_retry_delay: float = Field(60.0, gt=0, description="Cap on one backoff, seconds.")
    retry_multiplier: float = Field(2.0, ge=1, description="Backoff growth per retry.")
    retry_on_status_codes: tuple[int, ...] = Field(
        (429, 500, 502, 503, 504), description="HTTP statuses worth retrying."
    )

    @field_validator("api_url")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("api_url must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("api_token must not be empty")
        return value

    @model_validator(mode="after")
    def _delays(self) -> HttpClientConfig:
        if self.initial_retry_delay > self.max_retry_delay:
            raise ValueError("initial_retry_delay must not exceed max_retry_delay")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpClientConfig | None:
        """The config from ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN``, if both are set."""
        env = environ if environ is not None else os.environ
        url, token = env.get("PREFACTOR_API_URL", ""), env.get("PREFACTOR_API_TOKEN", "")
        if url and token:
            return cls(api_url=url, api_token=SecretStr(token))
        return None


class QueueConfig(BaseModel):
    """The background exporter: batching, concurrency, retries and the bounded queue."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    num_workers: int = Field(
        3, ge=1, le=20, description="Batches of different instances in flight at once."
    )
    max_retries: int = Field(
        5, ge=0, description="Retries of a batch after a 429, 5xx or network error."
    )
    retry_delay_base: float = Field(
        0.5, gt=0, description="First retry delay in seconds; doubles per retry, with jitter."
    )
    retry_delay_max: float = Field(30.0, gt=0, description="Cap on one retry delay, seconds.")
    batch_size: int = Field(500, ge=1, le=10_000, description="Records per batch at most.")
    flush_interval: float = Field(
        0.5, gt=0, description="Seconds a partial batch waits before it is sent."
    )
    max_queue_size: int = Field(100_000, ge=1, description="Records held before `on_full`.")
    on_full: Literal["drop", "block"] = Field(
        "drop", description="When the queue is full: drop and count, or block the caller."
    )
    block_timeout: float = Field(
        10.0,
        gt=0,
        description='Seconds an on_full="block" caller waits for room, then drops the record.',
    )
    shutdown_timeout: float = Field(
        5.0, ge=0, description="Seconds close() and the exit hook wait for the queue to drain."
    )
    handle_sigterm: bool = Field(
        True, description="Flush on SIGTERM as on exit, then end as SIGTERM would."
    )
    spool_path: Path | None = Field(
        None,
        description="SQLite file keeping what the API could not take, for the next start"
        " or `prefactor push`; None: such records are dropped and counted.",
    )


class PrefactorCoreConfig(BaseModel):
    """Everything a :class:`prefactor.PrefactorCoreClient` needs.

    Attributes:
        http_config: where the API is. ``None`` reads ``PREFACTOR_API_URL`` and
            ``PREFACTOR_API_TOKEN``; if those are unset too, spans go to the
            embedded SQLite store at ``db_path``.
        queue_config: the background exporter's settings.
        schema_registry: span and quality schemas; a
            :class:`prefactor.SchemaRegistry`.
        db_path: the embedded store's file (``PREFACTOR_DB``, else
            ``./.prefactor/traces.db``).
        strict: raise :class:`prefactor.SchemaValidationError` on a schema
            violation (``PREFACTOR_STRICT``), instead of sending the span
            flagged.
        validation: check params and results against their schemas at all
            (default on; off skips the checks, strict mode included).
        sink: send records to this sink instead (tests use a ``MemorySink``),
            or to every sink of a sequence.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    http_config: HttpClientConfig | None = None
    queue_config: QueueConfig = Field(default_factory=QueueConfig)
    schema_registry: Any = None
    db_path: Path | None = None
    strict: bool | None = None
    validation: bool = True
    sink: Sink | Sequence[Sink] | None = None

    def resolved_http_config(self) -> HttpClientConfig | None:
        """``http_config``, else the one the environment describes, else ``None``."""
        return self.http_config if self.http_config is not None else HttpClientConfig.from_env()

    def resolved_db_path(self) -> Path:
        """``db_path``, else ``PREFACTOR_DB``, else ``./.prefactor/traces.db``."""
        if self.db_path is not None:
            return self.db_path
        env = os.environ.get("PREFACTOR_DB")
        return Path(env) if env else DEFAULT_DB_PATH

    def resolved_strict(self) -> bool:
        """``strict``, else ``PREFACTOR_STRICT``, else off."""
        if self.strict is not None:
            return self.strict
        return bool(env_flag("PREFACTOR_STRICT"))
