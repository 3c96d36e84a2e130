"""The tracer's index of live instances: it finds what still runs and forgets what has ended."""

from __future__ import annotations

import gc
import threading

from tracing_helpers import Stored

from prefactor._errors import PrefactorTerminatedError
from prefactor._tracing.agents import agent
from prefactor._tracing.decorator import traced
from prefactor._tracing.state import InstanceState
from prefactor.server.store import Store


@traced
def step(n: int) -> int:
    return n


def test_a_running_instance_is_terminated_by_the_platform_after_thousands_have_ended(
    stored: Stored,
) -> None:
    for _ in range(4):  # rounds of root calls: each call an instance of its own that ends
        for n in range(2500):
            step(n)
        assert stored.tracer.flush(30)
        gc.collect()
    # Ended instances are swept, not kept for ever: the index stays within about twice the
    # most instances ever alive at once (here at most a round's), not every one ever made.
    assert len(stored.tracer._instances) < 5000
    ready, go = threading.Event(), threading.Event()
    outcome: list[BaseException] = []

    @agent(name="long")
    def run() -> None:
        step(0)
        ready.set()
        go.wait(10)
        step(1)  # its answer carries the platform's terminate signal
        assert stored.tracer.flush(10)
        step(2)  # refused in the caller: the instance was found and marked

    def body() -> None:
        try:
            run()
        except BaseException as exc:  # handed to the test's thread
            outcome.append(exc)

    thread = threading.Thread(target=body)
    thread.start()
    assert ready.wait(10) and stored.tracer.flush(10)
    store = Store(stored.path)
    try:
        (running,) = store.list_instances(page_size=1)["summaries"]  # newest first
        assert running["status"] == "active"
        store.terminate_instance(running["id"], {"reason": "operator stop"})
    finally:
        store.close()
    go.set()
    thread.join(20)
    assert len(outcome) == 1 and isinstance(outcome[0], PrefactorTerminatedError)
    assert "operator stop" in str(outcome[0])


def test_an_instance_is_found_by_id_while_it_lives(stored: Stored) -> None:
    tracer = stored.tracer
    kept = [tracer.new_instance(agent_version={"name": "a"}) for _ in range(3000)]
    gc.collect()
    assert all(tracer.instance(inst.id) is inst for inst in kept)


def test_instances_added_from_several_threads_are_all_found(stored: Stored) -> None:
    tracer = stored.tracer
    made: list[list[InstanceState]] = [[] for _ in range(4)]

    def add(into: list[InstanceState]) -> None:
        for _ in range(1500):
            into.append(tracer.new_instance(agent_version={"name": "a"}))

    workers = [threading.Thread(target=add, args=(made[i],)) for i in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
    assert all(tracer.instance(inst.id) is inst for row in made for inst in row)
