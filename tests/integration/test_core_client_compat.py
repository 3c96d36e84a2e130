"""The real prefactor-core 0.5.3 client (from PyPI) against ``prefactor serve`` on loopback.

That client sends an instance's start and finish from concurrent workers, so a
start may reach the server after the finish; and it raises from ``close()``
once any request was refused for good. Many runs, in every shape it sends,
must all close cleanly and be stored as they ran.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from integration_helpers import TOKEN, Served
from prefactor_core import PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry
from prefactor_http.config import HttpClientConfig

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

AGENT = "core-0.5.3"
ROUNDS, CONCURRENT = 10, 6
SHAPES = ("no-spans", "complete", "failed", "cancelled")


def _registry() -> SchemaRegistry:
    registry = SchemaRegistry()
    registry.register_type(
        name="agent:llm",
        params_schema={
            "type": "object",
            "properties": {"model": {"type": "string"}},
            "required": ["model"],
        },
        result_schema={
            "type": "object",
            "properties": {"response": {"type": "string"}},
            "required": ["response"],
        },
    )
    return registry


async def _run(url: str, shape: str) -> str:
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(api_url=url, api_token=TOKEN, max_retries=0),
        schema_registry=_registry(),
    )
    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(
            agent_id=AGENT, agent_version={"name": "core", "external_identifier": "v1"}
        )
        await instance.start()
        if shape != "no-spans":
            async with instance.span("agent:llm") as span:
                await span.start({"model": "m"})
                if shape == "complete":
                    await span.complete({"response": "r"})
                elif shape == "failed":
                    await span.fail({"error": "the model timed out"})
                else:
                    await span.cancel()
        await instance.finish()
    return str(instance.id)


@pytest.fixture
def quiet_core_client() -> Any:
    # The client logs every retried or refused request at ERROR with a traceback.
    logger = logging.getLogger("prefactor_core")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


async def test_the_real_core_client_never_fails_against_our_server(
    served: Served, quiet_core_client: Any
) -> None:
    failures: list[BaseException] = []
    ran: dict[str, str] = {}
    for round_ in range(ROUNDS):
        shapes = [SHAPES[(round_ + i) % len(SHAPES)] for i in range(CONCURRENT)]
        results = await asyncio.gather(
            *(_run(served.url, shape) for shape in shapes), return_exceptions=True
        )
        for shape, result in zip(shapes, results, strict=True):
            if isinstance(result, BaseException):
                failures.append(result)
            else:
                ran[result] = shape
    assert failures == []
    stored = {inst["id"]: inst for inst in served.instances(AGENT)}
    assert {iid: stored[iid]["status"] for iid in ran} == dict.fromkeys(ran, "complete")
    spans = {iid: [s["status"] for s in served.spans(iid)] for iid in ran}
    expected = {"no-spans": [], "complete": ["complete"], "failed": ["failed"]}
    expected["cancelled"] = ["cancelled"]
    assert spans == {iid: expected[shape] for iid, shape in ran.items()}
