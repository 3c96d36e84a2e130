"""mypy keeps the decorated signatures: right uses pass, wrong uses are errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def mypy_errors() -> dict[str, list[int]]:
    """One mypy run over both sample files: error line numbers per file."""
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--config-file=",
            "typed_usage.py",
            "bad_usage.py",
        ],
        capture_output=True,
        text=True,
        cwd=HERE,
        timeout=300,
        check=False,
    )
    assert run.returncode in (0, 1), run.stdout + run.stderr
    errors: dict[str, list[int]] = {"typed_usage.py": [], "bad_usage.py": []}
    for line in run.stdout.splitlines():
        if ": error:" in line:
            name, lineno = line.split(":")[:2]
            errors.setdefault(Path(name).name, []).append(int(lineno))
    return errors


def test_decorated_functions_keep_their_callable_types(mypy_errors: dict[str, list[int]]) -> None:
    assert mypy_errors["typed_usage.py"] == []


def test_wrong_arguments_to_decorated_functions_are_type_errors(
    mypy_errors: dict[str, list[int]],
) -> None:
    assert mypy_errors["bad_usage.py"] == [18, 19, 20]
