"""The prefactor-core README's Quick Start, with only its import lines changed.

The one addition is ``call_llm``, which the original leaves to the reader. The
API URL is the original's too: with no network, nothing is delivered, and the
script still finishes at once; a warning at exit says how many records were
lost. Point it at ``prefactor serve`` to see the trace.
"""

import asyncio

from prefactor import HttpClientConfig, PrefactorCoreClient, PrefactorCoreConfig, SchemaRegistry


async def call_llm() -> str:
    await asyncio.sleep(0.01)
    return "Hello! How can I help?"


registry = SchemaRegistry()
registry.register_type(
    name="agent:llm",
    params_schema={
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "prompt": {"type": "string"},
        },
        "required": ["model", "prompt"],
    },
    result_schema={
        "type": "object",
        "properties": {"response": {"type": "string"}},
    },
    title="LLM Call",
    description="A call to a language model",
    template="{{model}}: {{prompt}} → {{response}}",
)

async def main():
    config = PrefactorCoreConfig(
        http_config=HttpClientConfig(
            api_url="https://api.prefactor.ai",
            api_token="your-token",
        ),
        schema_registry=registry,
    )

    async with PrefactorCoreClient(config) as client:
        instance = await client.create_agent_instance(
            agent_id="my-agent",
            agent_version={"name": "My Agent", "external_identifier": "v1.0.0"},
        )

        await instance.start()

        async with instance.span("agent:llm") as span:
            await span.start({"model": "gpt-4", "prompt": "Hello"})
            result = await call_llm()
            await span.complete({"response": result})

        await instance.finish()

asyncio.run(main())
