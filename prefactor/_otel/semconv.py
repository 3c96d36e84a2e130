"""The attribute names both directions agree on, and the convention versions they follow.

Export (:mod:`prefactor._otel.spans`) writes these names and ingest
(:mod:`prefactor.server.otlp_mapping`) reads them, so a span that leaves
through the OTLP sink and comes back through ``prefactor serve`` is read with
the same table it was written with.

GenAI names follow the OpenTelemetry semantic conventions **v1.41.0**
(``docs/gen-ai``, status Development), the last release before the GenAI
conventions moved to their own repository. OpenInference names follow
``openinference-semantic-conventions`` 0.1.x.
"""

from __future__ import annotations

__all__ = [
    "AGENT_DESCRIPTION",
    "AGENT_ID",
    "AGENT_NAME",
    "AGENT_VERSION",
    "ERROR_TYPE",
    "GENAI_SEMCONV_VERSION",
    "INPUT_MESSAGES",
    "OI_INPUT_VALUE",
    "OI_LLM_INPUT_MESSAGES",
    "OI_LLM_MODEL_NAME",
    "OI_LLM_OUTPUT_MESSAGES",
    "OI_LLM_PROVIDER",
    "OI_LLM_SYSTEM",
    "OI_LLM_TOKENS_COMPLETION",
    "OI_LLM_TOKENS_PROMPT",
    "OI_LLM_TOKENS_TOTAL",
    "OI_OUTPUT_VALUE",
    "OI_SPAN_KIND",
    "OI_TOOL_DESCRIPTION",
    "OI_TOOL_NAME",
    "OI_TOOL_PARAMETERS",
    "OPERATION",
    "OUTPUT_MESSAGES",
    "PF_INSTANCE_ID",
    "PF_PARAMS",
    "PF_RESULT",
    "PF_SCHEMA_VERSION",
    "PF_SCHEMA_VIOLATIONS",
    "PF_SPAN_ID",
    "PF_SPAN_STATUS",
    "PF_SPAN_TYPE",
    "PROVIDER_NAME",
    "REQUEST_MODEL",
    "RESPONSE_FINISH_REASONS",
    "RESPONSE_MODEL",
    "SCHEMA_URL",
    "SYSTEM",
    "SYSTEM_INSTRUCTIONS",
    "TOOL_CALL_ARGUMENTS",
    "TOOL_CALL_ID",
    "TOOL_CALL_RESULT",
    "TOOL_DEFINITIONS",
    "TOOL_DESCRIPTION",
    "TOOL_NAME",
    "TOOL_TYPE",
    "USAGE_INPUT_TOKENS",
    "USAGE_OUTPUT_TOKENS",
]

GENAI_SEMCONV_VERSION = "1.41.0"
"""The OpenTelemetry semantic conventions release whose GenAI spans we follow."""

SCHEMA_URL = f"https://opentelemetry.io/schemas/{GENAI_SEMCONV_VERSION}"

# --- OpenTelemetry GenAI (v1.41.0) ----------------------------------------------------------
OPERATION = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
SYSTEM = "gen_ai.system"  # the name before gen_ai.provider.name; older instrumentations send it
AGENT_NAME = "gen_ai.agent.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_VERSION = "gen_ai.agent.version"
AGENT_DESCRIPTION = "gen_ai.agent.description"
TOOL_NAME = "gen_ai.tool.name"
TOOL_DESCRIPTION = "gen_ai.tool.description"
TOOL_TYPE = "gen_ai.tool.type"
TOOL_CALL_ID = "gen_ai.tool.call.id"
TOOL_CALL_ARGUMENTS = "gen_ai.tool.call.arguments"
TOOL_CALL_RESULT = "gen_ai.tool.call.result"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
REQUEST_MODEL = "gen_ai.request.model"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
ERROR_TYPE = "error.type"

# --- OpenInference --------------------------------------------------------------------------
OI_SPAN_KIND = "openinference.span.kind"
OI_INPUT_VALUE = "input.value"
OI_OUTPUT_VALUE = "output.value"
OI_TOOL_NAME = "tool.name"
OI_TOOL_DESCRIPTION = "tool.description"
OI_TOOL_PARAMETERS = "tool.parameters"
OI_LLM_MODEL_NAME = "llm.model_name"
OI_LLM_PROVIDER = "llm.provider"
OI_LLM_SYSTEM = "llm.system"
OI_LLM_INPUT_MESSAGES = "llm.input_messages"
OI_LLM_OUTPUT_MESSAGES = "llm.output_messages"
OI_LLM_TOKENS_PROMPT = "llm.token_count.prompt"
OI_LLM_TOKENS_COMPLETION = "llm.token_count.completion"
OI_LLM_TOKENS_TOTAL = "llm.token_count.total"

# --- prefactor's own ------------------------------------------------------------------------
PF_SPAN_TYPE = "prefactor.span.type"
PF_SPAN_ID = "prefactor.span.id"
PF_SPAN_STATUS = "prefactor.span.status"
PF_INSTANCE_ID = "prefactor.instance.id"
PF_SCHEMA_VERSION = "prefactor.schema_version"
PF_SCHEMA_VIOLATIONS = "prefactor.schema_violations"
PF_PARAMS = "prefactor.params"
PF_RESULT = "prefactor.result"
