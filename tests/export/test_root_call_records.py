"""A ``@traced`` call outside any span is one record: its instance travels with its span.

The root span carries its instance's registration, start and finish when
nothing else of the instance was sent before it ends; otherwise the instance
is sent first, on its own, as it always was. Read back from the server's
store, over the HTTP sink, including what goes wrong on the way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_helpers import BASE_URL, CountingTransport, Server, api_config

from prefactor import _runtime as runtime
from prefactor import current_instance, traced
from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._export.spool import Spool
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.decorator import spec_of
from prefactor._tracing.tracer import Tracer

AGENT = "agent-roots"


@traced(name="roots_step")
def step(n: int) -> int:
    return n + 1


@traced(name="roots_broken")
def broken(n: int) -> int:
    raise KeyError(f"no such key: {n}")


@traced(name="roots_parent")
def parent(n: int) -> int:
    return step(n) + step(n + 1)


@traced(name="roots_slow")
async def slow() -> None:
    await asyncio.sleep(10)


@pytest.fixture
def traced_to() -> Iterator[Callable[..., Tracer]]:
    """``traced_to(sink, queue=None, registry=None)``: a tracer over ``sink``, current meanwhile."""
    made: list[tuple[Tracer, Any]] = []

    def install(
        sink: Any, queue: QueueConfig | None = None, registry: SchemaRegistry | None = None
    ) -> Tracer:
        tracer = Tracer(Exporter(sink, queue), registry or SchemaRegistry(), agent_id=AGENT)
        made.append((tracer, runtime.swap(tracer)))
        return tracer

    yield install
    for tracer, previous in reversed(made):
        runtime.swap(previous)
        tracer.close(10)


def instances(server: Server) -> list[dict[str, Any]]:
    return list(server.store.list_instances(agent_id=AGENT, page_size=100)["summaries"])


def spans_of(server: Server, instance_id: str) -> list[dict[str, Any]]:
    return list(server.store.list_spans(agent_instance_id=instance_id)["summaries"])


def kinds(transport: CountingTransport) -> list[str]:
    return [item["_type"] for item in transport.bulk_items()]


def test_a_root_call_is_one_record_and_its_instance_is_stored_whole(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    transport = server.transport()
    tracer = traced_to(HttpSink(api_config(), transport=transport))
    assert [step(n) for n in range(3)] == [1, 2, 3]
    assert tracer.flush(10)
    stats = tracer.stats()
    assert (stats["submitted"], stats["sent"], stats["rejected"]) == (3, 3, 0)
    assert (
        kinds(transport)
        == [
            "agent_instances/register",
            "agent_instances/start",
            "agent_spans/create",
            "agent_instances/finish",
        ]
        * 3
    )
    found = instances(server)
    assert len(found) == 3
    for summary in found:
        inst = server.store.get_instance(summary["id"])["details"]
        (span,) = spans_of(server, summary["id"])
        assert (inst["status"], span["status"]) == ("complete", "complete")
        assert inst["started_at"] <= span["started_at"]
        assert inst["finished_at"] == span["finished_at"]
    keys = [item["idempotency_key"] for item in transport.bulk_items()]
    assert keys[0] == f"{found[-1]['id']}-register"  # the oldest call came first
    assert keys[3] == f"{found[-1]['id']}-finish"


def test_a_root_call_that_raised_finishes_its_instance_failed(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    tracer = traced_to(HttpSink(api_config(), transport=server.transport()))
    with pytest.raises(KeyError):
        broken(7)
    assert tracer.flush(10)
    (summary,) = instances(server)
    (span,) = spans_of(server, summary["id"])
    assert server.store.get_instance(summary["id"])["details"]["status"] == "failed"
    assert span["status"] == "failed"
    assert span["result_payload"]["error"]["type"] == "KeyError"


def test_a_cancelled_root_call_is_stored_cancelled_in_a_failed_instance(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    tracer = traced_to(HttpSink(api_config(), transport=server.transport()))

    async def cancel_it() -> None:
        task = asyncio.ensure_future(slow())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(cancel_it())
    assert tracer.flush(10)
    (summary,) = instances(server)
    (span,) = spans_of(server, summary["id"])
    assert (server.store.get_instance(summary["id"])["details"]["status"], span["status"]) == (
        "failed",
        "cancelled",
    )


def test_a_root_call_with_children_sends_its_instance_first(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    transport = server.transport()
    tracer = traced_to(HttpSink(api_config(), transport=transport))
    assert parent(1) == 5
    assert tracer.flush(10)
    assert kinds(transport)[:3] == [
        "agent_instances/register",
        "agent_instances/start",
        "agent_spans/create",
    ]
    assert kinds(transport)[-1] == "agent_instances/finish"
    # register, start, the parent's create (active), two children, its finish, the instance's
    assert tracer.stats()["submitted"] == 7
    (summary,) = instances(server)
    stored = spans_of(server, summary["id"])
    assert sorted(s["schema_name"] for s in stored) == [
        "function:roots_parent",
        "function:roots_step",
        "function:roots_step",
    ]
    assert {s["status"] for s in stored} == {"complete"}
    assert server.store.get_instance(summary["id"])["details"]["status"] == "complete"


def test_quality_recorded_inside_a_root_call_goes_after_its_registration(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    transport = server.transport()
    tracer = traced_to(HttpSink(api_config(), transport=transport))

    @traced(name="roots_graded")
    def graded() -> None:
        inst = current_instance()
        assert inst is not None
        tracer.record_quality(inst, "accuracy", {"score": 1})

    graded()
    assert tracer.flush(10)
    assert tracer.stats()["rejected"] == 0
    assert kinds(transport)[:3] == [
        "agent_instances/register",
        "agent_instances/start",
        "agent_instances/record_quality",
    ]
    (summary,) = instances(server)
    assert server.store.get_instance(summary["id"])["details"]["status"] == "complete"
    assert len(spans_of(server, summary["id"])) == 1


def test_a_root_call_after_the_registry_changed_registers_the_new_schema_version(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    # Root calls share their registration's fields while the schema version stays the
    # same: a span type registered in between (a decorated function's first call does
    # it) must reach the next call's registration, and the store must know it.
    transport = server.transport()
    tracer = traced_to(HttpSink(api_config(), transport=transport))
    assert step(1) == 2
    assert tracer.flush(10)

    @traced(name="roots_late")
    def late(n: int) -> int:
        return n

    assert late(2) == 2
    assert step(3) == 4
    assert tracer.flush(10)
    registers = [
        item for item in transport.bulk_items() if item["_type"] == "agent_instances/register"
    ]
    assert len({item["id"] for item in registers}) == 3
    names = [
        {entry["name"] for entry in item["agent_schema_version"]["span_type_schemas"]}
        for item in registers
    ]
    assert names == [
        {"function:roots_step"},
        {"function:roots_step", "function:roots_late"},
        {"function:roots_step", "function:roots_late"},
    ]
    assert tracer.stats()["rejected"] == 0
    stored = {
        span["schema_name"]: span
        for summary in instances(server)
        for span in spans_of(server, summary["id"])
    }
    # Under the first schema version the store would flag the span type as unknown.
    assert not stored["function:roots_late"]["schema_violations"]
    assert stored["function:roots_late"]["result_payload"] == {"value": 2}


def test_a_refused_registration_counts_its_root_call_once(
    server: Server, traced_to: Callable[..., Tracer], caplog: pytest.LogCaptureFixture
) -> None:
    tracer = traced_to(HttpSink(api_config(), transport=server.transport()))
    spec = spec_of(step)
    assert spec is not None
    spec.compile(tracer)  # registers the span type in the tracer's registry, as a call would
    # The tracer's schema version identifier, already taken by different content: every
    # registration under it is refused, and so is all that follows it in its instance.
    ident = tracer.schema_version()["external_identifier"]
    server.store.register_instance(
        {
            "agent_id": AGENT,
            "agent_version": {"name": AGENT, "external_identifier": "other"},
            "agent_schema_version": {
                "external_identifier": ident,
                "span_schemas": {"something:else": {"type": "object"}},
            },
        }
    )
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        assert step(1) == 2
        assert tracer.flush(10)
    stats = tracer.stats()
    assert (stats["submitted"], stats["sent"], stats["rejected"]) == (1, 0, 1)
    # Each of its four items was refused (the three after the registration for want of
    # it); the sink counts the record, and warns about it, once.
    assert (stats["sinks"]["HttpSink"].sent, stats["sinks"]["HttpSink"].rejected) == (0, 1)
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert (
        len(warnings) == 1
        and "already registered with different content" in warnings[0].getMessage()
    )
    assert len(instances(server)) == 1  # only the one registered above


def test_a_root_call_kept_in_the_spool_is_sent_whole_by_the_next_exporter(
    server: Server, tmp_path: Path, traced_to: Callable[..., Tracer]
) -> None:
    spool_path = tmp_path / "spool.db"
    queue = QueueConfig(spool_path=spool_path, max_retries=0, shutdown_timeout=2)

    def dead(request: httpx.Request, n: int) -> Exception:
        return httpx.ConnectError("connection refused")

    tracer = traced_to(HttpSink(api_config(), transport=server.transport(before=dead)), queue)
    assert step(41) == 42
    tracer.close(10)
    assert (tracer.stats()["spooled"], tracer.stats()["sent"]) == (1, 0)
    assert Spool(spool_path).pending(BASE_URL) == 1  # one record, four items
    assert instances(server) == []

    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport), queue)
    assert exporter.flush(10)  # nothing submitted: it started for the spool
    exporter.close()
    assert len(kinds(transport)) == 4
    (summary,) = instances(server)
    (span,) = spans_of(server, summary["id"])
    assert server.store.get_instance(summary["id"])["details"]["status"] == "complete"
    assert span["status"] == "complete"
    assert Spool(spool_path).pending() == 0


def test_a_root_call_retried_after_a_lost_answer_is_stored_once(
    server: Server, traced_to: Callable[..., Tracer]
) -> None:
    def lost_once(request: httpx.Request, n: int) -> Exception | None:
        return httpx.ReadError("reset after the server applied it") if n == 0 else None

    queue = QueueConfig(retry_delay_base=0.01)
    tracer = traced_to(HttpSink(api_config(), transport=server.transport(after=lost_once)), queue)
    assert step(2) == 3
    assert tracer.flush(10)
    stats = tracer.stats()
    assert (stats["sent"], stats["retried"], stats["rejected"]) == (1, 1, 0)
    (summary,) = instances(server)
    assert len(spans_of(server, summary["id"])) == 1
    assert server.store.get_instance(summary["id"])["details"]["status"] == "complete"
