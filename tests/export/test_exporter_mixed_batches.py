"""Batches that carry several instances: short instances share a request, order still holds.

Sinks that take mixed batches (the bulk sinks) get one request for many
short instances; an instance whose records ride in a batch waits for that
batch, retries included, exactly as for its own. Read back from the real
store behind the real app.
"""

from __future__ import annotations

import threading

import httpx
from export_helpers import instance_closing, instance_opening, span_pair, stored_spans
from http_helpers import Server, api_config, error

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._ids import generate_pfid
from prefactor._records import Record

FAST_RETRY = QueueConfig(retry_delay_base=0.001, retry_delay_max=0.01, max_retries=5)


def short_run(instance_id: str) -> tuple[list[Record], str]:
    """An instance with one span, as a ``@traced`` root call makes it; and the span's id."""
    create, finish = span_pair(instance_id)
    return [*instance_opening(instance_id), create, finish, instance_closing(instance_id)], (
        create.span_id
    )


def assert_complete(server: Server, instance_id: str, span_id: str) -> None:
    assert server.store.get_instance(instance_id)["details"]["status"] == "complete"
    assert stored_spans(server.store, instance_id) == {span_id: (None, "complete")}


def test_fifty_short_instances_arrive_complete_in_one_bulk_request(server: Server) -> None:
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport), FAST_RETRY)
    spans = {}
    for instance_id in [generate_pfid() for _ in range(50)]:
        records, spans[instance_id] = short_run(instance_id)
        for record in records:
            exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    assert transport.paths() == ["/api/v1/bulk"]
    for instance_id, span_id in spans.items():
        assert_complete(server, instance_id, span_id)


def test_an_instance_riding_in_a_failed_batch_sends_nothing_before_its_retry(
    server: Server,
) -> None:
    first, rider = generate_pfid(), generate_pfid()
    later, rider_span = short_run(rider)
    exporter: Exporter

    def fail_first_and_queue_more(request: httpx.Request, n: int) -> httpx.Response | None:
        if n == 0:
            # The rider's span and finish arrive while its register is in the failed batch.
            for record in later[2:]:
                exporter.submit(record)
            return error(503)
        return None

    transport = server.transport(before=fail_first_and_queue_more)
    exporter = Exporter(HttpSink(api_config(), transport=transport), FAST_RETRY)
    opening, first_span = short_run(first)
    for record in [*opening, *later[:2]]:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    stats = exporter.stats()
    assert (stats.rejected, stats.dropped_total, stats.retried) == (0, 0, 1)
    assert_complete(server, first, first_span)
    assert_complete(server, rider, rider_span)
    # The failed request was sent again as it was, before anything more of the rider.
    with transport.lock:
        requests = [[item["idempotency_key"] for item in s.body["items"]] for s in transport.seen]
    assert len(requests) == 3
    assert requests[1] == requests[0]
    assert f"{rider_span}-create" in requests[2]


def test_a_batch_worth_of_short_instances_is_sent_without_waiting_for_the_interval(
    server: Server,
) -> None:
    runs = [short_run(generate_pfid()) for _ in range(20)]
    second_answered = threading.Event()
    exporter: Exporter

    def queue_the_runs(request: httpx.Request, n: int) -> None:
        if n == 0:
            for records, _ in runs:
                for record in records:
                    exporter.submit(record)

    def note(request: httpx.Request, n: int) -> None:
        if n == 1:
            second_answered.set()

    transport = server.transport(before=queue_the_runs, after=note)
    config = QueueConfig(batch_size=20, flush_interval=60)
    exporter = Exporter(HttpSink(api_config(), transport=transport), config)
    first, first_span = short_run(generate_pfid())
    for record in first:
        exporter.submit(record)
    assert exporter.flush(10)  # its request queues the twenty runs, which no flush asks for
    # No instance of them holds a batch's worth (twenty records): together they hold five.
    assert second_answered.wait(10)
    with transport.lock:
        second = transport.seen[1].body["items"]
    assert len(second) == 16  # four whole runs: register, start, span (coalesced), finish
    exporter.close(timeout=10)
    assert_complete(server, first[0].instance_id, first_span)
    for records, span_id in runs:
        assert_complete(server, records[0].instance_id, span_id)
