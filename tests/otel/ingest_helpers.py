"""What the ingest tests share: a real OTel SDK pipeline into a real ``prefactor serve``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from prefactor.testing.server import LocalServer


@contextmanager
def otel_provider(
    server: LocalServer, *, compression: Compression = Compression.NoCompression
) -> Iterator[TracerProvider]:
    """A TracerProvider of its own (never the global one) exporting each span as it ends.

    One request per span: spans reach the server children first, the root last.
    """
    exporter = OTLPSpanExporter(
        endpoint=f"{server.url}/v1/traces",
        headers={"Authorization": f"Bearer {server.token}"},
        compression=compression,
        timeout=10,
    )
    provider = TracerProvider(resource=Resource.create({"service.name": "test-service"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    try:
        yield provider
    finally:
        provider.shutdown()


def tree(server: LocalServer) -> list[dict[str, Any]]:
    """Every stored instance with its spans, each span with its parent's type."""
    client = server.client
    out = []
    for inst in client.instances():
        spans = client.spans(inst["id"])
        types = {s["id"]: s["schema_name"] for s in spans}
        for span in spans:
            span["parent_type"] = types.get(span["parent_span_id"])
        out.append({**inst, "spans": spans})
    return out


def by_type(instance: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {span["schema_name"]: span for span in instance["spans"]}
