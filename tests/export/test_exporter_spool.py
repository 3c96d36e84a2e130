"""The offline spool: what the API could not take is kept, then sent once, in order."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from export_helpers import instance_closing, instance_opening, spans, stored_spans
from http_helpers import BASE_URL, Server, api_config, refused_url

from prefactor._cli import main
from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._export.spool import Spool
from prefactor._ids import generate_pfid
from prefactor._records import Record
from prefactor.testing.server import LocalServer


def dead(request: httpx.Request, n: int) -> Exception:
    return httpx.ConnectError("connection refused")


def answer_lost(request: httpx.Request, n: int) -> Exception:
    return httpx.ReadError("connection reset after the server applied the request")


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "spool.db"


def known(server: Server, instance: str) -> bool:
    """Whether the server has heard of ``instance`` at all."""
    found = server.store.list_instances(agent_id="agent-test", page_size=100)["summaries"]
    return instance in {i["id"] for i in found}


def one_run(instance: str, count: int = 3) -> list[Record]:
    return [*instance_opening(instance), *spans(instance, count), instance_closing(instance)]


def deliver(exporter: Exporter, records: list[Record]) -> Exporter:
    for record in records:
        exporter.submit(record)
    exporter.close()
    return exporter


def spooling(path: Path) -> QueueConfig:
    """Settings that give up on a failed batch at once and keep it in the spool."""
    return QueueConfig(spool_path=path, max_retries=0, shutdown_timeout=2)


def test_records_the_api_could_not_take_wait_in_the_spool(
    server: Server, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = generate_pfid()
    records = one_run(instance)
    sink = HttpSink(api_config(), transport=server.transport(before=dead))
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        exporter = deliver(Exporter(sink, spooling(spool_path)), records)
    stats = exporter.stats()
    assert (stats.sent, stats.spooled, dict(stats.dropped)) == (0, len(records), {})
    assert Spool(spool_path).pending(BASE_URL) == len(records)
    assert f"{len(records)} telemetry records wait in the spool {spool_path}" in caplog.text
    assert not known(server, instance)


def test_the_next_exporter_for_the_api_sends_the_spool_in_order_and_empties_it(
    server: Server, spool_path: Path
) -> None:
    instance = generate_pfid()
    records = one_run(instance)
    deliver(
        Exporter(
            HttpSink(api_config(), transport=server.transport(before=dead)), spooling(spool_path)
        ),
        records,
    )
    transport = server.transport()
    exporter = Exporter(HttpSink(api_config(), transport=transport), spooling(spool_path))
    assert exporter.flush(10)  # nothing submitted: the exporter started for the spool
    exporter.close()
    assert len(stored_spans(server.store, instance)) == 3
    assert server.store.get_instance(instance)["details"]["status"] == "complete"
    assert Spool(spool_path).pending() == 0
    assert [item["_type"] for item in transport.bulk_items()][:2] == [
        "agent_instances/register",
        "agent_instances/start",
    ]


def test_a_batch_the_server_applied_before_its_answer_was_lost_is_stored_once(
    server: Server, spool_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    instance = generate_pfid()
    records = one_run(instance)
    lossy = HttpSink(api_config(), transport=server.transport(after=answer_lost))
    assert deliver(Exporter(lossy, spooling(spool_path)), records).stats().spooled == len(records)
    assert len(stored_spans(server.store, instance)) == 3  # applied, though unanswered
    with caplog.at_level(logging.INFO, logger="prefactor.export"):
        exporter = Exporter(
            HttpSink(api_config(), transport=server.transport()), spooling(spool_path)
        )
        assert exporter.flush(10)
        exporter.close()
    assert (
        f"sent 9 spooled records to HttpSink(api_url='{BASE_URL}') (0 refused); 0 wait"
        in caplog.text
    )
    assert len(stored_spans(server.store, instance)) == 3
    assert server.store.get_instance(instance)["details"]["status"] == "complete"


def test_an_instance_with_spooled_records_spools_its_later_records_too(
    server: Server, spool_path: Path
) -> None:
    first_request = True

    def fail_once(request: httpx.Request, n: int) -> Exception | None:
        nonlocal first_request
        failing, first_request = first_request, False
        return httpx.ConnectError("down for one request") if failing else None

    held, healthy = generate_pfid(), generate_pfid()
    sink = HttpSink(api_config(), transport=server.transport(before=fail_once))
    exporter = Exporter(sink, spooling(spool_path))
    opening = instance_opening(held)
    for record in opening:
        exporter.submit(record)
    assert exporter.flush(10)  # the first request failed: spooled
    for record in [*spans(held, 2), instance_closing(held), *one_run(healthy)]:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    assert exporter.stats().spooled == 2 + 4 + 1  # the opening, two spans, the finish
    assert server.store.get_instance(healthy)["details"]["status"] == "complete"
    assert not known(server, held)
    deliver(
        Exporter(HttpSink(api_config(), transport=server.transport()), spooling(spool_path)), []
    )
    assert len(stored_spans(server.store, held)) == 2
    assert server.store.get_instance(held)["details"]["status"] == "complete"


def test_without_a_spool_undelivered_records_are_dropped_and_counted(server: Server) -> None:
    sink = HttpSink(api_config(), transport=server.transport(before=dead))
    exporter = deliver(Exporter(sink, QueueConfig(max_retries=0)), one_run(generate_pfid()))
    stats = exporter.stats()
    assert (stats.spooled, dict(stats.dropped)) == (0, {"retries_exhausted": 9})


def test_prefactor_push_sends_the_spool_to_a_running_server(
    tmp_path: Path,
    spool_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    instance = generate_pfid()
    with LocalServer(tmp_path / "server.db") as server:
        offline = HttpSink(api_config(api_url=server.url), transport=server_down_transport())
        deliver(Exporter(offline, spooling(spool_path)), one_run(instance))
        monkeypatch.setenv("PREFACTOR_API_TOKEN", server.token)
        assert main(["push", "--spool", str(spool_path), "--url", server.url]) == 0
        out = capsys.readouterr().out
        assert (
            out == f"sent 9 spooled records to {server.url} (0 refused); 0 wait in {spool_path}\n"
        )
        assert len(server.client.spans(instance)) == 3


def server_down_transport() -> httpx.AsyncBaseTransport:
    """A transport whose every request fails to connect."""
    return httpx.AsyncHTTPTransport(uds="/nonexistent/prefactor.sock")


def test_prefactor_push_with_a_dead_server_keeps_the_spool(
    spool_path: Path,
    server: Server,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = refused_url()
    offline = HttpSink(api_config(api_url=url), transport=server.transport(before=dead))
    deliver(Exporter(offline, spooling(spool_path)), one_run(generate_pfid()))
    monkeypatch.setenv("PREFACTOR_API_TOKEN", "a-token-for-the-test-0123")
    assert main(["push", "--spool", str(spool_path), "--url", url]) == 1
    captured = capsys.readouterr()
    assert captured.out == f"sent 0 spooled records to {url} (0 refused); 9 wait in {spool_path}\n"
    assert "ConnectError" in captured.err
    assert Spool(spool_path).pending(url) == 9
