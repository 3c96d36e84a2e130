"""The core tests start from no configuration: no PREFACTOR_* setting, no process-wide tracer."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor import _runtime as runtime
from prefactor._config import ENV_VARS, Switch


@pytest.fixture(autouse=True)
def no_configuration(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ENV_VARS:
        if var.model is not Switch:
            monkeypatch.delenv(var.name, raising=False)
    yield
    runtime.shutdown()
