"""Names the earlier ``prefactor-core`` exported, kept so its users' code keeps working.

``PrefactorCoreClient`` no longer runs on these: it hands frozen records to
:class:`prefactor.Exporter`. They remain as small, working utilities with the
old names and signatures: the ``AgentInstance``/``Span`` data classes, the
``Operation`` record with its ``OperationType``, an async ``Queue`` interface
with a bounded ``InMemoryQueue`` (and its ``QueueClosedError``), a
``TaskExecutor`` worker pool, ``SpanContextStack``, which reads the span ids
open in the current context, and the helpers for integrations
``build_runtime_environment`` and ``warn_missing_adaptor_config``.

Every name here is also importable from ``prefactor`` itself, as it was from
``prefactor_core``; it is just not part of ``prefactor.__all__``.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import enum
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from prefactor._errors import QueueClosedError
from prefactor._sdk import build_runtime_environment
from prefactor._tracing.context import current_span

__all__ = [
    "AgentInstance",
    "InMemoryQueue",
    "Operation",
    "OperationType",
    "Queue",
    "QueueClosedError",
    "Span",
    "SpanContextStack",
    "TaskExecutor",
    "build_runtime_environment",
    "warn_missing_adaptor_config",
]

logger = logging.getLogger("prefactor.compat")
T = TypeVar("T")


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class AgentInstance:
    """An agent instance as plain data (not used on the wire)."""

    id: str
    agent_id: str
    status: str = "pending"
    purpose: str | None = None
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    quality_payloads: dict[str, Any] | None = None


@dataclass
class Span:
    """A span as plain data (not used on the wire)."""

    id: str
    instance_id: str
    schema_name: str
    parent_span_id: str | None = None
    status: str = "pending"
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: datetime = field(default_factory=_now)
    started_at: datetime | None = None
    finished_at: datetime | None = None


class OperationType(enum.Enum):
    """The kinds of operation prefactor-core queued."""

    REGISTER_AGENT_INSTANCE = "register_agent_instance"
    START_AGENT_INSTANCE = "start_agent_instance"
    FINISH_AGENT_INSTANCE = "finish_agent_instance"
    RECORD_QUALITY = "record_quality"
    CREATE_SPAN = "create_span"
    FINISH_SPAN = "finish_span"


@dataclass(frozen=True)
class Operation:
    """One queued operation, as prefactor-core modelled it."""

    type: OperationType
    payload: dict[str, Any]
    timestamp: datetime
    idempotency_key: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


class Queue(abc.ABC, Generic[T]):
    """An async queue that can be closed."""

    @abc.abstractmethod
    async def put(self, item: T) -> None:
        """Add an item. Raises QueueClosedError once closed."""

    @abc.abstractmethod
    async def get(self) -> T:
        """Take the next item. Raises QueueClosedError once closed and empty."""

    @abc.abstractmethod
    def size(self) -> int:
        """Items waiting."""

    @abc.abstractmethod
    async def close(self, num_waiters: int = 1) -> None:
        """Refuse new items and wake ``num_waiters`` blocked getters."""

    @property
    @abc.abstractmethod
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""


_WAKE = object()


class InMemoryQueue(Queue[T]):
    """A ``Queue`` on ``asyncio.Queue``; bounded when ``maxsize`` > 0."""

    def __init__(self, maxsize: int = 0) -> None:
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize)
        self._closed = False

    async def put(self, item: T) -> None:
        if self._closed:
            raise QueueClosedError("queue is closed")
        await self._queue.put(item)

    async def get(self) -> T:
        if self._closed and self._queue.empty():
            raise QueueClosedError("queue is closed")
        item = await self._queue.get()
        if item is _WAKE:
            raise QueueClosedError("queue is closed")
        return item  # type: ignore[no-any-return]

    def size(self) -> int:
        return self._queue.qsize()

    async def close(self, num_waiters: int = 1) -> None:
        self._closed = True
        for _ in range(num_waiters):
            self._queue.put_nowait(_WAKE)

    @property
    def closed(self) -> bool:
        return self._closed


class TaskExecutor(Generic[T]):
    """A pool of asyncio workers that feed queue items to ``handler``, with retries.

    Args:
        queue: where items come from.
        handler: ``await handler(item)`` for each item.
        num_workers: concurrent workers.
        max_retries: retries of an item whose handler raised a retryable error.
        is_retryable: decides retryability (default: every ``Exception``).
    """

    def __init__(
        self,
        queue: Queue[T],
        handler: Callable[[T], Awaitable[None]],
        num_workers: int = 3,
        max_retries: int = 3,
        *,
        is_retryable: Callable[[BaseException], bool] | None = None,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._num_workers = num_workers
        self._max_retries = max_retries
        self._is_retryable = is_retryable or (lambda exc: isinstance(exc, Exception))
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers on the running loop."""
        self._tasks = [asyncio.create_task(self._work()) for _ in range(self._num_workers)]

    async def stop(self) -> None:
        """Close the queue, let the workers drain it, and wait for them."""
        await self._queue.close(num_waiters=len(self._tasks))
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        while True:
            try:
                item = await self._queue.get()
            except QueueClosedError:
                return
            for attempt in range(self._max_retries + 1):
                try:
                    await self._handler(item)
                    break
                except Exception as exc:
                    if attempt >= self._max_retries or not self._is_retryable(exc):
                        logger.warning(
                            "dropping a queued item after %d attempts: %r", attempt + 1, exc
                        )
                        break
                    await asyncio.sleep(min(2.0**attempt * 0.1, 5.0))


_STACK: contextvars.ContextVar[tuple[str, ...]] = contextvars.ContextVar(
    "prefactor_span_stack", default=()
)


class SpanContextStack:
    """Span ids pushed in the current context (immutable tuples in a ``ContextVar``).

    ``peek()`` falls back to the span open in this context (``@traced`` or
    ``async with instance.span``) when nothing was pushed explicitly.
    """

    @classmethod
    def get_stack(cls) -> list[str]:
        return list(_STACK.get())

    @classmethod
    def push(cls, span_id: str) -> None:
        _STACK.set((*_STACK.get(), span_id))

    @classmethod
    def pop(cls) -> str | None:
        stack = _STACK.get()
        if not stack:
            return None
        _STACK.set(stack[:-1])
        return stack[-1]

    @classmethod
    def peek(cls) -> str | None:
        stack = _STACK.get()
        if stack:
            return stack[-1]

        span = current_span()
        return span.id if span is not None else None

    @classmethod
    def depth(cls) -> int:
        return len(_STACK.get())

    @classmethod
    def is_empty(cls) -> bool:
        return not _STACK.get()


def warn_missing_adaptor_config(
    instance_id: str, adaptor_name: str, create_client_call: str
) -> None:
    """Warn that an instance was registered before an integration set up the client.

    For integrations (langchain, livekit, ...) handed an instance whose client
    they did not configure, as prefactor-core's helper of the same name.

    Args:
        instance_id: the instance registered too early.
        adaptor_name: the integration's part, e.g. ``"middleware"``.
        create_client_call: what to call instead, e.g.
            ``"PrefactorMiddleware.create_client(config)"``.
    """
    logger.warning(
        "agent instance %s was registered before the %s set up its client; "
        "make the client with %s first, then the instance",
        instance_id,
        adaptor_name,
        create_client_call,
    )


# Names defined in private modules say where users import them from.
for _name in __all__:
    if globals()[_name].__module__.startswith("prefactor._"):
        globals()[_name].__module__ = __name__
del _name
