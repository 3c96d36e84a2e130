"""A tiny offline packing assistant, instrumented with prefactor.

Each call of :func:`packing_assistant` is one agent instance; its two tools
are recorded as child spans, with params and result schemas derived from
their type hints.
"""

from __future__ import annotations

from prefactor import agent, tool

_FORECASTS: dict[str, tuple[float, str]] = {
    "lisbon": (24.0, "sunny"),
    "oslo": (3.5, "snow"),
    "london": (12.0, "rain"),
}


@tool
def get_forecast(city: str) -> dict[str, float | str]:
    """Today's forecast for a city, from a built-in table."""
    celsius, sky = _FORECASTS[city.lower()]
    return {"celsius": celsius, "sky": sky}


@tool
def choose_clothing(celsius: float, sky: str | None) -> list[str]:
    """What to pack for a temperature and sky."""
    items = ["t-shirt"] if celsius >= 18 else ["jumper", "coat"]
    if sky in ("rain", "snow"):
        items.append("umbrella" if sky == "rain" else "boots")
    return items


@agent(agent_id="packing-assistant", version="1.0")
def packing_assistant(city: str) -> str:
    """Look up the forecast, then say what to pack."""
    forecast = get_forecast(city)
    sky = forecast["sky"]
    items = choose_clothing(float(forecast["celsius"]), sky if isinstance(sky, str) else None)
    return f"{city}: pack " + ", ".join(items)
