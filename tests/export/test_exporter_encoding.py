"""A record that cannot be written costs only itself, over HTTP and in the embedded store."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from export_helpers import instance_closing, instance_opening, span_pair, stored_spans
from http_helpers import Server, api_config

from prefactor._export._internal import set_raise_internal_errors
from prefactor._export.base import Sink
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import HttpSink, LocalSink, MemorySink
from prefactor._export.stats import ExportStats
from prefactor._ids import generate_pfid
from prefactor._records import CreateSpan, JSONDict, Lazy, Record, Violation, iso_from_ns
from prefactor.server.store import Store


class Broken(Lazy):
    """A payload whose resolution fails, as a bug in capture would."""

    __slots__ = ()

    def resolve(self) -> tuple[JSONDict, tuple[Violation, ...]]:
        raise RuntimeError("capture bug")


@pytest.fixture(params=["http", "local"])
def destination(
    request: pytest.FixtureRequest, server: Server, tmp_path: Path
) -> Iterator[tuple[Sink, Store]]:
    """A sink and the store it writes to: the API app in process, or the embedded file."""
    if request.param == "http":
        yield HttpSink(api_config(), transport=server.transport()), server.store
        return
    sink = LocalSink(tmp_path / "local.db")
    store = Store(sink.path)
    yield sink, store
    store.close()


def batch_with(instance: str, *payloads: Any) -> tuple[list[Record], list[CreateSpan]]:
    """An instance's records with one short span per payload: (all records, the good spans)."""
    records: list[Record] = [*instance_opening(instance)]
    good: list[CreateSpan] = []
    for payload in payloads:
        create, finish = span_pair(instance)
        create = dataclasses.replace(create, payload=payload)
        records += [create, finish]
        if payload == {"ok": True}:
            good.append(create)
    records.append(instance_closing(instance))
    return records, good


def exported(sink: Sink, records: list[Record]) -> ExportStats:
    """Export ``records`` through a new exporter over ``sink``, flushed and closed: its stats."""
    exporter = Exporter(sink)
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    exporter.close()
    return exporter.stats()


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"n": 2**70}, id="int-over-64-bits"),
        pytest.param({"name": "caf\udce9.txt"}, id="lone-surrogate"),
    ],
)
def test_a_value_the_encoder_refuses_sets_aside_only_its_span(
    destination: tuple[Sink, Store], bad: dict[str, Any]
) -> None:
    sink, store = destination
    instance = generate_pfid()
    records, good = batch_with(instance, {"ok": True}, bad, {"ok": True})
    stats = exported(sink, records)
    assert (stats.sent, stats.rejected, dict(stats.dropped)) == (7, 0, {"unencodable": 2})
    assert set(stored_spans(store, instance)) == {create.span_id for create in good}
    assert store.get_instance(instance)["details"]["status"] == "complete"


def test_values_the_encoder_refuses_in_a_long_batch_set_aside_only_their_spans(
    destination: tuple[Sink, Store],
) -> None:
    # A batch is encoded a run of items at a time: spans the encoder refuses in two
    # different runs, one of them the last, cost only themselves, and every other item
    # is sent in its order (the instance's finish last).
    sink, store = destination
    instance = generate_pfid()
    ok, bad = {"ok": True}, {"n": 2**70}
    records, good = batch_with(instance, *[ok] * 150, bad, *[ok] * 105, bad, *[ok] * 3)
    stats = exported(sink, records)
    assert (stats.sent, stats.rejected, dict(stats.dropped)) == (
        len(records) - 4,
        0,
        {"unencodable": 4},
    )
    assert set(stored_spans(store, instance)) == {create.span_id for create in good}
    assert len(good) == 258
    assert store.get_instance(instance)["details"]["status"] == "complete"


def test_a_record_whose_wire_form_raises_is_set_aside_alone(
    destination: tuple[Sink, Store],
) -> None:
    set_raise_internal_errors(False)
    sink, store = destination
    instance = generate_pfid()
    records, good = batch_with(instance, {"ok": True}, Broken(), {"ok": True})
    assert dict(exported(sink, records).dropped) == {"unencodable": 2}
    assert set(stored_spans(store, instance)) == {create.span_id for create in good}
    assert store.get_instance(instance)["details"]["status"] == "complete"


def test_a_wire_form_that_raises_surfaces_in_the_sdks_own_tests() -> None:
    exporter = Exporter(MemorySink())
    create, _ = span_pair(generate_pfid())
    exporter.submit(dataclasses.replace(create, payload=Broken()))
    with pytest.raises(RuntimeError, match="capture bug"):
        exporter.flush(10)
    exporter.close()


def test_a_set_aside_record_is_logged_with_its_kind_and_key(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    instance = generate_pfid()
    records, _ = batch_with(instance, {"n": -(2**70)})
    exporter = Exporter(HttpSink(api_config(), transport=server.transport()))
    with caplog.at_level(logging.WARNING, logger="prefactor.export"):
        for record in records:
            exporter.submit(record)
        assert exporter.flush(10)
    exporter.close()
    create, finish = records[2:4]
    lines = [r.getMessage() for r in caplog.records if "set aside" in r.getMessage()]
    assert lines == [
        f"prefactor: HttpSink set aside {r.kind} {r.idempotency_key} (unencodable): "
        "Integer exceeds 64-bit range"
        for r in (create, finish)
    ]


def test_the_memory_sink_keeps_the_records_it_could_write() -> None:
    set_raise_internal_errors(False)
    sink = MemorySink()
    records, _ = batch_with(generate_pfid(), {"ok": True}, Broken())
    stats = exported(sink, records)
    broken = records[4]
    assert sink.records == [r for r in records if r is not broken]
    assert dict(stats.dropped) == {"unencodable": 1}


@pytest.mark.parametrize(
    "ns",
    [0, 999, 1_000, 999_999_999, 1_000_000_000, 1_764_000_000_000_999_000, -1, -1_000_000_001],
)
def test_a_wire_timestamp_is_the_instant_to_the_microsecond_in_iso_form(ns: int) -> None:
    seconds, rest = divmod(ns, 1_000_000_000)
    instant = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)
    assert iso_from_ns(ns) == instant.isoformat(timespec="microseconds")


def test_wire_timestamps_in_a_row_are_each_their_own_instant_across_milliseconds() -> None:
    # One reading after another, as a batch formats them: the same millisecond, the next
    # one, the next second, and back to an earlier millisecond.
    base = 1_764_000_000_999_000_000
    readings = [base, base + 1_000, base + 999_999, base + 1_000_000, base + 1_000_001_000, base]

    def expected(ns: int) -> str:
        seconds, rest = divmod(ns, 1_000_000_000)
        instant = datetime.fromtimestamp(seconds, UTC) + timedelta(microseconds=rest // 1000)
        return instant.isoformat(timespec="microseconds")

    assert [iso_from_ns(ns) for ns in readings] == [expected(ns) for ns in readings]
