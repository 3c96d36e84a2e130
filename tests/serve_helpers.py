"""``prefactor serve`` in a subprocess, for any test directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class ServeProcess:
    """``prefactor serve`` in a subprocess on a free loopback port (started at once).

    Call :meth:`wait_listening` for its URL; starting several before waiting
    lets their start-ups overlap.
    """

    def __init__(self, db: str, token: str, *args: str) -> None:
        self.args = args
        command = ["serve", "--port", "0", "--db", db, *args]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prefactor._cli", *command],
            cwd=ROOT,
            # The token travels in the environment: serve refuses it on the command line.
            env={**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": token},
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
