"""Helpers of the exporter tests: record factories and a scriptable test-only sink."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from prefactor._export.sinks.base import ExportResult, Rejection, Termination
from prefactor._ids import generate_pfid
from prefactor._records import (
    CreateSpan,
    FinishInstance,
    FinishSpan,
    Record,
    RegisterInstance,
    StartInstance,
)


def span_pair(
    instance_id: str, parent_span_id: str | None = None, span_id: str | None = None
) -> tuple[CreateSpan, FinishSpan]:
    """A create and a finish of one short span."""
    span_id = span_id or generate_pfid()
    now = time.time_ns()
    create = CreateSpan(
        span_id=span_id,
        instance_id=instance_id,
        schema_name="agent:llm",
        status="active",
        started_at_ns=now,
        payload={"prompt": "hi"},
        parent_span_id=parent_span_id,
    )
    finish = FinishSpan(
        span_id=span_id,
        instance_id=instance_id,
        status="complete",
        timestamp_ns=now + 1000,
        result_payload={"text": "hello"},
    )
    return create, finish


def spans(instance_id: str, count: int) -> list[Record]:
    """``count`` create+finish pairs of one instance, in order."""
    out: list[Record] = []
    for _ in range(count):
        out.extend(span_pair(instance_id))
    return out


class ScriptedSink:
    """A test sink whose behaviour per batch is a function; it records what it accepted.

    ``behaviour(batch)`` may be async; it returns an ExportResult (or None for
    success) or raises. ``delivered`` holds accepted records in delivery order.
    """

    def __init__(
        self,
        behaviour: Callable[[Sequence[Record]], object] | None = None,
    ) -> None:
        self.behaviour = behaviour
        self.lock = threading.Lock()
        self.delivered: list[Record] = []
        self.attempts: list[list[Record]] = []
        self.attempt_times: list[float] = []
        self.closed = False
        self.active: dict[str, int] = {}
        self.max_active_per_instance = 0
        self.max_active = 0
        self.delivered_event = threading.Event()

    async def export(self, batch: Sequence[Record]) -> ExportResult:
        instance = batch[0].instance_id
        with self.lock:
            self.attempts.append(list(batch))
            self.attempt_times.append(time.monotonic())
            self.active[instance] = self.active.get(instance, 0) + 1
            self.max_active_per_instance = max(self.max_active_per_instance, self.active[instance])
            self.max_active = max(self.max_active, sum(self.active.values()))
        try:
            result = self.behaviour(batch) if self.behaviour is not None else None
            if asyncio.iscoroutine(result):
                result = await result
            await asyncio.sleep(0)
        finally:
            with self.lock:
                self.active[instance] -= 1
        out = result if isinstance(result, ExportResult) else ExportResult()
        refused = {id(r.record) for r in out.rejected}
        with self.lock:
            self.delivered.extend(r for r in batch if id(r) not in refused)
        self.delivered_event.set()
        return out

    async def aclose(self) -> None:
        self.closed = True


def reject_finishes(batch: Sequence[Record]) -> ExportResult:
    """Refuse every FinishSpan of the batch for good."""
    return ExportResult(
        rejected=tuple(
            Rejection(r, "invalid_action", "no") for r in batch if isinstance(r, FinishSpan)
        )
    )


def terminate_each(batch: Sequence[Record]) -> ExportResult:
    """Ask to terminate the batch's instance."""
    return ExportResult(terminations=(Termination(batch[0].instance_id, "budget"),))


def instance_opening(instance_id: str, agent_id: str = "agent-test") -> list[Record]:
    """Register and start an instance (an open schema version: any span type)."""
    return [
        RegisterInstance(
            instance_id=instance_id,
            agent_id=agent_id,
            agent_version={"name": "test agent", "external_identifier": "v1"},
        ),
        StartInstance(instance_id=instance_id, timestamp_ns=time.time_ns()),
    ]


def instance_closing(instance_id: str) -> FinishInstance:
    """Finish an instance as complete."""
    return FinishInstance(instance_id=instance_id, status="complete", timestamp_ns=time.time_ns())


def stored_spans(store: Any, instance_id: str) -> dict[str, tuple[str | None, str]]:
    """span id -> (parent span id, status) of every span the store holds for an instance."""
    out: dict[str, tuple[str | None, str]] = {}
    offset = 0
    while True:
        page = store.list_spans(agent_instance_id=instance_id, offset=offset, page_size=10_000)
        for span in page["summaries"]:
            out[span["id"]] = (span["parent_span_id"], span["status"])
        if len(page["summaries"]) < 10_000:
            return out
        offset += 10_000


def fork() -> int:
    """``os.fork()``, without the warning Python 3.12+ gives for forking with threads running."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()
