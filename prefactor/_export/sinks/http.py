"""The Prefactor API as a destination: one ``POST /api/v1/bulk`` per batch.

The API client runs with its own retries off; the exporter retries whole
batches, so there is one retry layer, never two multiplied. Answers are sorted
into three kinds: transient (429, 5xx, network errors, timeouts, an answer not
shaped like the contract) raise :class:`TransientExportError`; a permanent
refusal rejects the items it names; 404/405 from the bulk endpoint, or an item
answered ``unsupported_type``, switches to the single endpoints (remembered
for the sink's lifetime).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import httpx

from prefactor._api.client import PrefactorApiClient
from prefactor._api.models import SpanResponse
from prefactor._config import HttpClientConfig
from prefactor._errors import (
    PrefactorApiError,
    PrefactorHttpError,
    PrefactorResponseContractError,
)
from prefactor._export.sinks.base import TransientExportError
from prefactor._export.sinks.bulk import (
    BulkRequestError,
    BulkSink,
    BulkUnsupportedError,
    Output,
)
from prefactor._records import JSONDict
from prefactor._redaction import redact_credentials
from prefactor._sdk import sdk_header

__all__ = ["HttpSink"]

# Clients made before a fork: the child neither uses nor closes them (their
# connections belong to the parent), it keeps them referenced and makes its own.
_inherited: list[PrefactorApiClient] = []


def _transient(exc: BaseException) -> TransientExportError:
    retry_after = getattr(exc, "retry_after", None)
    return TransientExportError(
        f"{type(exc).__name__}: {exc}",
        retry_after=float(retry_after) if isinstance(retry_after, (int, float)) else None,
    )


def _is_transient(exc: PrefactorHttpError) -> bool:
    if isinstance(exc, PrefactorApiError):
        return exc.is_transient
    # A 2xx answer of the wrong shape is retried, then dropped: never a latch.
    return isinstance(exc, PrefactorResponseContractError)


def _span_output(response: SpanResponse) -> Output:
    control = response.control
    return {
        "status": "success",
        "control": control.model_dump() if control is not None else None,
    }


class HttpSink(BulkSink):
    """Delivers batches to the Prefactor API (or ``prefactor serve``).

    Each batch waits to be sent as its request's body, encoded once (bytes,
    which the garbage collector does not track).

    Args:
        config: the API's address, token and timeouts (its retry fields are
            not used here: the exporter retries).
        transport: an httpx transport instead of the network (tests pass
            ``httpx.ASGITransport(app=...)``).
        sdk_header_entry: an integration's ``name@version``, sent before ours
            in ``X-Prefactor-SDK``.
    """

    def __init__(
        self,
        config: HttpClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sdk_header_entry: str | None = None,
    ) -> None:
        super().__init__()
        self._config = config.model_copy(update={"max_retries": 0})
        self._transport = transport
        self._sdk_header = sdk_header(sdk_header_entry)
        self._client: PrefactorApiClient | None = None
        self._pid = 0

    @property
    def spool_destination(self) -> str:
        """The API's URL: records it could not take are spooled under it."""
        return self._config.api_url

    def _api(self) -> PrefactorApiClient:
        """The client of this process, made on first use (again in a forked child)."""
        if self._client is not None and self._pid == os.getpid():
            return self._client
        if self._client is not None:
            _inherited.append(self._client)
        self._client = PrefactorApiClient(
            self._config, transport=self._transport, sdk_header=self._sdk_header
        )
        self._pid = os.getpid()
        return self._client

    async def _bulk(
        self, body: bytes, keys: list[str], items: list[JSONDict] | None
    ) -> Mapping[str, Output]:
        try:
            outputs = await self._api().bulk_outcomes(body, keys)
        except httpx.TransportError as exc:
            raise _transient(exc) from None
        except PrefactorHttpError as exc:
            if _is_transient(exc):
                raise _transient(exc) from None
            if isinstance(exc, PrefactorApiError):
                if exc.status_code in (404, 405):
                    raise BulkUnsupportedError(str(exc)) from None
                raise BulkRequestError(
                    exc.status_code or 0, exc.code, exc.message, exc.errors
                ) from None
            raise BulkRequestError(0, "client_error", str(exc)) from None
        return outputs

    async def _single(self, item: JSONDict) -> Output:
        kind = item["_type"]
        try:
            return await self._call_single(kind, item)
        except httpx.TransportError as exc:
            raise _transient(exc) from None
        except PrefactorHttpError as exc:
            if _is_transient(exc):
                raise _transient(exc) from None
            if not isinstance(exc, PrefactorApiError):
                return {"status": "error", "code": "client_error", "message": str(exc)}
            if exc.status_code == 409 and kind == "agent_instances/finish":
                return {"status": "success"}  # already terminal
            return {"status": "error", "code": exc.code, "message": exc.message}

    async def _call_single(self, kind: str, item: dict[str, Any]) -> Output:
        """Send one bulk item through its single endpoint (the REST body it stands for)."""
        api, key = self._api(), item["idempotency_key"]
        if kind == "agent_spans/create":
            details = dict(item["details"])
            return _span_output(
                await api.create_span(
                    details.pop("agent_instance_id"),
                    details.pop("schema_name"),
                    details.pop("status"),
                    payload=details.get("payload"),
                    result_payload=details.get("result_payload"),
                    id=details.get("id"),
                    parent_span_id=details.get("parent_span_id"),
                    started_at=details.get("started_at"),
                    finished_at=details.get("finished_at"),
                    idempotency_key=key,
                    schema_violations=details.get("schema_violations"),
                )
            )
        if kind == "agent_spans/finish":
            return _span_output(
                await api.finish_span(
                    item["agent_span_id"],
                    item.get("status"),
                    result_payload=item.get("result_payload"),
                    timestamp=item.get("timestamp"),
                    idempotency_key=key,
                    schema_violations=item.get("schema_violations"),
                )
            )
        if kind == "agent_instances/register":
            params = {k: v for k, v in item.items() if k not in ("_type", "idempotency_key")}
            await api.register_instance(**params, idempotency_key=key)
        elif kind == "agent_instances/start":
            await api.start_instance(item["agent_instance_id"], item.get("timestamp"), key)
        elif kind == "agent_instances/finish":
            await api.finish_instance(
                item["agent_instance_id"], item.get("status"), item.get("timestamp"), key
            )
        elif kind == "agent_instances/record_quality":
            await api.record_quality(item["agent_instance_id"], item["name"], item["payload"], key)
        else:
            return {"status": "error", "code": "unsupported_type", "message": kind}
        return {"status": "success"}

    async def aclose(self) -> None:
        """Close this process's connection pool."""
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            await client.aclose()

    def __repr__(self) -> str:
        return f"HttpSink(api_url={redact_credentials(self._config.api_url)!r})"
