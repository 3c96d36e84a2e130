"""Configuration: the three config objects, and the environment variables they read.

Every setting can come from code or from the environment; code wins. The
environment variables, all in one place (:data:`ENV_VARS`):

===================================  ======================================  ======================
variable                             option                                  when unset or invalid
===================================  ======================================  ======================
``PREFACTOR_API_URL``                ``HttpClientConfig.api_url``            no API: the local store
``PREFACTOR_API_TOKEN``              ``HttpClientConfig.api_token``          no API: the local store
``PREFACTOR_AGENT_ID``               ``PrefactorCoreConfig.agent_id``        see ``agent_id``
``PREFACTOR_ENVIRONMENT_ID``         ``PrefactorCoreConfig.environment_id``  none
``PREFACTOR_DB``                     ``PrefactorCoreConfig.db_path``         .prefactor/traces.db
``PREFACTOR_EMBEDDED_WRITER``        ``PrefactorCoreConfig.embedded_writer`` process
``PREFACTOR_STRICT``                 ``PrefactorCoreConfig.strict``          off
``PREFACTOR_RAISE_INTERNAL_ERRORS``  (the SDK's own tests)                   off
``PREFACTOR_OTLP``                   ``PrefactorCoreConfig.otlp``            off
``PREFACTOR_OTLP_PAYLOADS``          ``OtlpConfig.payloads``                 on
===================================  ======================================  ======================

A variable's value is checked exactly as the option it stands for (see
:mod:`prefactor._options`). A value given in code that does not fit raises
:class:`~prefactor.PrefactorConfigError`; a value in the environment that does
not fit is logged once, as an error naming the variable, its value and what it
accepts, and the option's default applies: a typo in the environment must not
stop an agent, nor switch its tracing off.

With both ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN`` set (in code or
in the environment) spans go to the API; otherwise they go to the embedded
SQLite store, which ``prefactor serve`` can then show.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self

from pydantic import AfterValidator, BeforeValidator, ConfigDict, Field, model_validator

from prefactor._errors import PrefactorConfigError
from prefactor._export.base import Sink
from prefactor._options import (
    Accepts,
    Flag,
    OptionalFlag,
    Options,
    SecretToken,
    Unfit,
    accepts,
)

if TYPE_CHECKING:
    from pydantic import SecretStr

__all__ = [
    "DEFAULT_AGENT_ID",
    "DEFAULT_DB_PATH",
    "ENV_VARS",
    "EnvVar",
    "HttpClientConfig",
    "PrefactorCoreConfig",
    "QueueConfig",
    "env_flag",
    "read_env",
]

DEFAULT_AGENT_ID = "default-agent"
DEFAULT_DB_PATH = Path(".prefactor") / "traces.db"

_log = logging.getLogger("prefactor.config")


def _http_url(value: str) -> str:
    value = value.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    if scheme not in ("http", "https") or not sep or not rest:
        raise Unfit
    return value


def _non_blank(value: str) -> str:
    if not value.strip():
        raise Unfit
    return value


ApiUrl = Annotated[str, AfterValidator(_http_url), Accepts("an http:// or https:// URL")]
Token = Annotated[SecretToken, Accepts("a non-empty string", secret=True)]
Name = Annotated[str, AfterValidator(_non_blank), Accepts("a non-empty string")]


class HttpClientConfig(Options):
    """How to reach the Prefactor REST API: prefactor-http's ``HttpClientConfig``.

    As with prefactor-http, the options may be given by position in this
    order, and changed after the object is built (each change is checked).
    ``api_token`` reads as the plain string; reprs, JSON dumps and error
    messages show it as ``'**********'``, and the SDK never logs it.

    The retry options govern :class:`prefactor.PrefactorApiClient` when it is
    used directly. The background exporter retries whole batches itself (see
    :class:`QueueConfig`) and so runs the client with its own retries off: one
    retry layer, never two multiplied.
    """

    _positional: ClassVar[bool] = True

    api_url: ApiUrl
    api_token: Token
    request_timeout: float = Field(default=30.0, gt=0, description="Seconds for a whole request.")
    connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to open a connection.")
    max_retries: int = Field(default=3, ge=0, description="Retries after the first attempt.")
    initial_retry_delay: float = Field(default=1.0, gt=0, description="First backoff, seconds.")
    max_retry_delay: float = Field(default=60.0, gt=0, description="Cap on one backoff, seconds.")
    retry_multiplier: float = Field(default=2.0, ge=1, description="Backoff growth per retry.")
    retry_on_status_codes: tuple[int, ...] = Field(
        default=(429, 500, 502, 503, 504), description="HTTP statuses worth retrying."
    )
    default_idempotency_key: str | None = Field(
        default=None,
        description="Accepted for prefactor-http code; unused, there too: items carry own keys.",
    )

    if TYPE_CHECKING:
        # The signature type checkers see: prefactor-http's, positional order included.
        def __init__(  # noqa: PLR0917
            self,
            api_url: str,
            api_token: str | SecretStr,
            request_timeout: float = ...,
            connect_timeout: float = ...,
            max_retries: int = ...,
            initial_retry_delay: float = ...,
            max_retry_delay: float = ...,
            retry_multiplier: float = ...,
            retry_on_status_codes: tuple[int, ...] = ...,
            default_idempotency_key: str | None = ...,
        ) -> None: ...

    @model_validator(mode="after")
    def _delays(self) -> Self:
        if self.initial_retry_delay > self.max_retry_delay:
            raise PrefactorConfigError(
                "initial_retry_delay must be <= max_retry_delay, "
                f"got {self.initial_retry_delay} > {self.max_retry_delay}",
                "initial_retry_delay",
            )
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> HttpClientConfig | None:
        """The config from ``PREFACTOR_API_URL`` and ``PREFACTOR_API_TOKEN``, if both are valid."""
        url = read_env("PREFACTOR_API_URL", environ)
        token = read_env("PREFACTOR_API_TOKEN", environ)
        if url is None or token is None:
            return None
        return cls(api_url=url, api_token=token)


class QueueConfig(Options):
    """The background exporter: batching, concurrency, retries and the bounded queue.

    ``num_workers``, ``max_retries`` and ``retry_delay_base`` are prefactor-core's,
    with its defaults: three retries, about 1, 2 and 4 seconds apart.
    """

    num_workers: int = Field(
        default=3, ge=1, le=20, description="Batches of different instances in flight at once."
    )
    max_retries: int = Field(
        default=3, ge=0, description="Retries of a batch after a 429, 5xx or network error."
    )
    retry_delay_base: float = Field(
        default=1.0,
        gt=0,
        description="First retry delay in seconds; doubles per retry, with jitter.",
    )
    retry_delay_max: float = Field(
        default=30.0, gt=0, description="Cap on one retry delay, seconds."
    )
    batch_size: int = Field(default=500, ge=1, le=10_000, description="Records per batch at most.")
    flush_interval: float = Field(
        default=0.5, gt=0, description="Seconds a partial batch waits before it is sent."
    )
    max_queue_size: int = Field(default=100_000, ge=1, description="Records held before `on_full`.")
    on_full: Literal["drop", "block"] = Field(
        default="drop", description="When the queue is full: drop and count, or block the caller."
    )
    block_timeout: float = Field(
        default=10.0,
        gt=0,
        description='Seconds an on_full="block" caller waits for room, then drops the record.',
    )
    shutdown_timeout: float = Field(
        default=5.0,
        ge=0,
        description="Seconds close() and the exit hook wait for the queue to drain.",
    )
    handle_sigterm: Flag = Field(
        default=True, description="Flush on SIGTERM as on exit, then end as SIGTERM would."
    )
    spool_path: Path | None = Field(
        default=None,
        description="SQLite file keeping what the API could not take, for the next start"
        " or `prefactor push`; None: such records are dropped and counted.",
    )


def _adopt_http_config(value: object) -> object:
    """prefactor-http's own ``HttpClientConfig`` (a dataclass) becomes ours, option by option."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return HttpClientConfig(**{f.name: getattr(value, f.name) for f in fields})
    return value


