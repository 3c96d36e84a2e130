"""A broken capturer, registry or sink never reaches the caller; the SDK's own tests see it.

Each is a public extension point (``configure(capturer=, registry=, sink=)``),
so each may raise. For every kind of call (function, coroutine, generator,
async generator, explicit span) and every mode (lenient, strict, custom
extractors), the call returns what it returns, or raises what it raises,
as if the SDK were not there, and the failure is counted. With internal
errors set to surface, as in this suite, the same failure is raised: at the
call when it happened on the caller's path, else by ``flush()``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig
from prefactor._export._internal import set_raise_internal_errors
from prefactor._export.sinks import MemorySink
from prefactor._export.sinks.base import ExportResult
from prefactor._ids import generate_pfid
from prefactor._schemas.registry import SchemaRegistry, default_registry
from prefactor._tracing.capture import Capturer
from prefactor._tracing.context import CURRENT_SPAN
from prefactor._tracing.decorator import traced
from prefactor._tracing.guard import contained_count
from prefactor._tracing.slot import TRACER
from prefactor._tracing.span_context import SpanContext
from prefactor._tracing.state import InstanceState, SpanState
from prefactor._tracing.tracer import Tracer


class Broken(Exception):
    """What the broken parts raise."""


class UserError(Exception):
    """What the user's function raises."""


class BrokenCapturer(Capturer):
    __slots__ = ()

    def capture(self, value: Any) -> Any:
        raise Broken("capturer")

    def capture_mapping(self, mapping: Mapping[Any, Any]) -> Any:
        raise Broken("capturer")

    def capture_result(self, value: Any) -> Any:
        raise Broken("capturer")

    def capture_params(self, names: tuple[str, ...], values: tuple[Any, ...]) -> Any:
        raise Broken("capturer")

    def snapshot_mapping(self, data: Mapping[Any, Any]) -> Any:
        raise Broken("capturer")


class BrokenRegistry(SchemaRegistry):
    def validator_for(self, span_type: str, side: Any) -> Any:
        raise Broken("registry")

    def fast_checks(self, span_type: str) -> Any:
        raise Broken("registry")

    def is_registered(self, span_type: str) -> bool:
        raise Broken("registry")

    def version_identifier(self, prefix: str = "auto") -> str:
        raise Broken("registry")


class BrokenSink(MemorySink):
    async def export(self, batch: Sequence[Any]) -> ExportResult:
        raise Broken("sink")


BROKEN = {
    "capturer": {"capturer": BrokenCapturer()},
    "registry": {"registry": BrokenRegistry()},
    "sink": {"sink": BrokenSink()},
}
KINDS = ["function", "coroutine", "generator", "async-generator", "span-context"]
MODES = ["lenient", "strict", "custom"]


def _tracer(broken: str, mode: str) -> Tracer:
    parts = dict(BROKEN[broken])
    config = PrefactorCoreConfig(
        sink=parts.get("sink") or MemorySink(),
        strict=mode == "strict",
        schema_registry=parts.get("registry"),
    )
    return runtime.build_tracer(config, capturer=parts.get("capturer"))


def _traced(kind: str, mode: str, fails: bool) -> Any:
    """A traced callable of ``kind`` that returns 3 (or yields 1, 2) or raises UserError."""
    options: dict[str, Any] = {"name": f"sdk_failures.{kind}.{mode}"}
    if mode == "custom":
        options.update(params=dict, result=lambda r: {"value": r})

    def body(x: int) -> None:
        if fails:
            raise UserError(x)

    if kind == "function":

        def function(x: int) -> int:
            body(x)
            return 3

        return traced(**options)(function)
    if kind == "coroutine":

        async def coroutine(x: int) -> int:
            body(x)
            return 3

        return traced(**options)(coroutine)
    if kind == "generator":

        def generator(x: int) -> Iterator[int]:
            yield 1
            body(x)
            yield 2

        return traced(**options)(generator)

    async def async_generator(x: int) -> Any:
        yield 1
        body(x)
        yield 2

    return traced(**options)(async_generator)


default_registry().register_type(
    "sdk_failures:explicit", params_schema={"type": "object"}, result_schema={"type": "object"}
)


