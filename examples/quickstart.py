"""A small offline research agent, traced end to end. Run: ``python examples/quickstart.py``.

No account, no network, no LLM: the "tools" are plain functions. With nothing
configured, prefactor writes every span to the embedded store
(``.prefactor/traces.db``); this script then reads the run back and prints its
span tree with durations and statuses.
"""

from __future__ import annotations

import time

import prefactor
from prefactor.traces import default_db_path, list_recent, show_instance

LIBRARY = {
    "solar": "Photovoltaic cells turn sunlight into a flow of electrons.",
    "panels": "Panels wire many cells together; an inverter makes household AC.",
    "storage": "Batteries keep the surplus for the evening.",
}


@prefactor.tool
def search(query: str, max_results: int = 3) -> list[str]:
    """Find library topics whose name appears in the query."""
    time.sleep(0.002)
    return [topic for topic in LIBRARY if topic in query.lower()][:max_results]


@prefactor.tool
def read(topic: str) -> str:
    """Read one library entry."""
    time.sleep(0.001)
    return LIBRARY[topic]


@prefactor.traced
def plan(question: str) -> list[str]:
    """Split the question into search queries."""
    return [question, f"{question} storage"]


@prefactor.traced
def write_answer(question: str, notes: list[str]) -> str:
    """Compose the answer from the notes."""
    return f"{question} " + " ".join(notes)


@prefactor.agent(agent_id="quickstart-agent", version="1.0.0")
def research_agent(question: str) -> str:
    """Answer a question from the offline library."""
    notes: list[str] = []
    for query in plan(question):
        for topic in search(query):
            if (text := read(topic)) not in notes:
                notes.append(text)
    return write_answer(question, notes)


def main() -> None:
    answer = research_agent("How do solar panels work?")
    print(f"answer: {answer}\n")
    prefactor.flush(10)

    (latest,) = list_recent(agent_id="quickstart-agent", limit=1)
    print(show_instance(latest["id"]))
    print(f"\nstored in {default_db_path()}. To look at it again:")
    print("  prefactor traces                 # recent runs")
    print(f"  prefactor show {latest['id']}")
    print("  prefactor serve                  # a web viewer and the API over it (server extra)")


if __name__ == "__main__":
    main()
