"""A child forked while another thread held one of the SDK's locks does not hang on it.

Each test holds a lock (as another thread of the parent would at the moment of
the fork), forks, and has the child do what takes that lock; the parent waits
for the child, which must exit cleanly within the deadline.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from tracing_helpers import Stored

from prefactor._schemas import validation
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing import guard, naming
from prefactor._tracing.slot import TracerSlot


def _forked_while_held(lock: Any, in_child: Callable[[], object]) -> None:
    with lock:
        pid = os.fork()
        if pid == 0:  # the child: must not hang on the lock it inherited held
            code = 1
            try:
                in_child()
                code = 0
            finally:
                os._exit(code)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        time.sleep(0.02)
    else:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail("the child hung on a lock held at the fork")
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_live_instance_index(stored: Stored) -> None:
    tracer = stored.tracer
    _forked_while_held(
        tracer._instances._lock, lambda: tracer.new_instance(agent_version={"name": "child"})
    )


def test_the_tracers_violation_counter(stored: Stored) -> None:
    tracer = stored.tracer

    def flag() -> None:
        tracer._flag("tool:step", "params", [("$.n", "'x' is not of type 'integer'")])
        assert tracer.stats()["schema_violations"] == 1

    _forked_while_held(tracer._lock, flag)


def test_the_compiled_schema_cache() -> None:
    _forked_while_held(
        validation._cache_lock,
        lambda: validation.compile_schema({"type": "string", "title": "compiled in the child"}),
    )


def test_a_schema_registry() -> None:
    registry = SchemaRegistry()
    _forked_while_held(
        registry._lock, lambda: registry.register_type("child:step", {"type": "object"})
    )


def test_the_span_type_claims() -> None:
    def child_step() -> None:
        pass

    _forked_while_held(naming._lock, lambda: naming.claim("child:step", child_step))


def test_the_contained_failure_counter() -> None:
    def contained() -> None:
        before = guard.contained_count()
        try:
            raise RuntimeError("an SDK failure in the child")
        except RuntimeError as exc:
            try:
                guard.contain(exc, "do a thing in the child")
            except RuntimeError:
                pass  # surfaced when the test environment asks for internal errors
        assert guard.contained_count() == before + 1

    _forked_while_held(guard._lock, contained)


def test_the_tracer_slot() -> None:
    slot = TracerSlot()
    _forked_while_held(slot._lock, lambda: slot.swap(None))