async def _explicit(tracer: Tracer, fails: bool) -> int:
    # An instance that validates against the tracer's registry, made without asking that
    # registry for a schema version (the call under test is the span, not the instance).
    inst = InstanceState(tracer, generate_pfid(), "explicit", 0, tracer.registry)
    async with SpanContext(inst, "sdk_failures:explicit") as span:
        await span.start({"x": 1})
        if fails:
            raise UserError(1)
        await span.complete({"value": 3})
    return 3


def _call(kind: str, mode: str, fails: bool, tracer: Tracer, nested: bool = False) -> Any:
    """Make the call; return what it returned (generators: what they yielded).

    ``nested``: inside an open span of an instance of ``tracer`` (else a root call).
    """
    if nested:
        inst = InstanceState(tracer, generate_pfid(), "nested", 0, tracer.registry)
        token = CURRENT_SPAN.set(SpanState(generate_pfid(), inst, "sdk_failures:outer"))
        try:
            return _call(kind, mode, fails, tracer)
        finally:
            CURRENT_SPAN.reset(token)
    if kind == "span-context":
        return asyncio.run(_explicit(tracer, fails))
    out = _traced(kind, mode, fails)(1)
    if inspect.iscoroutine(out):
        return asyncio.run(out)
    if inspect.isasyncgen(out):

        async def collect() -> list[int]:
            return [item async for item in out]

        return asyncio.run(collect())
    return list(out) if inspect.isgenerator(out) else out


def _expected(kind: str) -> Any:
    return [1, 2] if "generator" in kind else 3


@pytest.fixture
def quiet() -> Iterator[None]:
    """Internal errors swallowed, as in a user's agent."""
    set_raise_internal_errors(False)
    yield
    set_raise_internal_errors(True)


CASES = [
    pytest.param(broken, kind, mode, id=f"{broken}-{kind}-{mode}")
    for broken in BROKEN
    for kind in KINDS
    for mode in MODES
    if not (kind == "span-context" and mode == "custom")
]


@pytest.mark.parametrize(("broken", "kind", "mode"), CASES)
@pytest.mark.parametrize("fails", [False, True], ids=["returns", "raises"])
@pytest.mark.parametrize("nested", [False, True], ids=["root", "nested"])
def test_a_broken_part_never_reaches_the_callers_code(
    quiet: None, broken: str, kind: str, mode: str, fails: bool, nested: bool
) -> None:
    tracer = _tracer(broken, mode)
    previous = runtime.swap(tracer)
    before = tracer.stats()["tracing_errors"]
    try:
        if fails:
            with pytest.raises(UserError):
                _call(kind, mode, fails, tracer, nested)
        else:
            assert _call(kind, mode, fails, tracer, nested) == _expected(kind)
        tracer.flush(10)
        stats = tracer.stats()
        assert stats["tracing_errors"] - before + sum(stats["dropped"].values()) > 0
    finally:
        runtime.swap(previous)
        tracer.close(10)


@pytest.mark.parametrize(("broken", "kind", "mode"), CASES)
@pytest.mark.parametrize("nested", [False, True], ids=["root", "nested"])
def test_with_internal_errors_surfacing_the_suite_sees_the_broken_part(
    broken: str, kind: str, mode: str, nested: bool
) -> None:
    tracer = _tracer(broken, mode)
    previous = runtime.swap(tracer)
    try:
        with pytest.raises(Broken, match=broken):
            _call(kind, mode, False, tracer, nested)
            tracer.flush(10)
    finally:
        runtime.swap(previous)
        set_raise_internal_errors(False)
        tracer.close(10)
        set_raise_internal_errors(True)


@pytest.fixture
def unbuildable() -> Iterator[None]:
    """No tracer installed, and building the default one fails (a bad configuration)."""

    def fail() -> Tracer:
        raise Broken("tracer factory")

    previous = runtime.swap(None)
    TRACER.set_default(fail)
    yield
    TRACER.set_default(runtime._default)
    runtime.swap(previous)


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "span-context"])
def test_a_tracer_that_cannot_be_built_leaves_every_kind_of_call_untraced(
    quiet: None, unbuildable: None, kind: str
) -> None:
    before = contained_count()
    assert _call(kind, "lenient", False, None) == _expected(kind)  # type: ignore[arg-type]
    assert contained_count() > before


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "span-context"])
def test_with_internal_errors_surfacing_a_tracer_that_cannot_be_built_is_seen(
    unbuildable: None, kind: str
) -> None:
    with pytest.raises(Broken, match="tracer factory"):
        _call(kind, "lenient", False, None)  # type: ignore[arg-type]
