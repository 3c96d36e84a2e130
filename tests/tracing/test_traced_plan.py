"""The plan of a decorated function: compiled once per tracer, rebuilt when the tracer changes."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from prefactor import _runtime as runtime
from prefactor._errors import SchemaValidationError
from prefactor._tracing.decorator import spec_of, traced
from prefactor.testing.recorder import Recorder


@traced(name="plan.scale")
def scale(x: int, factor: int = 2) -> int:
    return x * factor


def test_the_plan_is_compiled_by_the_first_call_and_reused_by_the_next() -> None:
    recorder = Recorder.install(strict=False)
    try:
        spec = spec_of(scale)
        assert spec is not None
        scale(1)
        plan = spec.plan
        scale(2)
        assert spec.plan is plan
        assert plan.generation == runtime.get_tracer().generation
        assert recorder.trace().spans_of_type("function:plan.scale")[-1].params == {
            "x": 2,
            "factor": 2,
        }
    finally:
        runtime.shutdown()


def test_a_new_tracer_with_other_settings_gets_a_new_plan_at_its_first_call() -> None:
    spec = spec_of(scale)
    assert spec is not None
    Recorder.install(strict=False)
    try:
        scale("not a number")  # type: ignore[arg-type]  # lenient: flagged, not raised
        lenient_plan = spec.plan
        Recorder.install(strict=True)
        with pytest.raises(SchemaValidationError, match=r"plan.scale params at \$.x"):
            scale("not a number")  # type: ignore[arg-type]
        assert spec.plan is not lenient_plan
        assert (lenient_plan.eager_params, spec.plan.eager_params) == (False, True)
    finally:
        runtime.shutdown()


def test_a_plan_is_frozen() -> None:
    Recorder.install(strict=False)
    try:
        scale(1)
        spec = spec_of(scale)
        assert spec is not None
        with pytest.raises(dataclasses.FrozenInstanceError):
            spec.plan.eager_params = True  # type: ignore[misc]
    finally:
        runtime.shutdown()


def test_every_tracer_has_a_generation_of_its_own() -> None:
    first, second = Recorder.install(strict=False), Recorder.install(strict=False)
    try:
        generations = {first._tracer.generation, second._tracer.generation}  # type: ignore[union-attr]
        assert len(generations) == 2
        assert 0 not in generations  # 0 is the uncompiled plan's
    finally:
        second.uninstall()
        first.uninstall()


def test_tracing_never_imports_the_runtime() -> None:
    """The runtime fills tracing's tracer slot; the dependency points one way."""
    package = Path(__file__).resolve().parents[2] / "prefactor" / "_tracing"
    importers = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(name.startswith("prefactor._runtime") for name in names) or (
                isinstance(node, ast.ImportFrom)
                and node.module == "prefactor"
                and any(a.name == "_runtime" for a in node.names)
            ):
                importers.append(path.name)
    assert importers == []
