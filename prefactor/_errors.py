"""The exception tree.

Two families share one root, :class:`PrefactorError`:

* the API client's errors (``PrefactorHttpError`` and below), raised by
  :class:`prefactor._api.client.PrefactorApiClient` and never into an agent by
  the background exporter, which logs and counts them instead;
* the SDK's errors (``PrefactorCoreError`` and below), with the names the
  earlier ``prefactor-core`` package used.

``SchemaValidationError`` is the one error the SDK raises into user code on
purpose: strict-mode schema validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "InstanceNotFoundError",
    "OperationError",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorConfigError",
    "PrefactorCoreError",
    "PrefactorError",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "PrefactorValidationError",
    "QueueClosedError",
    "SchemaValidationError",
    "SpanNotFoundError",
]


class PrefactorError(Exception):
    """Root of every exception this package raises."""


# --- API client ---------------------------------------------------------------------------


class PrefactorHttpError(PrefactorError):
    """Base of the errors raised by the REST API client."""


class PrefactorApiError(PrefactorHttpError):
    """The API answered with an error envelope.

    Attributes:
        code: the envelope's machine code (``"unknown"`` when absent).
        status_code: the HTTP status.
        errors: the envelope's ``errors`` map (empty when absent).
    """

    def __init__(
        self,
        message: str,
        code: str = "unknown",
        status_code: int | None = None,
        errors: Mapping[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status_code = status_code
        self.errors: dict[str, Any] = dict(errors or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        return f"{self.message} (HTTP {self.status_code}, code={self.code})"

    @property
    def is_transient(self) -> bool:
        """429 and 5xx are worth retrying; every other answer is final."""
        return self.status_code is not None and (self.status_code == 429 or self.status_code >= 500)


class PrefactorAuthError(PrefactorApiError):
    """401 or 403: the token is missing, wrong or not allowed."""


class PrefactorNotFoundError(PrefactorApiError):
    """404: the resource does not exist."""


class PrefactorValidationError(PrefactorApiError):
    """400 or 422: the request was malformed or failed validation; see ``errors``."""


class PrefactorRetryExhaustedError(PrefactorHttpError):
    """Every attempt failed with a transient error; ``last_error`` is the final one."""

    def __init__(self, message: str, last_error: BaseException | None = None) -> None:
        super().__init__(message)
        self.last_error = last_error


class PrefactorClientError(PrefactorHttpError):
    """The client was misused, for example called after it was closed."""


class PrefactorResponseContractError(PrefactorHttpError):
    """A 2xx answer that does not have the contract's shape."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        body_snippet: str | None = None,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body_snippet = body_snippet
        self.cause = cause


# --- SDK ----------------------------------------------------------------------------------


class PrefactorCoreError(PrefactorError):
    """Base of the SDK's own errors."""


class PrefactorConfigError(PrefactorCoreError, ValueError):
    """A configuration value is missing or invalid.

    The message names the option, what it accepts and (unless it is a secret)
    the value given, e.g. ``on_full must be one of 'drop', 'block', got 'explode'``.

    Attributes:
        option: the option's name (``None`` when the problem spans options).
    """

    def __init__(self, message: str, option: str | None = None) -> None:
        super().__init__(message)
        self.option = option


class ClientNotInitializedError(PrefactorCoreError):
    """The client was used before ``initialize()`` (or after ``close()``)."""


class ClientAlreadyInitializedError(PrefactorCoreError):
    """``initialize()`` was called twice."""


class OperationError(PrefactorCoreError):
    """An operation could not be carried out locally."""

    def __init__(self, message: str, operation_type: str | None = None) -> None:
        super().__init__(message)
        self.operation_type = operation_type


class InstanceNotFoundError(PrefactorCoreError, KeyError):
    """No agent instance with that id is known to this client."""


class SpanNotFoundError(PrefactorCoreError, KeyError):
    """No open span with that id is known to this client."""


class PrefactorTelemetryFailureError(PrefactorCoreError):
    """Kept for source compatibility with prefactor-core.

    This SDK never latches a failure: a rejected item is logged, counted in
    ``stats()`` and dropped, and the client carries on.
    """

    def __init__(
        self,
        message: str,
        *,
        cause: BaseException | None = None,
        operation_type: str | None = None,
        dropped_operations: int = 0,
    ) -> None:
        super().__init__(message)
        self.cause = cause
        self.operation_type = operation_type
        self.dropped_operations = dropped_operations


class PrefactorTerminatedError(PrefactorCoreError):
    """The platform terminated the agent instance; no new span may start in it."""

    def __init__(self, reason: str | None = None) -> None:
        text = "Agent instance terminated by the platform"
        super().__init__(f"{text}: {reason}" if reason else text)
        self.reason = reason


class QueueClosedError(PrefactorCoreError):
    """The export queue was closed."""


class SchemaValidationError(PrefactorCoreError, ValueError):
    """A span's params or result broke its schema (strict mode).

    Attributes:
        span_type: the span's schema name, e.g. ``"agent:llm"``.
        side: ``"params"`` or ``"result"``.
        path: the JSON path of the failing value, e.g. ``"$.messages[0].role"``.
        reason: what was wrong, in words.
        errors: every violation found, as ``(path, reason)`` pairs.
    """

    def __init__(
        self,
        span_type: str,
        side: str,
        path: str,
        reason: str,
        errors: list[tuple[str, str]] | None = None,
    ) -> None:
        self.span_type = span_type
        self.side = side
        self.path = path
        self.reason = reason
        self.errors = errors if errors is not None else [(path, reason)]
        more = len(self.errors) - 1
        suffix = f" (and {more} more)" if more > 0 else ""
        super().__init__(f"{span_type} {side} at {path}: {reason}{suffix}")
