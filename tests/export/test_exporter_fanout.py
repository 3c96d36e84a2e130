"""One exporter, several sinks: every sink gets every record, failures are retried per sink."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import httpx
import pytest
from export_helpers import instance_closing, instance_opening, span_pair, spans, stored_spans
from http_helpers import Server, api_config, error, make_server

import prefactor
from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink, LocalSink
from prefactor._ids import generate_pfid
from prefactor._records import Record
from prefactor.server.store import Store

FAST_RETRY = QueueConfig(retry_delay_base=0.001, retry_delay_max=0.01)


def test_every_sink_stores_every_record_of_the_batch(server: Server, tmp_path: Path) -> None:
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance), *spans(instance, 50)]
    records.append(instance_closing(instance))
    exporter = Exporter(
        [HttpSink(api_config(), transport=server.transport()), LocalSink(tmp_path / "local.db")]
    )
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    local = Store(tmp_path / "local.db")
    assert stored_spans(local, instance) == stored_spans(server.store, instance)
    assert len(stored_spans(local, instance)) == 50
    assert local.get_instance(instance)["details"]["status"] == "complete"
    local.close()
    stats = exporter.stats()
    assert (stats.sent, stats.rejected, dict(stats.dropped)) == (len(records), 0, {})
    assert [(name, s.sent) for name, s in stats.sinks.items()] == [
        ("HttpSink", len(records)),
        ("LocalSink", len(records)),
    ]


def test_a_failing_sink_is_retried_alone_and_the_healthy_one_gets_each_item_once(
    tmp_path: Path,
) -> None:
    healthy, flaky = make_server(tmp_path / "a.db"), make_server(tmp_path / "b.db")
    down = 3

    def fail_first(request: httpx.Request, n: int) -> httpx.Response | None:
        return error(503) if n < down else None

    healthy_transport = healthy.transport()
    flaky_transport = flaky.transport(before=fail_first)
    exporter = Exporter(
        [
            HttpSink(api_config(), transport=healthy_transport),
            HttpSink(api_config(), transport=flaky_transport),
        ],
        FAST_RETRY,
    )
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance), *spans(instance, 5)]
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    keys = [item["idempotency_key"] for item in healthy_transport.bulk_items()]
    assert len(keys) == 7 and set(Counter(keys).values()) == {1}
    assert len(flaky_transport.seen) == down + 1
    assert stored_spans(flaky.store, instance) == stored_spans(healthy.store, instance)
    stats = exporter.stats()
    assert (stats.sent, stats.retried) == (len(records), down)
    assert {name: s.retried for name, s in stats.sinks.items()} == {"HttpSink": 0, "HttpSink#2": 3}
    assert stats.sinks["HttpSink#2"].last_error is not None
    healthy.store.close()
    flaky.store.close()


def test_a_record_one_sink_refuses_counts_as_rejected_and_the_other_sink_keeps_it(
    server: Server, tmp_path: Path
) -> None:
    instance = generate_pfid()
    opening = instance_opening(instance)
    exporter = Exporter(LocalSink(tmp_path / "local.db"))
    for record in opening:
        exporter.submit(record)
    assert exporter.flush(10)  # only the local store knows the instance
    exporter.close()
    create, finish = span_pair(instance)
    both = Exporter(
        [HttpSink(api_config(), transport=server.transport()), LocalSink(tmp_path / "local.db")]
    )
    for record in (create, finish):
        both.submit(record)
    assert both.flush(10)
    both.close()
    stats = both.stats()
    assert (stats.sent, stats.rejected) == (0, 2)
    assert {name: (s.sent, s.rejected) for name, s in stats.sinks.items()} == {
        "HttpSink": (0, 2),
        "LocalSink": (2, 0),
    }
    local = Store(tmp_path / "local.db")
    assert stored_spans(local, instance) == {create.span_id: (None, "complete")}
    local.close()


def test_close_waits_for_every_sink_and_closes_each(server: Server, tmp_path: Path) -> None:
    local = LocalSink(tmp_path / "local.db")
    remote = HttpSink(api_config(), transport=server.transport())
    exporter = Exporter([remote, local], QueueConfig(flush_interval=60))
    instance = generate_pfid()
    for record in [*instance_opening(instance), *spans(instance, 3)]:
        exporter.submit(record)
    assert exporter.close()
    assert len(stored_spans(server.store, instance)) == 3
    store = Store(local.path)
    assert len(stored_spans(store, instance)) == 3
    store.close()


def test_configure_with_sinks_sends_traced_calls_to_each(tmp_path: Path) -> None:
    first, second = tmp_path / "first.db", tmp_path / "second.db"
    prefactor.configure(sinks=[LocalSink(first), LocalSink(second)], agent_id="fan-out")

    @prefactor.agent(agent_id="fan-out")
    def run(question: str) -> str:
        return question.upper()

    try:
        run("hello")
        assert prefactor.flush(10)
    finally:
        prefactor.shutdown()
    stored = []
    for path in (first, second):
        store = Store(path)
        [instance] = store.list_instances(agent_id="fan-out")["summaries"]
        stored.append(stored_spans(store, instance["id"]))
        store.close()
    assert stored[0] == stored[1]
    assert len(stored[0]) == 1


def test_configure_refuses_sink_and_sinks_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sink or sinks"):
        prefactor.configure(sink=LocalSink(tmp_path / "a.db"), sinks=[LocalSink(tmp_path / "b")])


def test_an_exporter_needs_a_sink() -> None:
    with pytest.raises(ValueError, match="at least one sink"):
        Exporter([])
