"""HttpSink against the real API app in process: complete, exact, and robust to faults."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from pathlib import Path

import httpx
import pytest
from export_helpers import instance_closing, instance_opening, span_pair, stored_spans
from http_helpers import TOKEN, CountingTransport, Server, api_config, error

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._ids import generate_pfid
from prefactor._records import Record, RecordQuality
from prefactor._version import __version__
from prefactor.server.app import create_app
from prefactor.server.store import Store

FAST_RETRY = {"retry_delay_base": 0.001, "retry_delay_max": 0.02, "max_retries": 20}


Expected = dict[str, dict[str, tuple[str | None, str]]]


def build_instance(rng: random.Random, spans_count: int) -> tuple[list[Record], Expected]:
    """An instance's records with nested spans (parents created first) and what it should store."""
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance)]
    expected: dict[str, tuple[str | None, str]] = {}
    recent: list[str] = []
    late_finishes: list[Record] = []
    for _ in range(spans_count):
        parent = rng.choice([None, *recent[-5:]])
        create, finish = span_pair(instance, parent)
        records.append(create)
        expected[create.span_id] = (parent, "complete")
        recent.append(create.span_id)
        if rng.random() < 0.7:
            records.append(finish)
        else:
            late_finishes.append(finish)
    records.extend(late_finishes)
    records.append(instance_closing(instance))
    return records, {instance: expected}


def assert_stored(server: Server, expected: Expected) -> None:
    for instance, spans in expected.items():
        assert stored_spans(server.store, instance) == spans
        assert server.store.get_instance(instance)["details"]["status"] == "complete"


async def test_ten_thousand_spans_from_twenty_tasks_arrive_complete_and_parented(
    server: Server,
) -> None:
    rng = random.Random(7)
    built = [build_instance(rng, 500) for _ in range(20)]
    exporter = Exporter(HttpSink(api_config(), transport=server.transport()))

    async def agent(records: list[Record]) -> None:
        for i, record in enumerate(records):
            exporter.submit(record)
            if i % 10 == 0:
                await asyncio.sleep(0)

    await asyncio.gather(*(agent(records) for records, _ in built))
    assert await exporter.aflush(60)
    for _, expected in built:
        assert_stored(server, expected)
    stats = exporter.stats()
    total = sum(len(records) for records, _ in built)
    assert (stats.submitted, stats.sent, stats.rejected, dict(stats.dropped)) == (
        total,
        total,
        0,
        {},
    )
    await exporter.aclose()


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(lambda r, n: error(500) if n % 5 == 4 else None, None, id="500-before"),
        pytest.param(
            lambda r, n: error(429, "rate_limited", {"Retry-After": "0"}) if n % 5 == 2 else None,
            None,
            id="429-before",
        ),
        pytest.param(None, lambda r, n: error(503) if n % 5 == 1 else None, id="503-after-commit"),
        pytest.param(
            None,
            lambda r, n: httpx.Response(200, content=b"<html>proxy</html>") if n % 5 == 3 else None,
            id="200-not-json-after-commit",
        ),
        pytest.param(
            lambda r, n: httpx.ReadTimeout("slow") if n % 5 == 0 else None, None, id="timeout"
        ),
    ],
)
def test_a_server_failing_one_request_in_five_loses_and_duplicates_nothing(
    server: Server, before: object, after: object
) -> None:
    rng = random.Random(11)
    built = [build_instance(rng, 60) for _ in range(4)]
    transport = server.transport(before=before, after=after)  # type: ignore[arg-type]
    exporter = Exporter(
        HttpSink(api_config(), transport=transport), QueueConfig(batch_size=20, **FAST_RETRY)
    )
    for records, _ in built:
        for record in records:
            exporter.submit(record)
    assert exporter.flush(60)
    for _, expected in built:
        assert_stored(server, expected)
    stats = exporter.stats()
    assert stats.retried > 0
    assert (stats.sent, stats.rejected, dict(stats.dropped)) == (stats.submitted, 0, {})
    exporter.close()


