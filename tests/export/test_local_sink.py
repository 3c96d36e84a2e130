"""LocalSink applies batches to a real SQLite file through the server's store.

Every test runs with both writers: a writer process (the default) and inline.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest
from export_helpers import instance_closing, instance_opening, span_pair, stored_spans

from prefactor._config import QueueConfig
from prefactor._export.exporter import Exporter
from prefactor._export.sinks import LocalSink
from prefactor._export.sinks.local import Writer
from prefactor._ids import generate_pfid
from prefactor._records import CreateSpan, FinishSpan, Record
from prefactor.server.store import Store

pytestmark = pytest.mark.parametrize("writer", ["process", "inline"])


def deliver(path: Path, records: list[Record], writer: Writer) -> Exporter:
    exporter = Exporter(LocalSink(path, writer=writer), QueueConfig(batch_size=50))
    for record in records:
        exporter.submit(record)
    assert exporter.flush(10)
    assert exporter.close()
    return exporter


def test_local_sink_creates_the_file_and_stores_spans_with_their_parents(
    tmp_path: Path, writer: Writer
) -> None:
    path = tmp_path / "nested" / "dir" / "traces.db"
    instance = generate_pfid()
    root_create, root_finish = span_pair(instance)
    child_create, child_finish = span_pair(instance, root_create.span_id)
    records = [
        *instance_opening(instance),
        root_create,
        child_create,
        child_finish,
        root_finish,
        instance_closing(instance),
    ]
    exporter = deliver(path, records, writer)
    store = Store(path)
    assert stored_spans(store, instance) == {
        root_create.span_id: (None, "complete"),
        child_create.span_id: (root_create.span_id, "complete"),
    }
    assert store.get_instance(instance)["details"]["status"] == "complete"
    assert exporter.stats().sent == len(records)
    store.close()


def test_a_refused_item_is_rejected_and_the_items_after_it_are_still_applied(
    tmp_path: Path,
    writer: Writer,
) -> None:
    instance = generate_pfid()
    orphan_create, orphan_finish = span_pair(instance, parent_span_id=generate_pfid())
    good_create, good_finish = span_pair(instance)
    records = [*instance_opening(instance), orphan_create, orphan_finish, good_create, good_finish]
    exporter = deliver(tmp_path / "t.db", records, writer)
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (4, 2)
    store = Store(tmp_path / "t.db")
    assert stored_spans(store, instance) == {good_create.span_id: (None, "complete")}
    store.close()


def test_finishing_an_instance_the_server_already_ended_counts_as_sent(
    tmp_path: Path, writer: Writer
) -> None:
    instance = generate_pfid()
    deliver(tmp_path / "t.db", instance_opening(instance), writer)
    store = Store(tmp_path / "t.db")
    store.terminate_instance(instance, {"reason": "budget"})
    store.close()
    exporter = deliver(tmp_path / "t.db", [instance_closing(instance)], writer)
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (1, 0)


def test_finishing_a_span_created_finished_counts_as_sent(tmp_path: Path, writer: Writer) -> None:
    instance = generate_pfid()
    create, finish = span_pair(instance)
    finished_create = dataclasses.replace(create, status="complete", finished_at_ns=time.time_ns())
    exporter = deliver(
        tmp_path / "t.db", [*instance_opening(instance), finished_create, finish], writer
    )
    stats = exporter.stats()
    assert (stats.sent, stats.rejected) == (4, 0)


def test_a_span_of_a_terminated_instance_reports_the_termination(
    tmp_path: Path, writer: Writer
) -> None:
    instance = generate_pfid()
    deliver(tmp_path / "t.db", instance_opening(instance), writer)
    store = Store(tmp_path / "t.db")
    store.terminate_instance(instance, {"reason": "over budget"})
    store.close()
    calls: list[tuple[str, str | None]] = []
    exporter = Exporter(
        LocalSink(tmp_path / "t.db", writer=writer), on_terminate=lambda i, r: calls.append((i, r))
    )
    for record in span_pair(instance):
        exporter.submit(record)
    assert exporter.flush(10)
    assert calls == [(instance, "over budget")]
    exporter.close()


def test_a_replayed_batch_changes_nothing(tmp_path: Path, writer: Writer) -> None:
    instance = generate_pfid()
    records: list[Record] = [*instance_opening(instance), *span_pair(instance)]
    deliver(tmp_path / "t.db", records, writer)
    exporter = deliver(tmp_path / "t.db", records, writer)
    assert (exporter.stats().sent, exporter.stats().rejected) == (4, 0)
    store = Store(tmp_path / "t.db")
    create = records[2]
    assert isinstance(create, CreateSpan)
    assert stored_spans(store, instance) == {create.span_id: (None, "complete")}
    store.close()


def test_a_span_finished_in_a_later_batch_is_finished_by_its_own_item(
    tmp_path: Path, writer: Writer
) -> None:
    instance = generate_pfid()
    create, finish = span_pair(instance)
    exporter = Exporter(LocalSink(tmp_path / "t.db", writer=writer))
    for record in [*instance_opening(instance), create]:
        exporter.submit(record)
    assert exporter.flush(10)
    store = Store(tmp_path / "t.db")
    assert stored_spans(store, instance) == {create.span_id: (None, "active")}
    exporter.submit(finish)
    assert exporter.flush(10)
    assert stored_spans(store, instance) == {create.span_id: (None, "complete")}
    assert isinstance(finish, FinishSpan)
    exporter.close()
    store.close()
