"""Parent and child links follow await, gather, create_task, threads and executors."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

from tracing_helpers import type_of

from prefactor._tracing.context import ContextThreadPoolExecutor, current_span, in_context
from prefactor._tracing.decorator import traced
from prefactor.testing.recorder import Recorder


@traced
def leaf(i: int) -> int:
    return i


@traced
async def aleaf(i: int) -> int:
    await asyncio.sleep(0)
    return leaf(i)


def test_children_follow_gather_and_create_task(recorder: Recorder) -> None:
    @traced
    async def root() -> None:
        await asyncio.gather(aleaf(1), aleaf(2))
        await asyncio.create_task(aleaf(3))

    asyncio.run(root())
    trace = recorder.trace()
    root_span = trace.span(type_of(root))
    assert [s.parent_id for s in trace.spans_of_type(type_of(aleaf))] == [root_span.id] * 3
    assert len(trace.instances) == 1


def test_in_context_carries_the_parent_into_a_thread(recorder: Recorder) -> None:
    @traced
    def root() -> None:
        t = threading.Thread(target=in_context(leaf), args=(1,))
        t.start()
        t.join()

    root()
    trace = recorder.trace()
    assert trace.span(type_of(leaf)).parent_id == trace.span(type_of(root)).id


def test_context_executor_nests_pool_work_under_the_submitter(recorder: Recorder) -> None:
    @traced
    def root() -> list[int]:
        with ContextThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(leaf, range(8)))

    assert root() == list(range(8))
    trace = recorder.trace()
    root_id = trace.span(type_of(root)).id
    assert [s.parent_id for s in trace.spans_of_type(type_of(leaf))] == [root_id] * 8
    assert len(trace.instances) == 1


def test_plain_executor_without_context_starts_separate_roots(recorder: Recorder) -> None:
    @traced
    def root() -> None:
        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(leaf, range(2)))

    root()
    trace = recorder.trace()
    assert [s.parent_id for s in trace.spans_of_type(type_of(leaf))] == [None, None]
    assert len(trace.instances) == 3


def test_current_span_is_restored_after_the_call(recorder: Recorder) -> None:
    assert current_span() is None
    leaf(1)
    assert current_span() is None