def test_a_server_down_for_a_while_receives_everything_when_it_comes_back(
    server: Server,
) -> None:
    down_until = 8

    def down(request: httpx.Request, n: int) -> Exception | None:
        return httpx.ConnectError("connection refused") if n < down_until else None

    records, expected = build_instance(random.Random(3), 50)
    transport = server.transport(before=down)
    exporter = Exporter(HttpSink(api_config(), transport=transport), QueueConfig(**FAST_RETRY))
    for record in records:
        exporter.submit(record)
    assert exporter.flush(30)
    assert_stored(server, expected)
    assert exporter.stats().retried == down_until
    assert len(transport.seen) == down_until + 1
    exporter.close()


def test_flush_returns_within_its_timeout_against_a_dead_server(server: Server) -> None:
    def dead(request: httpx.Request, n: int) -> Exception:
        return httpx.ConnectError("connection refused")

    exporter = Exporter(HttpSink(api_config(), transport=server.transport(before=dead)))
    for record in span_pair(generate_pfid()):
        exporter.submit(record)
    start = time.monotonic()
    assert not exporter.flush(0.5)
    assert time.monotonic() - start < 3
    exporter.close(timeout=0)


def test_a_short_span_costs_one_bulk_item_and_a_batch_one_request(server: Server) -> None:
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance)]
    for _ in range(100):
        records.extend(span_pair(instance))
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert transport.paths() == ["/api/v1/bulk"]
    assert len(transport.bulk_items()) == 102
    assert len(stored_spans(server.store, instance)) == 100
    exporter.close()


def test_a_refused_item_is_rejected_and_the_rest_are_sent_in_a_second_request(
    server: Server,
) -> None:
    instance = generate_pfid()
    orphan = span_pair(instance, parent_span_id=generate_pfid())
    good = span_pair(instance)
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in [*instance_opening(instance), *orphan, *good]:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (4, 2)
    assert stored_spans(server.store, instance) == {good[0].span_id: (None, "complete")}
    assert transport.paths() == ["/api/v1/bulk", "/api/v1/bulk"]
    exporter.close()


def test_finishing_an_instance_the_server_terminated_counts_as_sent(server: Server) -> None:
    instance = generate_pfid()
    calls: list[tuple[str, str | None]] = []
    exporter = Exporter(
        HttpSink(api_config(), transport=server.transport()),
        on_terminate=lambda i, r: calls.append((i, r)),
    )
    for record in instance_opening(instance):
        exporter.submit(record)
    assert exporter.flush(10)
    server.store.terminate_instance(instance, {"reason": "stop"})
    for record in [*span_pair(instance), instance_closing(instance)]:
        exporter.submit(record)
    assert exporter.flush(10)
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (5, 0)
    assert calls == [(instance, "stop")]
    exporter.close()


def test_a_terminate_signal_after_plain_successes_in_one_answer_is_still_heard(
    server: Server,
) -> None:
    stopped, running = generate_pfid(), generate_pfid()
    calls: list[tuple[str, str | None]] = []
    transport = server.transport()
    exporter = Exporter(
        HttpSink(api_config(), transport=transport), on_terminate=lambda i, r: calls.append((i, r))
    )
    for record in instance_opening(stopped):
        exporter.submit(record)
    assert exporter.flush(10)
    server.store.terminate_instance(stopped, {"reason": "stop"})
    plain = [span_pair(running) for _ in range(3)]
    late = span_pair(stopped)
    for record in [*instance_opening(running), *(r for pair in plain for r in pair), *late]:
        exporter.submit(record)
    assert exporter.flush(10)
    assert calls == [(stopped, "stop")]
    assert len(transport.paths()) == 2  # the plain successes and the signal: one answer
    assert stored_spans(server.store, running) == {
        create.span_id: (None, "complete") for create, _ in plain
    }
    exporter.close()


