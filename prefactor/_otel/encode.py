"""Spans to an OTLP ``ExportTraceServiceRequest``, built with ``opentelemetry-proto`` directly.

Building the messages ourselves costs a fraction of going through the OTLP
exporter package, which wants OpenTelemetry SDK span objects made first
(``benchmarks/bench_otlp_export.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import (
    AnyValue,
    ArrayValue,
    InstrumentationScope,
    KeyValue,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, Status

from prefactor._otel.semconv import SCHEMA_URL
from prefactor._otel.spans import AttributeValue, OtelSpan
from prefactor._version import __version__

__all__ = ["any_value", "encode_request", "resource_attributes"]

_INTERNAL = Span.SpanKind.SPAN_KIND_INTERNAL
_ERROR = Status.StatusCode.STATUS_CODE_ERROR
# Every span we send is a local root or a child in this process: trace flags "sampled",
# and the "has is-remote" bit set with "is remote" clear.
_FLAGS = 0x01 | 0x100


def any_value(value: AttributeValue) -> AnyValue:
    """One attribute value as an ``AnyValue`` (bool before int: a bool is an int)."""
    if isinstance(value, str):
        return AnyValue(string_value=value)
    if isinstance(value, bool):
        return AnyValue(bool_value=value)
    if isinstance(value, int):
        return AnyValue(int_value=value)
    if isinstance(value, float):
        return AnyValue(double_value=value)
    return AnyValue(array_value=ArrayValue(values=[AnyValue(string_value=v) for v in value]))


def _attributes(attrs: Mapping[str, AttributeValue]) -> list[KeyValue]:
    return [KeyValue(key=key, value=any_value(value)) for key, value in attrs.items()]


def resource_attributes(service_name: str, extra: Mapping[str, str]) -> dict[str, AttributeValue]:
    """The resource of every span we send: the service and the SDK that sent it."""
    return {
        **extra,
        "service.name": service_name,
        "telemetry.sdk.name": "prefactor",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }


def _span(span: OtelSpan) -> Span:
    out = Span(
        trace_id=span.trace_id,
        span_id=span.span_id,
        flags=_FLAGS,
        name=span.name,
        kind=_INTERNAL,
        start_time_unix_nano=span.start_ns,
        end_time_unix_nano=span.end_ns,
        attributes=_attributes(span.attributes),
    )
    if span.parent_span_id is not None:
        out.parent_span_id = span.parent_span_id
    if span.error:
        out.status.CopyFrom(Status(code=_ERROR, message=span.status_message))
    return out


def encode_request(spans: Iterable[OtelSpan], resource: Mapping[str, AttributeValue]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` carrying ``spans`` under one resource."""
    scope = ScopeSpans(
        scope=InstrumentationScope(name="prefactor", version=__version__),
        schema_url=SCHEMA_URL,
        spans=[_span(span) for span in spans],
    )
    request = ExportTraceServiceRequest(
        resource_spans=[
            ResourceSpans(resource=Resource(attributes=_attributes(resource)), scope_spans=[scope])
        ]
    )
    data: bytes = request.SerializeToString()
    return data
