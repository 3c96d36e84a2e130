"""The README's commands and code blocks work as written."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def _command(block: str) -> str:
    (line,) = [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    return line.strip()


def _python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run this interpreter in ``cwd`` with no ``PREFACTOR_*`` settings inherited."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_ci_runs_exactly_the_readme_test_command() -> None:
    run_cmd, test_cmd = (_command(b) for b in _blocks("bash"))
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci_lines
    assert "pytest" in test_cmd
    assert run_cmd.endswith("python examples/quickstart.py")


def test_readme_first_command_runs_the_quick_start(tmp_path: Path) -> None:
    run_cmd = _command(_blocks("bash")[0])
    script = shlex.split(run_cmd.rsplit("&&", 1)[1])
    assert script[0] == "python"
    run = _python(str(ROOT / script[1]), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "└─ agent:research_agent [complete]" in run.stdout


def test_readme_taste_runs_and_records_two_spans(tmp_path: Path) -> None:
    taste = _blocks("python")[0]
    (tmp_path / "taste.py").write_text(taste)
    run = _python("taste.py", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "reset my password -> article about reset my password"
    # register, start, the agent span (sent active when its child starts), the tool
    # span (one create, already complete), the agent span's finish, the instance's finish
    assert lines[1] == "6 records sent"
    show = _python("-m", "prefactor._cli", "show", cwd=tmp_path)
    assert show.returncode == 0, show.stderr
    assert "support-bot  [complete]  2 spans" in show.stdout
    assert "└─ tool:search [complete]" in show.stdout


def test_readme_plugin_example_passes_under_the_plugin(pytester: pytest.Pytester) -> None:
    taste, plugin_test = _blocks("python")[:2]
    definitions = taste.split("\nprint(")[0]
    pytester.makepyfile(test_readme_example=definitions + "\n\n" + plugin_test)
    result = pytester.runpytest_subprocess("-q")
    result.assert_outcomes(passed=1)
