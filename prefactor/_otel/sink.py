"""``OtlpSink``: our records as OTLP spans, sent over HTTP/protobuf to any OpenTelemetry backend.

A plain :class:`~prefactor._export.sinks.base.Sink`: the exporter hands it the
records of one instance at a time, in order. Each instance has an
:class:`~prefactor._otel.spans.InstanceTrack` that turns records into ended
spans; the spans a batch completes go out in one ``POST``. The track is
updated only when that post succeeded (or was refused for good), so a batch
the exporter retries is fed to the same state and sends the same spans.

Answers follow the OTLP/HTTP specification: 2xx is delivered (a
``partial_success`` is logged), 429, 502, 503 and 504 are retried (with the
server's ``Retry-After``), any other status is a permanent refusal of the
batch's records.
"""

from __future__ import annotations

import gzip
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Literal

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from prefactor._export.base import unwritable
from prefactor._export.sinks.base import (
    Drop,
    ExportResult,
    Rejection,
    TransientExportError,
)
from prefactor._otel.config import OtlpConfig
from prefactor._otel.encode import encode_request, resource_attributes
from prefactor._otel.spans import InstanceTrack, OtelSpan
from prefactor._records import Record, wire_items
from prefactor._redaction import redact_credentials
from prefactor._version import __version__

__all__ = ["MAX_OPEN_INSTANCES", "OtlpSink"]

logger = logging.getLogger("prefactor.export")

MAX_OPEN_INSTANCES = 10_000
"""Unfinished instances tracked at once; past it the oldest one's open spans are forgotten."""

_RETRYABLE = frozenset({429, 502, 503, 504})
_inherited: list[httpx.AsyncClient] = []


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "")
    try:
        return max(float(value), 0.0)
    except ValueError:
        return None


class OtlpSink:
    """Sends our spans to an OTLP/HTTP endpoint (an OpenTelemetry Collector, or any backend).

    Every argument left out comes from the standard ``OTEL_EXPORTER_OTLP_*``
    variables (see :class:`OtlpConfig`).

    Args:
        endpoint: the traces URL, e.g. ``http://localhost:4318/v1/traces``.
        headers: extra request headers (API keys); never logged.
        timeout: seconds per request.
        compression: ``"gzip"`` or ``"none"``.
        payloads: send params and results as span attributes (default on;
            ``False`` or ``PREFACTOR_OTLP_PAYLOADS=0`` leaves them out).
        service_name: the resource's ``service.name``.
        config: a complete :class:`OtlpConfig` instead of the arguments above.
        transport: an httpx transport instead of the network (tests).

    Raises:
        ValueError: the arguments or the environment name something unusable
            (a protocol other than ``http/protobuf``, a malformed URL).
    """

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: Literal["gzip", "none"] | None = None,
        payloads: bool | None = None,
        service_name: str | None = None,
        config: OtlpConfig | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._config = config or OtlpConfig.from_env(
            endpoint=endpoint,
            headers=headers,
            timeout=timeout,
            compression=compression,
            payloads=payloads,
            service_name=service_name,
        )
        self._resource = resource_attributes(
            self._config.service_name, self._config.resource_attributes
        )
        self._transport = transport
        self._tracks: OrderedDict[str, InstanceTrack] = OrderedDict()
        self._client: httpx.AsyncClient | None = None
        self._pid = 0

    @property
    def config(self) -> OtlpConfig:
        """Where and how this sink sends."""
        return self._config

    def _http(self) -> httpx.AsyncClient:
        """This process's client, made on first use (again in a forked child)."""
        if self._client is not None and self._pid == os.getpid():
            return self._client
        if self._client is not None:
            _inherited.append(self._client)
        headers = {k: v.get_secret_value() for k, v in self._config.headers.items()}
        headers["Content-Type"] = "application/x-protobuf"
        headers["User-Agent"] = f"prefactor/{__version__}"
        if self._config.compression == "gzip":
            headers["Content-Encoding"] = "gzip"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=self._config.timeout, transport=self._transport
        )
        self._pid = os.getpid()
        return self._client

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        """Turn one instance's records into spans and send the completed ones.

        Raises:
            TransientExportError: the endpoint answered 429/502/503/504, or
                could not be reached; the batch may be retried as it is.
        """
        if not batch:
            return ExportResult()
        instance_id = batch[0].instance_id
        current = self._tracks.get(instance_id)
        track = (
            current.copy()
            if current is not None
            else InstanceTrack(instance_id, payloads=self._config.payloads)
        )
        spans: list[OtelSpan] = []
        dropped: list[Drop] = []
        for record in batch:
            try:
                for item in wire_items(record):
                    spans.extend(track.feed(item))
            except Exception as exc:  # one record that cannot be read costs only itself
                dropped.append(unwritable(record, exc))
        rejected: tuple[Rejection, ...] = ()
        if spans:
            refusal = await self._send(spans)
            if refusal is not None:
                code, message = refusal
                taken = {id(d.record) for d in dropped}
                rejected = tuple(Rejection(r, code, message) for r in batch if id(r) not in taken)
        self._keep(instance_id, track)
        return ExportResult(rejected=rejected, dropped=tuple(dropped))

    def _keep(self, instance_id: str, track: InstanceTrack) -> None:
        self._tracks.pop(instance_id, None)
        if track.finished and not track.open:
            return
        self._tracks[instance_id] = track
        if len(self._tracks) > MAX_OPEN_INSTANCES:
            dropped, old = self._tracks.popitem(last=False)
            logger.warning(
                "prefactor: OTLP sink forgot unfinished instance %s (%d open spans): "
                "more than %d instances are unfinished",
                dropped,
                len(old.open),
                MAX_OPEN_INSTANCES,
            )

    async def _send(self, spans: list[OtelSpan]) -> tuple[str, str] | None:
        """POST the spans; ``None`` when delivered, else the permanent refusal's code and message.

        Raises:
            TransientExportError: worth retrying.
        """
        body = encode_request(spans, self._resource)
        if self._config.compression == "gzip":
            body = gzip.compress(body, compresslevel=5)
        try:
            response = await self._http().post(self._config.endpoint, content=body)
        except httpx.TransportError as exc:
            raise TransientExportError(f"OTLP endpoint unreachable: {type(exc).__name__}") from None
        if response.status_code in _RETRYABLE:
            raise TransientExportError(
                f"OTLP endpoint answered HTTP {response.status_code}",
                retry_after=_retry_after(response),
            )
        if not 200 <= response.status_code < 300:
            logger.warning(
                "prefactor: OTLP endpoint %s refused %d spans: HTTP %d",
                self._config.endpoint,
                len(spans),
                response.status_code,
            )
            return f"http_{response.status_code}", f"OTLP endpoint answered {response.status_code}"
        self._log_partial(response.content, len(spans))
        return None

    def _log_partial(self, content: bytes, sent: int) -> None:
        if not content:
            return
        answer = ExportTraceServiceResponse()
        try:
            answer.ParseFromString(content)
        except Exception:  # a 2xx whose body is not the message: delivered all the same
            return
        partial = answer.partial_success
        if partial.rejected_spans or partial.error_message:
            logger.warning(
                "prefactor: OTLP endpoint rejected %d of %d spans: %s",
                partial.rejected_spans,
                sent,
                partial.error_message,
            )

    async def aclose(self) -> None:
        """Close this process's connection pool; spans of unfinished instances are not sent."""
        client, self._client = self._client, None
        if client is not None and self._pid == os.getpid():
            await client.aclose()

    def __repr__(self) -> str:
        return f"OtlpSink(endpoint={redact_credentials(self._config.endpoint)!r})"
