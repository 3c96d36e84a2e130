"""Shared values for the store and server tests: a schema version, payloads, bodies, a server."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]

LLM_PARAMS = {
    "type": "object",
    "properties": {
        "model": {"type": "string"},
        "messages": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "role": {"enum": ["user", "assistant", "system"]},
                    "content": {"type": "string"},
                },
                "required": ["role", "content"],
            },
        },
    },
    "required": ["model", "messages"],
}
LLM_RESULT = {
    "type": "object",
    "properties": {"text": {"type": "string"}},
    "required": ["text"],
}
SCHEMA_VERSION: dict[str, Any] = {
    "external_identifier": "schemas-v1",
    "span_type_schemas": [
        {
            "name": "agent:llm",
            "title": "LLM call",
            "params_schema": LLM_PARAMS,
            "result_schema": LLM_RESULT,
            "template": "{{ model }} call",
        },
        {"name": "agent:tool", "params_schema": {"type": "object"}},
    ],
    "quality_schemas": [
        {
            "name": "accuracy",
            "schema": {
                "type": "object",
                "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}},
                "required": ["score"],
            },
            "template": "score {{ score }}",
        }
    ],
}
GOOD_PAYLOAD = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}

Register = Callable[..., str]


def span_body(instance_id: str, **details: Any) -> dict[str, Any]:
    """A span create body for the LLM span type with a valid payload."""
    base: dict[str, Any] = {
        "agent_instance_id": instance_id,
        "schema_name": "agent:llm",
        "status": "active",
        "payload": GOOD_PAYLOAD,
    }
    return {"details": {**base, **details}}


class ServeProcess:
    """``prefactor serve`` in a subprocess on a free loopback port (started at once).

    Call :meth:`wait_listening` for its URL; starting several before waiting
    lets their start-ups overlap.
    """

    def __init__(self, db: str, token: str, *args: str) -> None:
        self.args = args
        command = ["serve", "--port", "0", "--db", db, "--token", token, *args]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefactor._cli", *command],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.header: list[str] = []

    def wait_listening(self) -> str:
        """The server's URL, once it prints its banner (the test fails if it does not)."""
        assert self.proc.stdout is not None
        lines = 5 if "--workers" in self.args else 4  # the last: the viewer's sign-in
        self.header = [self.proc.stdout.readline() for _ in range(lines)]
        if not self.header[0].startswith("prefactor serve: listening on "):
            self.proc.kill()
            stderr = self.proc.stderr.read() if self.proc.stderr else ""
            pytest.fail(f"serve did not start: {self.header} {stderr}")
        return self.header[0].split("listening on ", 1)[1].strip()

    def stop(self) -> str:
        """Stop the server (SIGTERM, as a service manager would); what it wrote to stderr."""
        self.proc.terminate()
        _, stderr = self.proc.communicate(timeout=20)
        return stderr
