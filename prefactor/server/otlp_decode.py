"""OTLP/HTTP trace requests to plain span records: protobuf or JSON, gzip or not.

Everything a request can get wrong at the protocol level is an
:class:`OtlpDecodeError`, answered 400 with an OTLP ``Status`` body (in the
request's encoding). Spans whose ids are malformed are not a reason to refuse
the rest: they are counted and reported through ``partial_success``.

OTLP/JSON differs from protobuf's JSON mapping in one way that matters here:
trace and span ids are hex strings, not base64. They are converted before the
standard parser reads the document (unknown fields are ignored, as the
specification asks of receivers).
"""

from __future__ import annotations

import base64
import binascii
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from prefactor._errors import PrefactorError

__all__ = [
    "Decoded",
    "IngestSpan",
    "OtlpDecodeError",
    "decode_request",
    "plain_value",
    "status_body",
]

_ERROR = Status.StatusCode.STATUS_CODE_ERROR
_HAS_IS_REMOTE = 0x100
_IS_REMOTE = 0x200
_INVALID_ARGUMENT = 3  # google.rpc.Code


class OtlpDecodeError(PrefactorError, ValueError):
    """The request is not an OTLP trace export we can read (HTTP 400, or 415 for the type)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class IngestSpan:
    """One received span, decoded: what the mapping and the trace assembly read."""

    trace_id: bytes
    span_id: bytes
    parent_id: bytes | None
    remote_parent: bool
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    error: bool
    status_message: str
    exception_type: str | None
    exception_message: str | None
    service_name: str | None

    @property
    def is_root(self) -> bool:
        """No parent in this trace: none at all, or one in another process."""
        return self.parent_id is None or self.remote_parent


@dataclass(frozen=True, slots=True)
class Decoded:
    """The spans of one request, and those refused for malformed ids."""

    spans: list[IngestSpan]
    rejected: int
    reason: str


def plain_value(value: AnyValue) -> Any:
    """An ``AnyValue`` as a JSON-safe Python value (bytes as base64 text)."""
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [plain_value(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain_value(kv.value) for kv in value.kvlist_value.values}
    if which == "bytes_value":
        return base64.b64encode(value.bytes_value).decode()
    return getattr(value, which)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {kv.key: plain_value(kv.value) for kv in pairs}


def status_body(message: str, *, json: bool) -> bytes:
    """An OTLP error answer: a ``google.rpc.Status`` (code INVALID_ARGUMENT) with ``message``."""
    if json:
        return orjson.dumps({"code": _INVALID_ARGUMENT, "message": message})
    text = message.encode()
    # Field 1 (code, varint) and field 2 (message, length-delimited): the whole message,
    # written by hand so the server needs no googleapis package for one error type.
    return b"\x08" + _varint(_INVALID_ARGUMENT) + b"\x12" + _varint(len(text)) + text


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _decompress(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=47)  # gzip or zlib header, detected
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OtlpDecodeError(f"the body is not valid gzip: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise OtlpDecodeError(f"the decompressed body exceeds {limit} bytes", status=413)
    return out


_ID_KEYS = (("traceId", "trace_id"), ("spanId", "span_id"), ("parentSpanId", "parent_span_id"))


def _hex_ids_to_base64(document: Any) -> None:
    """Rewrite the hex ids of an OTLP/JSON document as the base64 that protobuf JSON expects."""
    if not isinstance(document, dict):
        raise OtlpDecodeError("the body must be a JSON object")
    for resource in _list(document, "resourceSpans", "resource_spans"):
        for scope in _list(resource, "scopeSpans", "scope_spans"):
            for span in _list(scope, "spans"):
                targets = [span, *_list(span, "links")]
                for target in targets:
                    for keys in _ID_KEYS:
                        for key in keys:
                            text = target.get(key) if isinstance(target, dict) else None
                            if isinstance(text, str):
                                try:
                                    raw = bytes.fromhex(text)
                                except ValueError:
                                    raise OtlpDecodeError(f"{key} is not hex: {text!r}") from None
                                target[key] = base64.b64encode(raw).decode()


def _list(node: Any, *keys: str) -> list[Any]:
    if not isinstance(node, dict):
        return []
    for key in keys:
        value = node.get(key)
        if isinstance(value, list):
            return value
    return []


def _parse(body: bytes, *, json: bool) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    if json:
        try:
            document = orjson.loads(body) if body.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise OtlpDecodeError(f"the body is not valid JSON: {exc}") from None
        _hex_ids_to_base64(document)
        try:
            json_format.ParseDict(document, request, ignore_unknown_fields=True)
        except (json_format.ParseError, binascii.Error, TypeError, ValueError) as exc:
            raise OtlpDecodeError(f"the body is not an OTLP trace request: {exc}") from None
        return request
    try:
        request.ParseFromString(body)
    except DecodeError as exc:
        raise OtlpDecodeError(f"the body is not an OTLP trace request: {exc}") from None
    return request


def _exception(span: Span) -> tuple[str | None, str | None]:
    for event in span.events:
        if event.name == "exception":
            attrs = _attributes(event.attributes)
            kind, message = attrs.get("exception.type"), attrs.get("exception.message")
            return (
                str(kind) if kind is not None else None,
                str(message) if message is not None else None,
            )
    return None, None


def _spans(request: ExportTraceServiceRequest) -> Iterator[tuple[Span, str | None]]:
    for resource_spans in request.resource_spans:
        service = _attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield span, service if isinstance(service, str) else None


def decode_request(
    body: bytes, *, content_type: str, content_encoding: str, max_bytes: int
) -> tuple[Decoded, bool]:
    """Decode one ``POST /v1/traces`` body; also say whether it was JSON (to answer in kind).

    Raises:
        OtlpDecodeError: the body cannot be read (400), is too large once
            decompressed (413), or has a type other than protobuf or JSON (415).
    """
    media = content_type.split(";", maxsplit=1)[0].strip().lower()
    if media not in ("application/x-protobuf", "application/protobuf", "application/json"):
        raise OtlpDecodeError(
            f"unsupported content type {media!r}: use application/x-protobuf or application/json",
            status=415,
        )
    json = media == "application/json"
    encoding = content_encoding.strip().lower()
    if encoding == "gzip":
        body = _decompress(body, max_bytes)
    elif encoding not in ("", "identity"):
        raise OtlpDecodeError(f"unsupported content encoding {encoding!r}", status=415)
    request = _parse(body, json=json)
    spans: list[IngestSpan] = []
    rejected, reason = 0, ""
    for span, service in _spans(request):
        parent = span.parent_span_id
        if len(span.trace_id) != 16 or not any(span.trace_id) or len(span.span_id) != 8:
            rejected += 1
            reason = "spans need a 16-byte trace_id and an 8-byte span_id"
            continue
        if parent and len(parent) != 8:
            rejected += 1
            reason = "parent_span_id must be 8 bytes or empty"
            continue
        exc_type, exc_message = _exception(span)
        spans.append(
            IngestSpan(
                trace_id=span.trace_id,
                span_id=span.span_id,
                parent_id=parent or None,
                remote_parent=bool(span.flags & _HAS_IS_REMOTE and span.flags & _IS_REMOTE),
                name=span.name,
                start_ns=span.start_time_unix_nano,
                end_ns=max(span.end_time_unix_nano, span.start_time_unix_nano),
                attributes=_attributes(span.attributes),
                error=span.status.code == _ERROR,
                status_message=span.status.message,
                exception_type=exc_type,
                exception_message=exc_message,
                service_name=service,
            )
        )
    return Decoded(spans, rejected, reason), json
