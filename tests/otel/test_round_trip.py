"""Our SDK exports OTLP, ``prefactor serve`` ingests it: the stored tree is what the SDK recorded.

The SDK records into memory once; the same records then go to the embedded
store directly (``LocalSink``, what the SDK stores without OpenTelemetry) and
through ``OtlpSink`` into ``prefactor serve``. The two stores must hold the
same instances and the same spans: ids, parents, types, statuses, params,
results, violations and times.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from prefactor import _runtime as runtime
from prefactor._client import PrefactorCoreClient
from prefactor._config import PrefactorCoreConfig
from prefactor._export.sinks import LocalSink, MemorySink
from prefactor._records import Record
from prefactor._tracing.agents import agent, tool
from prefactor._tracing.decorator import traced
from prefactor.otel import OtlpSink
from prefactor.server.store import Store
from prefactor.testing.server import LocalServer

SPAN_FIELDS = (
    "id",
    "parent_span_id",
    "schema_name",
    "status",
    "payload",
    "result_payload",
    "schema_violations",
    "started_at",
    "finished_at",
)


@tool
def rt_convert(amount: float, currency: str) -> float:
    """Convert an amount to euros."""
    return amount * 0.9


@tool
def rt_describe(count: int) -> str:
    """Describe a count."""
    return f"{count} entries"


@tool
def rt_audit(entry: str) -> None:
    """Always refuses."""
    raise PermissionError(f"cannot audit {entry}")


@traced
def rt_summarise(values: list[float]) -> dict[str, float]:
    return {"total": sum(values)}


@agent(agent_id="ledger", version="7", name="bookkeeper")
def rt_bookkeeper(amounts: list[float]) -> dict[str, float]:
    values = [rt_convert(a, "USD") for a in amounts]
    rt_describe("two")  # type: ignore[arg-type]  # a lenient violation, flagged
    try:
        rt_audit("ledger")
    except PermissionError:
        pass
    return rt_summarise(values)


async def _core_run(memory: MemorySink) -> None:
    """An instance driven through the explicit core API: no root agent span."""
    config = PrefactorCoreConfig(sink=memory, strict=False)
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(
            agent_id="pipeline", agent_version={"name": "etl", "external_identifier": "v1"}
        )
        await instance.start()
        async with instance.span("step:extract") as extract:
            await extract.start({"source": "s3://bucket"})
            await extract.complete({"rows": 3})
        async with instance.span("step:load") as load:
            await load.start({"rows": 3})
            await load.fail({"error": {"type": "IOError", "message": "disk full"}})
        await instance.finish(status="failed")


def _groups(records: list[Record]) -> list[list[Record]]:
    groups: dict[str, list[Record]] = {}
    for record in records:
        groups.setdefault(record.instance_id, []).append(record)
    return list(groups.values())


def _fields(span: dict[str, Any]) -> dict[str, Any]:
    fields = {k: span[k] for k in SPAN_FIELDS}
    # No violations, stored as [] by stores that keep a declared empty list, or as None.
    fields["schema_violations"] = fields["schema_violations"] or None
    return fields


def _snapshot(store: Store) -> dict[str, Any]:
    out = {}
    for inst in store.list_instances()["summaries"]:
        spans = store.list_spans(agent_instance_id=inst["id"])["summaries"]
        out[inst["id"]] = {
            "agent_id": inst["agent_id"],
            "status": inst["status"],
            "spans": sorted((_fields(span) for span in spans), key=lambda s: s["id"]),
        }
    return out


def test_spans_exported_over_otlp_and_ingested_equal_the_spans_stored_directly(
    tmp_path: Path, server: LocalServer
) -> None:
    memory = MemorySink()
    runtime.configure(sink=memory, strict=False)
    rt_bookkeeper([10.0, 20.0])
    assert runtime.flush(10)
    asyncio.run(_core_run(memory))
    groups = _groups(memory.records)
    assert len(groups) == 2

    direct = LocalSink(tmp_path / "direct.db")
    otlp = OtlpSink(f"{server.url}/v1/traces", headers={"Authorization": f"Bearer {server.token}"})

    async def deliver() -> None:
        for group in groups:
            for sink in (direct, otlp):
                result = await sink.export(group)
                assert result.rejected == ()
        await direct.aclose()
        await otlp.aclose()

    asyncio.run(deliver())
    expected = Store(tmp_path / "direct.db")
    via_otlp = Store(server.db_path)
    try:
        want, got = _snapshot(expected), _snapshot(via_otlp)
    finally:
        expected.close()
        via_otlp.close()
    assert got == want
    statuses = sorted(inst["status"] for inst in got.values())
    assert statuses == ["complete", "failed"]
    flagged = [s for inst in got.values() for s in inst["spans"] if s["schema_violations"]]
    assert [s["schema_name"] for s in flagged] == ["tool:rt_describe"]
