"""Fixtures shared by the exporter tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from prefactor._export._internal import set_raise_internal_errors


@pytest.fixture(autouse=True)
def surface_internal_errors() -> Iterator[None]:
    """Our own tests turn swallowed internal errors into failures."""
    set_raise_internal_errors(True)
    yield
    set_raise_internal_errors(None)
