"""``Tracer.check`` on values the fast engine cannot read: the reference engine decides."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor import _runtime as runtime
from prefactor._config import PrefactorCoreConfig
from prefactor._errors import SchemaValidationError
from prefactor._export.sinks import MemorySink
from prefactor._schemas.registry import SchemaRegistry
from prefactor._tracing.state import InstanceState
from prefactor._tracing.tracer import Tracer


def _registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register_type(name="t:any", params_schema={"type": "object"})
    registry.register_type(
        name="t:named",
        params_schema={"type": "object", "required": ["name"]},
    )
    return registry


@pytest.fixture(params=[False, True], ids=["lenient", "strict"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[Tracer, InstanceState]]:
    config = PrefactorCoreConfig(
        schema_registry=_registry(), sink=MemorySink(), strict=request.param
    )
    tracer = runtime.build_tracer(config)
    yield tracer, tracer.new_instance(agent_version={"name": "a"})
    tracer.close(5)


def test_a_valid_payload_the_fast_engine_cannot_read_passes(
    setup: tuple[Tracer, InstanceState],
) -> None:
    tracer, inst = setup
    # jsonschema-rs refuses non-string keys; python-jsonschema accepts the object.
    assert tracer.check(inst, "t:any", "params", {1: 2}) == ()


def test_an_invalid_payload_the_fast_engine_cannot_read_is_still_caught(
    setup: tuple[Tracer, InstanceState],
) -> None:
    tracer, inst = setup
    if tracer.strict:
        with pytest.raises(SchemaValidationError, match="'name' is a required property"):
            tracer.check(inst, "t:named", "params", {1: 2})
    else:
        (violation,) = tracer.check(inst, "t:named", "params", {1: 2})
        assert (violation.side, violation.path) == ("params", "$")
        assert "'name' is a required property" in violation.reason


def test_the_fast_engine_judges_ordinary_payloads(setup: tuple[Tracer, InstanceState]) -> None:
    tracer, inst = setup
    assert tracer.check(inst, "t:named", "params", {"name": "x"}) == ()
    if not tracer.strict:
        assert len(tracer.check(inst, "t:named", "params", {})) == 1


def test_fast_checks_follow_the_registrys_contents() -> None:
    registry = _registry()
    params, result = registry.fast_checks("t:named")
    assert result is None  # no result schema
    assert params is not None and params({"name": "x"}) is True and params({}) is False
    assert registry.fast_checks("t:later") == (None, None)
    registry.register_type(
        name="t:later",
        params_schema={"type": "object", "required": ["a"]},
        result_schema={"type": "object", "required": ["b"]},
    )
    params, result = registry.fast_checks("t:later")
    assert params is not None and result is not None
    assert (params({"a": 1}), result({})) == (True, False)
