"""An async agent whose tools run concurrently. Run: ``python examples/async_agent.py``.

``asyncio.gather`` keeps every tool span under the agent's span, since
asyncio copies the context into each task. A blocking tool runs in a
``ContextThreadPoolExecutor``, which carries the context into the thread, so
its span nests correctly too.
"""

from __future__ import annotations

import asyncio
import hashlib

import prefactor
from prefactor.traces import list_recent, show_instance

FORECASTS = {"paris": 18.5, "oslo": 4.0, "lima": 22.0}


@prefactor.tool
async def forecast(city: str) -> float:
    """Tomorrow's temperature for a city (simulated I/O)."""
    await asyncio.sleep(0.01)
    return FORECASTS[city]


@prefactor.tool
def checksum(text: str) -> str:
    """A CPU-bound step, run in a thread."""
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@prefactor.agent(agent_id="async-weather-agent", version="1.0.0")
async def weather_report(cities: list[str]) -> dict[str, float]:
    """Fetch every forecast at once, then sign the report in a worker thread."""
    temperatures = await asyncio.gather(*(forecast(city) for city in cities))
    report = dict(zip(cities, temperatures, strict=True))
    loop = asyncio.get_running_loop()
    with prefactor.ContextThreadPoolExecutor(max_workers=2) as pool:
        await loop.run_in_executor(pool, checksum, repr(sorted(report.items())))
    return report


def main() -> None:
    report = asyncio.run(weather_report(["paris", "oslo", "lima"]))
    print(f"report: {report}\n")
    prefactor.flush(10)
    (latest,) = list_recent(agent_id="async-weather-agent", limit=1)
    print(show_instance(latest["id"]))


if __name__ == "__main__":
    main()
