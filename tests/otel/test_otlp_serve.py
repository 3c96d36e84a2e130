"""``prefactor serve`` as a process: spans waiting for their root are stored when it stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from prefactor.server.store import Store

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "serve-otlp-token-0123456789"


def _child_only_request() -> bytes:
    request = ExportTraceServiceRequest()
    span = request.resource_spans.add().scope_spans.add().spans.add()
    span.trace_id = bytes.fromhex("11112222333344445555666677778888")
    span.span_id = bytes.fromhex("00000000000000aa")
    span.parent_span_id = bytes.fromhex("00000000000000bb")  # a root that never comes
    span.name = "execute_tool fetch"
    span.start_time_unix_nano = 1_770_000_000_000_000_000
    span.end_time_unix_nano = 1_770_000_001_000_000_000
    attribute = span.attributes.add()
    attribute.key = "gen_ai.operation.name"
    attribute.value.string_value = "execute_tool"
    return request.SerializeToString()


@pytest.mark.timeout(60)
def test_stopping_the_server_stores_the_spans_still_waiting_for_their_root(
    tmp_path: Path,
) -> None:
    db = tmp_path / "serve.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": TOKEN}
    argv = [sys.executable, "-m", "prefactor._cli", "serve", "--port", "0", "--db", str(db)]
    with subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            url = proc.stdout.readline().split("listening on ", 1)[1].strip()
            response = httpx.post(
                f"{url}/v1/traces",
                content=_child_only_request(),
                headers={
                    "Authorization": f"Bearer {TOKEN}",
                    "Content-Type": "application/x-protobuf",
                },
            )
            assert response.status_code == 200
            waiting = Store(db)
            assert waiting.list_instances()["summaries"] == []  # its root has not come
            waiting.close()
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
    store = Store(db)
    try:
        (inst,) = store.list_instances()["summaries"]
        (span,) = store.list_spans(agent_instance_id=inst["id"])["summaries"]
        assert (inst["status"], span["schema_name"]) == ("active", "tool:fetch")
    finally:
        store.close()
