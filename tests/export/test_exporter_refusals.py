"""A refused item costs itself only: no retry budget, and nothing behind it is lost."""

from __future__ import annotations

import httpx
from export_helpers import instance_closing, instance_opening, span_pair, stored_spans
from http_helpers import CountingTransport, Server, api_config, error

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._export.stats import ExportStats
from prefactor._ids import generate_pfid
from prefactor._records import Record, RecordQuality

FAST_RETRY = QueueConfig(retry_delay_base=0.001, retry_delay_max=0.01)


def deliver(transport: CountingTransport, records: list[Record]) -> ExportStats:
    """Send ``records`` through an HttpSink on ``transport``; the exporter's final counters."""
    exporter = Exporter(HttpSink(api_config(), transport=transport), FAST_RETRY)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    return exporter.stats()


def test_a_refused_span_spends_no_retry_and_the_instance_still_finishes(server: Server) -> None:
    instance = generate_pfid()
    orphan = span_pair(instance, parent_span_id=generate_pfid())
    good = span_pair(instance)
    records = [*instance_opening(instance), *orphan, *good, instance_closing(instance)]
    stats = deliver(server.transport(), records)
    assert (stats.sent, stats.rejected, stats.retried) == (5, 2, 0)
    assert server.store.get_instance(instance)["details"]["status"] == "complete"


def test_a_transient_failure_part_way_retries_only_the_unsettled_rest(server: Server) -> None:
    def second_request_fails(request: httpx.Request, n: int) -> httpx.Response | None:
        return error(503) if n == 1 else None

    instance = generate_pfid()
    orphan = span_pair(instance, parent_span_id=generate_pfid())
    good = span_pair(instance)
    records = [*instance_opening(instance), *orphan, *good, instance_closing(instance)]
    transport = server.transport(before=second_request_fails)
    stats = deliver(transport, records)
    sent_keys = [[i["idempotency_key"] for i in seen.body["items"]] for seen in transport.seen]
    rest = [good[0].idempotency_key, f"{instance}-finish"]
    assert sent_keys[1:] == [rest, rest]
    assert (stats.sent, stats.rejected, stats.retried) == (5, 2, 1)
    assert stored_spans(server.store, instance) == {good[0].span_id: (None, "complete")}
    assert server.store.get_instance(instance)["details"]["status"] == "complete"


def test_a_request_refused_for_two_items_rejects_each_once_and_sends_the_rest(
    server: Server,
) -> None:
    instance = generate_pfid()
    bad = [RecordQuality(instance, "score", {"value": 1}, key=f"bad-{n}") for n in (1, 2)]
    good = span_pair(instance)
    records: list[Record] = [
        *instance_opening(instance),
        bad[0],
        *good,
        bad[1],
        instance_closing(instance),
    ]
    stats = deliver(server.transport(), records)
    assert (stats.sent, stats.rejected, stats.retried) == (5, 2, 0)
    assert stored_spans(server.store, instance) == {good[0].span_id: (None, "complete")}
    assert server.store.get_instance(instance)["details"]["status"] == "complete"
