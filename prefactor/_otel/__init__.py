"""OpenTelemetry both ways: the OTLP sink (export) and what ingest shares with it."""