def test_the_bulk_endpoint_missing_switches_to_single_endpoints(server: Server) -> None:
    def no_bulk(request: httpx.Request, n: int) -> httpx.Response | None:
        return error(404, "not_found") if request.url.path == "/api/v1/bulk" else None

    instance = generate_pfid()
    create, finish = span_pair(instance)
    transport = server.transport(before=no_bulk)
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in instance_opening(instance):
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.submit(create)
    assert exporter.flush(10)
    for record in [finish, instance_closing(instance)]:
        exporter.submit(record)
    assert exporter.flush(10)
    assert transport.paths() == [
        "/api/v1/bulk",
        "/api/v1/agent_instance/register",
        f"/api/v1/agent_instance/{instance}/start",
        "/api/v1/agent_spans",
        f"/api/v1/agent_spans/{create.span_id}/finish",
        f"/api/v1/agent_instance/{instance}/finish",
    ]
    assert_stored(server, {instance: {create.span_id: (None, "complete")}})
    assert exporter.stats().sent == 5
    exporter.close()


class NoSpanFinishInBulk(httpx.AsyncBaseTransport):
    """A server variant whose bulk endpoint does not know ``agent_spans/finish``."""

    def __init__(self, server: Server) -> None:
        self.store = server.store
        self.app = httpx.ASGITransport(app=server.app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/bulk":
            return await self.app.handle_async_request(request)
        items = json.loads(request.content)["items"]
        cut = next(
            (i for i, item in enumerate(items) if item["_type"] == "agent_spans/finish"),
            len(items),
        )
        outputs = self.store.bulk({"items": items[:cut]})["outputs"] if cut else {}
        if cut < len(items):
            outputs[items[cut]["idempotency_key"]] = {
                "status": "error",
                "code": "unsupported_type",
                "message": "unknown _type",
            }
        return httpx.Response(200, json={"status": "success", "outputs": outputs})


class AnswersPartly(httpx.AsyncBaseTransport):
    """A server whose first bulk request applies and answers only part of its items.

    ``first_half``: the first half of them; else none (a success naming no item).
    """

    def __init__(self, server: Server, *, first_half: bool) -> None:
        self.store = server.store
        self.app = httpx.ASGITransport(app=server.app)
        self.first_half = first_half
        self.cut = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/api/v1/bulk" or self.cut:
            return await self.app.handle_async_request(request)
        self.cut = True
        items = json.loads(request.content)["items"]
        half = len(items) // 2
        applied = items[:half] if self.first_half else []
        outputs = self.store.bulk({"items": applied}, details=False)["outputs"] if applied else {}
        return httpx.Response(200, json={"status": "success", "outputs": outputs})


@pytest.mark.parametrize("first_half", [True, False], ids=["answers-first-half", "answers-none"])
def test_items_a_bulk_answer_leaves_out_are_sent_again(server: Server, first_half: bool) -> None:
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance)]
    for _ in range(20):
        records.extend(span_pair(instance))
    records.append(instance_closing(instance))
    exporter = Exporter(
        HttpSink(api_config(), transport=AnswersPartly(server, first_half=first_half)),
        QueueConfig(**FAST_RETRY),
    )
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert len(stored_spans(server.store, instance)) == 20
    assert server.store.get_instance(instance)["details"]["status"] == "complete"
    stats = exporter.stats()
    assert (stats.sent, stats.rejected, dict(stats.dropped)) == (len(records), 0, {})
    exporter.close()


def test_an_item_type_bulk_does_not_support_goes_to_its_single_endpoint(server: Server) -> None:
    instance = generate_pfid()
    first, second = span_pair(instance), span_pair(instance)
    transport = CountingTransport(NoSpanFinishInBulk(server))
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in [*instance_opening(instance), first[0], second[0]]:
        exporter.submit(record)
    assert exporter.flush(10)
    for record in [first[1], second[1], instance_closing(instance)]:
        exporter.submit(record)
    assert exporter.flush(10)
    assert transport.paths() == [
        "/api/v1/bulk",
        "/api/v1/bulk",
        f"/api/v1/agent_spans/{first[0].span_id}/finish",
        f"/api/v1/agent_spans/{second[0].span_id}/finish",
        "/api/v1/bulk",
    ]
    assert_stored(
        server,
        {instance: {first[0].span_id: (None, "complete"), second[0].span_id: (None, "complete")}},
    )
    exporter.close()


