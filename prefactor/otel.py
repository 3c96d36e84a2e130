"""OpenTelemetry export: send prefactor's spans to any OTLP/HTTP endpoint.

Needs the ``otel`` extra (``pip install 'prefactor[otel]'``)::

    import prefactor
    from prefactor.otel import OtlpSink

    prefactor.configure(sink=OtlpSink("http://localhost:4318/v1/traces"))

The mapping to the GenAI semantic conventions is described in the docs
(*OpenTelemetry export*). The other direction, OTLP into ``prefactor serve``,
needs nothing in the SDK: point any OpenTelemetry exporter at the server's
``/v1/traces``.
"""

from prefactor._otel.config import OtlpConfig
from prefactor._otel.semconv import GENAI_SEMCONV_VERSION
from prefactor._otel.sink import OtlpSink

__all__ = ["GENAI_SEMCONV_VERSION", "OtlpConfig", "OtlpSink"]

for _name in ("OtlpConfig", "OtlpSink"):
    globals()[_name].__module__ = "prefactor.otel"
del _name