class PrefactorCoreConfig(Options):
    """Everything a :class:`prefactor.PrefactorCoreClient` (or :func:`prefactor.configure`) needs.

    Attributes:
        http_config: where the API is: an :class:`HttpClientConfig`, or
            prefactor-http's own. ``None`` reads ``PREFACTOR_API_URL`` and
            ``PREFACTOR_API_TOKEN``; if those are unset too, spans go to the
            embedded SQLite store at ``db_path``.
        queue_config: the background exporter's settings.
        schema_registry: span and quality schemas; a
            :class:`prefactor.SchemaRegistry`.
        db_path: the embedded store's file (``PREFACTOR_DB``, else
            ``./.prefactor/traces.db``).
        embedded_writer: where the embedded store applies batches
            (``PREFACTOR_EMBEDDED_WRITER``): ``"process"`` (the default), a
            writer process of its own, off the agent's GIL; ``"inline"``, the
            exporter's thread (see :class:`prefactor.LocalSink`).
        strict: raise :class:`prefactor.SchemaValidationError` on a schema
            violation (``PREFACTOR_STRICT``), instead of sending the span
            flagged.
        validation: check params and results against their schemas at all
            (default on; off skips the checks, strict mode included).
        sink: send records to this sink instead (tests use a ``MemorySink``),
            or to every sink of a sequence.
        agent_id: the agent of instances made without one
            (``PREFACTOR_AGENT_ID``). When neither is set, decorated code uses
            ``default-agent`` and ``PrefactorCoreClient`` leaves the agent out
            of the registration, as prefactor-core did: a deployment-scoped
            token names the agent itself.
        environment_id: sent on register (``PREFACTOR_ENVIRONMENT_ID``).
        otlp: also send every record over OTLP (``PREFACTOR_OTLP``), to the
            endpoint the standard ``OTEL_EXPORTER_OTLP_*`` variables name, beside
            the API or the embedded store (needs the ``otel`` extra).
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    http_config: Annotated[
        HttpClientConfig | None,
        BeforeValidator(_adopt_http_config),
        Accepts("an HttpClientConfig (prefactor's or prefactor_http's), or None"),
    ] = None
    queue_config: Annotated[QueueConfig, Accepts("a QueueConfig")] = Field(
        default_factory=QueueConfig
    )
    schema_registry: Any = None
    db_path: Path | None = None
    embedded_writer: Literal["process", "inline"] | None = None
    strict: OptionalFlag = None
    validation: Flag = True
    sink: Annotated[
        Sink | Sequence[Sink] | None,
        Accepts("a sink (MemorySink, LocalSink, HttpSink, ...), a sequence of sinks, or None"),
    ] = None
    agent_id: Name | None = None
    environment_id: Name | None = None
    otlp: OptionalFlag = None

    def resolved_http_config(self) -> HttpClientConfig | None:
        """``http_config``, else the one the environment describes, else ``None``."""
        return self.http_config if self.http_config is not None else HttpClientConfig.from_env()

    def resolved_db_path(self) -> Path:
        """``db_path``, else ``PREFACTOR_DB``, else ``./.prefactor/traces.db``."""
        found: Path | None = self._resolved("db_path")
        return found if found is not None else DEFAULT_DB_PATH

    def resolved_embedded_writer(self) -> Literal["process", "inline"]:
        """``embedded_writer``, else ``PREFACTOR_EMBEDDED_WRITER``, else ``"process"``."""
        found: Literal["process", "inline"] | None = self._resolved("embedded_writer")
        return found if found is not None else "process"

    def resolved_strict(self) -> bool:
        """``strict``, else ``PREFACTOR_STRICT``, else off."""
        return bool(self._resolved("strict"))

    def resolved_agent_id(self) -> str | None:
        """``agent_id``, else ``PREFACTOR_AGENT_ID``, else ``None``."""
        found: str | None = self._resolved("agent_id")
        return found

    def resolved_environment_id(self) -> str | None:
        """``environment_id``, else ``PREFACTOR_ENVIRONMENT_ID``, else ``None``."""
        found: str | None = self._resolved("environment_id")
        return found

    def resolved_otlp(self) -> bool:
        """``otlp``, else ``PREFACTOR_OTLP``, else off."""
        return bool(self._resolved("otlp"))

    def _resolved(self, option: str) -> Any:
        value = getattr(self, option)
        return value if value is not None else read_env(_VAR_OF[option])


class Switch(Options):
    """The rule of an on/off variable that no config object holds (see :func:`env_flag`)."""

    value: Flag = False


# --- the environment --------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class EnvVar:
    """One ``PREFACTOR_*`` variable: the option it sets and what applies without it."""

    name: str
    model: type[Options]
    option: str
    default: str
    label: str | None = None  # how messages name the option, when not by ``option``

    @classmethod
    def switch(cls, name: str, default: str) -> EnvVar:
        """An on/off variable, named in messages by its own name."""
        return cls(name, Switch, "value", default, name)


ENV_VARS: tuple[EnvVar, ...] = (
    EnvVar("PREFACTOR_API_URL", HttpClientConfig, "api_url", "no API: the local SQLite store"),
    EnvVar("PREFACTOR_API_TOKEN", HttpClientConfig, "api_token", "no API: the local SQLite store"),
    EnvVar("PREFACTOR_AGENT_ID", PrefactorCoreConfig, "agent_id", DEFAULT_AGENT_ID),
    EnvVar("PREFACTOR_ENVIRONMENT_ID", PrefactorCoreConfig, "environment_id", "none"),
    EnvVar("PREFACTOR_DB", PrefactorCoreConfig, "db_path", str(DEFAULT_DB_PATH)),
    EnvVar("PREFACTOR_EMBEDDED_WRITER", PrefactorCoreConfig, "embedded_writer", "process"),
    EnvVar("PREFACTOR_STRICT", PrefactorCoreConfig, "strict", "off"),
    EnvVar("PREFACTOR_OTLP", PrefactorCoreConfig, "otlp", "off"),
    EnvVar.switch("PREFACTOR_RAISE_INTERNAL_ERRORS", "off"),
    EnvVar.switch("PREFACTOR_OTLP_PAYLOADS", "on"),
)
_BY_NAME = {var.name: var for var in ENV_VARS}
_VAR_OF = {var.option: var.name for var in ENV_VARS if var.model is PrefactorCoreConfig}
_reported: set[tuple[str, str]] = set()


def read_env(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """The value of the variable ``name``, checked as its option; ``None`` if unset or invalid.

    An invalid value is logged once per process (as an error naming the
    variable, its value unless secret, and what it accepts) and ignored, so
    the option's default applies.
    """
    return _read(_BY_NAME[name], environ)


def _read(var: EnvVar, environ: Mapping[str, str] | None) -> Any:
    name = var.name
    raw = (os.environ if environ is None else environ).get(name, "")
    if not raw.strip():
        return None
    try:
        return var.model.check(var.option, raw, var.label)
    except PrefactorConfigError as exc:
        if (name, raw) not in _reported:
            _reported.add((name, raw))
            secret = accepts(var.model.model_fields[var.option]).secret
            shown = name if secret else f"{name}={raw!r}"
            _log.error("%s is ignored: %s; using the default (%s)", shown, exc, var.default)
        return None


def env_flag(name: str, environ: Mapping[str, str] | None = None) -> bool | None:
    """Read an on/off variable: ``None`` if unset, empty or invalid (logged: see :func:`read_env`).

    A variable missing from :data:`ENV_VARS` is read by the same on/off rule.
    """
    found: bool | None = _read(_BY_NAME.get(name) or EnvVar.switch(name, "its default"), environ)
    return found
