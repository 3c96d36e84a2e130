"""Helpers of the tracing tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefactor._tracing.decorator import spec_of
from prefactor._tracing.tracer import Tracer
from prefactor.server.store import Store


def type_of(fn: Any) -> str:
    """The span type of a decorated callable."""
    spec = spec_of(fn)
    assert spec is not None, f"{fn!r} is not decorated"
    return spec.span_type


class Stored:
    """What a tracer delivered to the embedded store, read back from its SQLite file."""

    def __init__(self, tracer: Tracer, path: Path) -> None:
        self.tracer = tracer
        self.path = path

    def spans(self) -> list[dict[str, Any]]:
        """Every span the store holds, each instance's in start order, after a flush."""
        assert self.tracer.flush(10), "the exporter did not drain"
        stats = self.tracer.stats()
        assert stats["rejected"] == 0 and not stats["dropped"], stats
        store = Store(self.path)
        try:
            spans: list[dict[str, Any]] = []
            for inst in store.list_instances(page_size=1000)["summaries"][::-1]:
                page = store.list_spans(agent_instance_id=inst["id"], page_size=10_000)
                spans.extend(page["summaries"])
            return spans
        finally:
            store.close()

    def span(self, schema_name: str) -> dict[str, Any]:
        """The one stored span of ``schema_name``."""
        found = [s for s in self.spans() if s["schema_name"] == schema_name]
        assert len(found) == 1, [s["schema_name"] for s in self.spans()]
        return found[0]

    def instances(self) -> list[dict[str, Any]]:
        """Every stored instance, oldest first."""
        assert self.tracer.flush(10), "the exporter did not drain"
        store = Store(self.path)
        try:
            return list(store.list_instances(page_size=1000)["summaries"][::-1])
        finally:
            store.close()
