"""Must FAIL mypy: wrong argument types through a decorated function are still caught."""

from __future__ import annotations

import prefactor


@prefactor.traced
def add(a: int, b: int = 2) -> int:
    return a + b


@prefactor.tool
def search(query: str) -> list[str]:
    return [query]


add("one")
search(query=3)
result: str = add(1)
