"""Bounded waits against a destination that never answers, and what a close reports."""

from __future__ import annotations

import logging
import time

import pytest
from export_helpers import spans
from http_helpers import TOKEN, api_config, refused_url, silent_server

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink
from prefactor._ids import generate_pfid


def test_block_mode_gives_up_after_block_timeout_when_the_server_never_answers() -> None:
    with silent_server() as url:
        config = QueueConfig(max_queue_size=4, batch_size=2, on_full="block", block_timeout=1.0)
        exporter = Exporter(HttpSink(api_config(api_url=url)), config)
        records = spans(generate_pfid(), 3)
        assert all(exporter.submit(record) for record in records[:4])
        start = time.monotonic()
        assert not exporter.submit(records[4])
        waited = time.monotonic() - start
        start = time.monotonic()
        assert not exporter.submit(records[5])
        waited_again = time.monotonic() - start
        exporter.close(timeout=0)
    assert 0.9 <= waited < 5
    assert waited_again < 0.5  # the queue is known to be stuck: no second full wait
    assert exporter.stats().dropped["queue_full"] == 2


def test_close_reports_the_lost_records_the_url_and_the_last_error_without_the_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = refused_url()
    config = QueueConfig(retry_delay_base=30, retry_delay_max=30, shutdown_timeout=0.5)
    exporter = Exporter(HttpSink(api_config(api_url=url)), config)
    for record in spans(generate_pfid(), 2):
        exporter.submit(record)
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        assert not exporter.close()
    [report] = [r.getMessage() for r in caplog.records if "were lost" in r.getMessage()]
    assert report.startswith(
        "prefactor: 4 telemetry records were lost (shutdown=4); 0 were sent; "
        f"HttpSink(api_url='{url}') last failed with: ConnectError"
    )
    assert TOKEN not in caplog.text


def test_close_against_a_server_that_never_answers_is_bounded_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with silent_server() as url:
        exporter = Exporter(HttpSink(api_config(api_url=url)), QueueConfig(shutdown_timeout=0.5))
        for record in spans(generate_pfid(), 2):
            exporter.submit(record)
        start = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="prefactor.export"):
            assert not exporter.close()
        elapsed = time.monotonic() - start
    assert elapsed < 0.5 + 3
    assert (
        "prefactor: 4 telemetry records were lost (shutdown=4); 0 were sent; "
        f"HttpSink(api_url='{url}') had not answered by the shutdown timeout"
    ) in caplog.text
