"""The core tests start from no configuration (no PREFACTOR_* setting, no process-wide tracer)
and see the SDK's internal errors instead of having them swallowed."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor import _runtime as runtime
from prefactor._config import ENV_VARS, Switch
from prefactor._export._internal import set_raise_internal_errors


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ENV_VARS:
        if var.model is not Switch:
            monkeypatch.delenv(var.name, raising=False)
    set_raise_internal_errors(True)
    yield
    runtime.shutdown()
    set_raise_internal_errors(None)
