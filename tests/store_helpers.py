"""Reading back what a run left in an embedded store file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefactor.server.store import Store


def the_only_span(db: Path) -> dict[str, Any]:
    """The one span of the one instance stored in ``db`` (fails if there are more or none)."""
    store = Store(db)
    try:
        (instance,) = store.list_instances()["summaries"]
        (span,) = store.list_spans(agent_instance_id=instance["id"])["summaries"]
    finally:
        store.close()
    return dict(span)
