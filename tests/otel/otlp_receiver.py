"""A loopback OTLP/HTTP receiver for the export tests: decodes what the sink sends.

It answers each request with the next status of its script (200 once the
script runs out), and keeps every accepted request decoded with
``opentelemetry-proto``, so tests read spans as the backend would.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


def plain(value: AnyValue) -> Any:
    """An ``AnyValue`` as a Python value."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [plain(v) for v in value.array_value.values]
    if which == "kvlist_value":
        return {kv.key: plain(kv.value) for kv in value.kvlist_value.values}
    return getattr(value, which) if which else None


@dataclass
class Received:
    """One decoded request and the headers it came with."""

    headers: dict[str, str]
    request: ExportTraceServiceRequest

    def spans(self) -> Iterator[Span]:
        for resource_spans in self.request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                yield from scope_spans.spans

    def resource(self) -> dict[str, Any]:
        (resource_spans,) = self.request.resource_spans
        return {kv.key: plain(kv.value) for kv in resource_spans.resource.attributes}


@dataclass
class OtlpReceiver:
    """The receiver's state: the script of statuses and what it accepted."""

    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def spans(self) -> list[Span]:
        with self.lock:
            return [span for request in self.received for span in request.spans()]

    def by_name(self) -> dict[str, Span]:
        return {span.name: span for span in self.spans()}


def attributes(span: Span) -> dict[str, Any]:
    """A span's attributes as a plain dict."""
    return {kv.key: plain(kv.value) for kv in span.attributes}


def serve(receiver: OtlpReceiver) -> ThreadingHTTPServer:
    """Start the receiver on a free loopback port (``receiver.url`` is its traces URL)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with receiver.lock:
                receiver.attempts += 1
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.received.append(Received(dict(self.headers.items()), request))
            answer = ExportTraceServiceResponse().SerializeToString() if status == 200 else b""
            self.send_response(status)
            if status in (429, 503):
                self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server