def test_requests_carry_the_sdk_header(server: Server) -> None:
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    exporter.submit(instance_opening(generate_pfid())[0])
    assert exporter.flush(10)
    expected = f"prefactor@{__version__} prefactor-core@0.5.3"
    assert transport.seen[0].headers["x-prefactor-sdk"] == expected
    exporter.close()


def test_an_integration_entry_comes_before_ours_in_the_sdk_header(server: Server) -> None:
    transport = server.transport()
    sink = HttpSink(api_config(), transport=transport, sdk_header_entry="prefactor-lc@1.0")
    exporter = Exporter(sink)
    exporter.submit(instance_opening(generate_pfid())[0])
    assert exporter.flush(10)
    expected = f"prefactor-lc@1.0 prefactor@{__version__} prefactor-core@0.5.3"
    assert transport.seen[0].headers["x-prefactor-sdk"] == expected
    exporter.close()


def test_a_wrong_token_is_logged_as_rejection_without_the_token(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "wrong-secret-token-123"
    config = api_config().model_copy(update={"api_token": type(api_config().api_token)(secret)})
    sink = HttpSink(config, transport=server.transport())
    exporter = Exporter(sink)
    with caplog.at_level(logging.DEBUG, logger="prefactor"):
        exporter.submit(instance_opening(generate_pfid())[0])
        assert exporter.flush(10)
        exporter.close()
    assert exporter.stats().rejected == 1
    assert "unauthorized" in caplog.text
    assert secret not in caplog.text
    assert TOKEN not in repr(sink) and secret not in repr(sink)


def test_a_body_too_large_for_the_server_is_sent_in_smaller_requests(tmp_path: Path) -> None:
    store = Store(tmp_path / "small.db")
    app = create_app(store, token=TOKEN, max_body_bytes=16_000)
    transport = CountingTransport(httpx.ASGITransport(app=app))
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance)]
    for _ in range(80):
        records.extend(span_pair(instance))
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert len(stored_spans(store, instance)) == 80
    assert len(transport.seen) > 2
    assert (exporter.stats().sent, exporter.stats().rejected) == (len(records), 0)
    exporter.close()
    store.close()


def test_a_record_submitted_twice_is_stored_once(server: Server) -> None:
    instance = generate_pfid()
    opening = instance_opening(instance)
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in [*opening, *opening]:
        exporter.submit(record)
    assert exporter.flush(10)
    assert (exporter.stats().sent, exporter.stats().rejected) == (4, 0)
    assert len(transport.seen) == 2  # one key may appear once per bulk request
    assert server.store.list_instances(agent_id="agent-test")["summaries"][0]["id"] == instance
    exporter.close()


def test_a_password_in_the_api_url_never_shows_in_a_repr() -> None:
    from prefactor import HttpClientConfig, PrefactorCoreConfig

    config = HttpClientConfig(api_url="https://bob:hunter2@api.example.com", api_token=TOKEN)
    shown = repr(config) + repr(HttpSink(config)) + repr(PrefactorCoreConfig(http_config=config))
    assert "hunter2" not in shown
    assert "https://bob:[REDACTED]@api.example.com" in shown
    assert config.api_url == "https://bob:hunter2@api.example.com"  # used as given


def test_a_key_repeated_within_a_batch_starts_a_request_of_its_own(server: Server) -> None:
    instance = generate_pfid()
    key = generate_pfid()
    quality = RecordQuality(instance, "grade", {"score": 1}, key)
    again = RecordQuality(instance, "grade", {"score": 1}, key)  # the same write, replayed
    records = [*instance_opening(instance), quality, again, instance_closing(instance)]
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport))
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert [len(s.body["items"]) for s in transport.seen] == [3, 2]
    assert (exporter.stats().sent, exporter.stats().rejected) == (5, 0)
    stored = server.store.get_instance(instance)["details"]
    assert (stored["status"], stored["quality_payloads"]) == ("complete", {"grade": {"score": 1}})
    exporter.close()
