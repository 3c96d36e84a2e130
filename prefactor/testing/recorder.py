"""``Recorder``: route the process-wide tracer to memory and read back what it recorded."""

from __future__ import annotations

from typing import Any, Literal

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig, QueueConfig
from prefactor._export.sinks import MemorySink
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.tracer import Tracer
from prefactor.testing.spans import InstanceRecord, SpanRecord, Trace

__all__ = ["Recorder"]


class Recorder:
    """A :class:`MemorySink` behind the process-wide tracer, read back as a :class:`Trace`.

    ``Recorder.install(strict=True)`` installs a recording tracer and
    :meth:`uninstall` restores the previous one; every read flushes first, so
    a test sees everything its code did.
    """

    def __init__(
        self, sink: MemorySink, tracer: Tracer | None = None, previous: Tracer | None = None
    ) -> None:
        self.sink = sink
        self._tracer = tracer
        self._previous = previous

    @classmethod
    def install(
        cls,
        *,
        strict: bool = True,
        agent_id: str = "test-agent",
        registry: SchemaRegistry | None = None,
        on_full: Literal["drop", "block"] | None = None,
    ) -> Recorder:
        """Make the process-wide tracer record into a fresh memory sink.

        The tracer it replaces is kept, not closed: :meth:`uninstall` puts it
        back.

        Args:
            strict: raise :class:`prefactor._errors.SchemaValidationError` on violations.
            agent_id: the agent of instances made without one.
            registry: the schema registry (default: the process-wide one).
            on_full: what a full export queue does (``"block"`` loses nothing).
        """
        sink = MemorySink()
        queue = QueueConfig() if on_full is None else QueueConfig(on_full=on_full)
        config = PrefactorCoreConfig(
            sink=sink, strict=strict, schema_registry=registry, queue_config=queue
        )
        tracer = runtime.build_tracer(config, agent_id=agent_id)
        return cls(sink, tracer, runtime.swap(tracer))

    def uninstall(self, timeout: float = 10.0) -> None:
        """Close this recorder's tracer and put back the one it replaced."""
        tracer, self._tracer = self._tracer, None
        if tracer is not None:
            runtime.swap(self._previous)
            tracer.close(timeout)

    def trace(self, timeout: float = 10.0) -> Trace:
        """Everything recorded so far (after a flush), folded into instances and spans.

        Raises:
            TimeoutError: the exporter did not drain within ``timeout`` seconds.
        """
        flushed = (
            self._tracer.flush(timeout) if self._tracer is not None else runtime.flush(timeout)
        )
        if not flushed:
            raise TimeoutError(f"the exporter did not drain within {timeout} s")
        return Trace(self.sink.items)

    @property
    def spans(self) -> list[SpanRecord]:
        """Every span recorded so far."""
        return self.trace().spans

    @property
    def instances(self) -> list[InstanceRecord]:
        """Every agent instance recorded so far."""
        return self.trace().instances

    def span(self, span_type: str) -> SpanRecord:
        """The one span of ``span_type`` (``LookupError`` naming the tree if not exactly one)."""
        return self.trace().span(span_type)

    def spans_of_type(self, span_type: str) -> list[SpanRecord]:
        """The spans of one type, in creation order."""
        return self.trace().spans_of_type(span_type)

    def find(
        self, *, type: str | None = None, name: str | None = None, status: str | None = None
    ) -> list[SpanRecord]:
        """The spans matching every given criterion (see :meth:`Trace.find`)."""
        return self.trace().find(type=type, name=name, status=status)

    def parent(self, span: SpanRecord) -> SpanRecord | None:
        """``span``'s parent, if it has one."""
        return self.trace().parent(span)

    def render(self, *, durations: bool = False) -> str:
        """The span trees as indented text (see :meth:`Trace.render`)."""
        return self.trace().render(durations=durations)

    def records(self) -> list[dict[str, Any]]:
        """Every span as a deterministic plain dict (see :meth:`Trace.records`)."""
        return self.trace().records()

    def clear(self) -> None:
        """Forget what was recorded so far."""
        self.trace()
        self.sink.clear()
