"""The code stays linted, formatted and type-checked (mypy --strict on the package)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_ruff_finds_nothing() -> None:
    run = _run("ruff", "check", "prefactor", "tests", "benchmarks", "examples")
    assert run.returncode == 0, run.stdout + run.stderr


def test_code_is_formatted() -> None:
    run = _run("ruff", "format", "--check", "prefactor", "tests", "benchmarks", "examples")
    assert run.returncode == 0, run.stdout + run.stderr


def test_package_passes_mypy_strict() -> None:
    run = _run("mypy")
    assert run.returncode == 0, run.stdout + run.stderr
