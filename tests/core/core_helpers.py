"""What the prefactor-core tests share: the Quick Start's LLM span type and agent version."""

from __future__ import annotations

from prefactor._schemas.registry import SchemaRegistry

VERSION = {"name": "My Agent", "external_identifier": "v1.0.0"}

LLM_PARAMS = {
    "type": "object",
    "properties": {"model": {"type": "string"}, "prompt": {"type": "string"}},
    "required": ["model", "prompt"],
}
LLM_RESULT = {"type": "object", "properties": {"response": {"type": "string"}}}


def llm_registry() -> SchemaRegistry:
    """A registry holding the Quick Start's ``agent:llm`` span type."""
    registry = SchemaRegistry()
    registry.register_type(
        name="agent:llm",
        params_schema=LLM_PARAMS,
        result_schema=LLM_RESULT,
        title="LLM Call",
        description="A call to a language model",
        template="{{model}}: {{prompt}} → {{response}}",
    )
    return registry
