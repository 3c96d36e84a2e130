"""Where the OTLP sink sends, read from code or from the standard ``OTEL_*`` variables.

Code wins over the environment; a signal-specific variable
(``OTEL_EXPORTER_OTLP_TRACES_*``) wins over the general one
(``OTEL_EXPORTER_OTLP_*``), as the OpenTelemetry exporter specification asks.

================================================  ===========================================
variable                                          meaning (default)
================================================  ===========================================
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``            full URL of the traces endpoint, used as is
``OTEL_EXPORTER_OTLP_ENDPOINT``                   base URL; ``/v1/traces`` is appended
                                                  (``http://localhost:4318``)
``OTEL_EXPORTER_OTLP_[TRACES_]HEADERS``           ``key=value,key2=value2``, values URL-encoded
``OTEL_EXPORTER_OTLP_[TRACES_]TIMEOUT``           milliseconds per request (``10000``)
``OTEL_EXPORTER_OTLP_[TRACES_]COMPRESSION``       ``gzip`` or ``none`` (``none``)
``OTEL_EXPORTER_OTLP_[TRACES_]PROTOCOL``          only ``http/protobuf`` is supported
``OTEL_SERVICE_NAME``                             ``service.name`` of the resource
``OTEL_RESOURCE_ATTRIBUTES``                      more resource attributes, ``key=value,...``
``PREFACTOR_OTLP_PAYLOADS``                       ``0`` leaves params and results out (on)
================================================  ===========================================

Header values are secrets (they usually carry an API key): they are kept as
:class:`~pydantic.SecretStr` and never appear in a repr, a log line or an
exception message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Literal
from urllib.parse import unquote

from pydantic import ConfigDict, Field, SecretStr, field_validator

from prefactor._config import env_flag
from prefactor._options import CredentialFreeRepr

__all__ = ["DEFAULT_ENDPOINT", "OtlpConfig", "parse_key_values"]

DEFAULT_ENDPOINT = "http://localhost:4318/v1/traces"
_SUPPORTED_PROTOCOL = "http/protobuf"


def parse_key_values(text: str) -> dict[str, str]:
    """Parse the ``key=value,key2=value2`` lists of ``OTEL_*`` variables (values URL-decoded).

    Entries without ``=`` or with an empty key are skipped, as the specification allows.
    """
    out: dict[str, str] = {}
    for entry in text.split(","):
        key, sep, value = entry.partition("=")
        key = key.strip()
        if sep and key:
            out[unquote(key)] = unquote(value.strip())
    return out


class OtlpConfig(CredentialFreeRepr):
    """How to reach an OTLP/HTTP traces endpoint, and what to send there.

    Attributes:
        endpoint: the full traces URL (``.../v1/traces``).
        headers: extra request headers (an ``Authorization`` or API key); secret.
        timeout: seconds per request.
        compression: ``gzip`` or ``none``.
        payloads: send params and results (``gen_ai.tool.call.arguments`` /
            ``.result``, ``prefactor.params`` / ``.result``); they may hold
            user data, so one setting turns them all off.
        service_name: the resource's ``service.name``.
        resource_attributes: more resource attributes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    endpoint: str = DEFAULT_ENDPOINT
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    timeout: float = Field(10.0, gt=0)
    compression: Literal["gzip", "none"] = "none"
    payloads: bool = True
    service_name: str = "unknown_service"
    resource_attributes: dict[str, str] = Field(default_factory=dict)

    @field_validator("endpoint")
    @classmethod
    def _url(cls, value: str) -> str:
        value = value.strip()
        if not value.startswith(("http://", "https://")):
            raise ValueError("endpoint must start with http:// or https://")
        return value

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        endpoint: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: Literal["gzip", "none"] | None = None,
        payloads: bool | None = None,
        service_name: str | None = None,
    ) -> OtlpConfig:
        """The config the arguments describe, with the environment filling the gaps.

        Raises:
            ValueError: a variable holds a value we cannot use (a protocol
                other than ``http/protobuf``, a timeout that is not a number).
        """
        env = os.environ if environ is None else environ

        def pick(name: str) -> str:
            return (
                env.get(f"OTEL_EXPORTER_OTLP_TRACES_{name}")
                or env.get(f"OTEL_EXPORTER_OTLP_{name}")
            ) or ""

        protocol = pick("PROTOCOL").strip() or _SUPPORTED_PROTOCOL
        if protocol != _SUPPORTED_PROTOCOL:
            raise ValueError(
                f"OTLP protocol {protocol!r} is not supported; use {_SUPPORTED_PROTOCOL!r}"
            )
        if endpoint is None:
            endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip() or None
        if endpoint is None:
            base = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
            endpoint = base.rstrip("/") + "/v1/traces" if base else DEFAULT_ENDPOINT
        merged = parse_key_values(env.get("OTEL_EXPORTER_OTLP_HEADERS", ""))
        merged.update(parse_key_values(env.get("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "")))
        merged.update(headers or {})
        if timeout is None:
            text = pick("TIMEOUT").strip()
            try:
                timeout = float(text) / 1000 if text else 10.0
            except ValueError:
                raise ValueError("OTEL_EXPORTER_OTLP_TIMEOUT must be milliseconds") from None
        if compression is None:
            chosen = pick("COMPRESSION").strip().lower() or "none"
            if chosen not in ("gzip", "none"):
                raise ValueError(f"OTLP compression {chosen!r} is not supported: gzip or none")
            compression = "gzip" if chosen == "gzip" else "none"
        if payloads is None:
            flag = env_flag("PREFACTOR_OTLP_PAYLOADS", env)
            payloads = True if flag is None else flag
        resource = parse_key_values(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        if service_name is None:
            service_name = (
                env.get("OTEL_SERVICE_NAME", "").strip()
                or resource.get("service.name")
                or "unknown_service"
            )
        resource.pop("service.name", None)
        return cls(
            endpoint=endpoint,
            headers={k: SecretStr(v) for k, v in merged.items()},
            timeout=timeout,
            compression=compression,
            payloads=payloads,
            service_name=service_name,
            resource_attributes=resource,
        )
