"""Checked by mypy in tests/typing/test_typing.py: decorators keep ``Callable[P, R]``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import assert_type

import prefactor


@prefactor.traced
def add(a: int, b: int = 2) -> int:
    return a + b


@prefactor.traced("agent:llm")
async def complete(prompt: str, *, temperature: float = 0.0) -> str:
    return prompt


@prefactor.tool
def search(query: str, limit: int = 5) -> list[str]:
    return [query] * limit


@prefactor.traced(span_type="agent:step", exclude=["b"])
def step(a: int, b: str) -> int:
    return a


@prefactor.traced(name="typed.parse")
def parse(text: str) -> list[str]:
    return text.split()


@prefactor.tool(name="calc")
def calc(expression: str) -> float:
    return 0.0


@prefactor.agent(agent_id="typed", version="1")
def run(goal: str) -> dict[str, str]:
    return {"goal": goal}


@prefactor.traced
def stream(n: int) -> Iterator[str]:
    yield from ("x" for _ in range(n))


assert_type(add(1), int)
assert_type(add(1, b=3), int)
assert_type(search("q"), list[str])
assert_type(step(1, "x"), int)
assert_type(parse("a b"), list[str])
assert_type(calc("1+1"), float)
assert_type(run("g"), dict[str, str])
assert_type(stream(2), Iterator[str])


async def use() -> None:
    assert_type(await complete("hi", temperature=0.5), str)


# The config objects type-check with and without pydantic's mypy plugin (this run has none).
http = prefactor.HttpClientConfig("https://api.test", "token", 5.0)
token: str = http.api_token
queue = prefactor.QueueConfig(num_workers=2)
core = prefactor.PrefactorCoreConfig(http_config=http, queue_config=queue, agent_id="a")
