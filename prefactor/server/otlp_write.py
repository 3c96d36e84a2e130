"""Writing ingest's items through ``Store.bulk``: as few calls as failures allow.

The store applies a bulk request in order and stops at its first failing
item. That item is refused (logged, counted); when it was an instance's
register, every later item of that instance is refused with it; the rest is
sent again. Only the store's public ``bulk`` is used, so any store that keeps
its contract (SQLite, PostgreSQL) takes OTLP ingest as it is.
"""

from __future__ import annotations

import logging
from typing import Any

from prefactor.server.store import ApiProblem, Store

__all__ = ["write_items"]

logger = logging.getLogger("prefactor.server")


def write_items(store: Store, items: list[dict[str, Any]]) -> tuple[int, str]:
    """Write ``items``; the number of span creates refused, and the first refusal's reason."""
    pending, rejected, reason = items, 0, ""
    failed: set[str] = set()
    while pending:
        batch = [item for item in pending if _instance_of(item) not in failed]
        if not batch:
            break
        try:
            outputs = store.bulk({"items": batch}, details=False)["outputs"]
        except ApiProblem as problem:  # the request as a whole: nothing was written
            logger.warning("OTLP ingest: the store refused %d items: %s", len(batch), problem)
            rejected += sum(1 for item in batch if item["_type"] == "agent_spans/create")
            return rejected, reason or problem.message
        pending = []
        for index, item in enumerate(batch):
            output = outputs.get(item["idempotency_key"]) or {"code": "no_answer"}
            if output.get("status") == "success":
                continue
            message = f"{item['_type']}: {output.get('code')}: {output.get('message', '')}"
            logger.warning("OTLP ingest: %s", message)
            reason = reason or message
            rest = batch[index + 1 :]
            if item["_type"] == "agent_spans/create":
                rejected += 1
            elif item["_type"] == "agent_instances/register":
                failed.add(_instance_of(item))
                rejected += sum(
                    1
                    for later in rest
                    if later["_type"] == "agent_spans/create"
                    and _instance_of(later) == _instance_of(item)
                )
            pending = rest
            break
    return rejected, reason


def _instance_of(item: dict[str, Any]) -> str:
    if item["_type"] == "agent_instances/register":
        return str(item["id"])
    if item["_type"] == "agent_spans/create":
        return str(item["details"]["agent_instance_id"])
    return str(item.get("agent_instance_id"))
