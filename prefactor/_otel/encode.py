"""Spans to an OTLP ``ExportTraceServiceRequest``, built with ``opentelemetry-proto`` directly.

Building the messages ourselves costs a fraction of going through the OTLP
exporter package, which wants OpenTelemetry SDK span objects made first
(``benchmarks/bench_otlp_export.py`` measures both).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf.internal.containers import RepeatedCompositeFieldContainer
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from prefactor._otel.semconv import SCHEMA_URL
from prefactor._otel.spans import AttributeValue, OtelSpan
from prefactor._version import __version__

__all__ = ["encode_request", "resource_attributes"]

_INTERNAL = Span.SpanKind.SPAN_KIND_INTERNAL
_ERROR = Status.StatusCode.STATUS_CODE_ERROR
# Every span we send is a local root or a child in this process: trace flags "sampled",
# and the "has is-remote" bit set with "is remote" clear.
_FLAGS = 0x01 | 0x100


def _set(target: AnyValue, value: AttributeValue) -> None:
    # bool before int: a bool is an int.
    if isinstance(value, str):
        target.string_value = value
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    else:
        add = target.array_value.values.add
        for item in value:
            add().string_value = item


def _fill(target: RepeatedCompositeFieldContainer[KeyValue], attrs: Mapping[str, Any]) -> None:
    # Filled in place: constructing messages and then adding them copies each one again.
    add = target.add
    for key, value in attrs.items():
        pair = add()
        pair.key = key
        _set(pair.value, value)


def resource_attributes(service_name: str, extra: Mapping[str, str]) -> dict[str, AttributeValue]:
    """The resource of every span we send: the service and the SDK that sent it."""
    return {
        **extra,
        "service.name": service_name,
        "telemetry.sdk.name": "prefactor",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": __version__,
    }


def encode_request(spans: Iterable[OtelSpan], resource: Mapping[str, AttributeValue]) -> bytes:
    """The serialised ``ExportTraceServiceRequest`` carrying ``spans`` under one resource."""
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    _fill(resource_spans.resource.attributes, resource)
    scope_spans = resource_spans.scope_spans.add()
    scope_spans.scope.name = "prefactor"
    scope_spans.scope.version = __version__
    scope_spans.schema_url = SCHEMA_URL
    add = scope_spans.spans.add
    for span in spans:
        out = add()
        out.trace_id = span.trace_id
        out.span_id = span.span_id
        if span.parent_span_id is not None:
            out.parent_span_id = span.parent_span_id
        out.flags = _FLAGS
        out.name = span.name
        out.kind = _INTERNAL
        out.start_time_unix_nano = span.start_ns
        out.end_time_unix_nano = span.end_ns
        _fill(out.attributes, span.attributes)
        if span.error:
            out.status.code = _ERROR
            out.status.message = span.status_message
    data: bytes = request.SerializeToString()
    return data
