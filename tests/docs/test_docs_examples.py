"""The Python blocks of every docs page run against the real package.

Per page, in a fresh directory: a block whose first line is ``# <name>.py`` is
written to that file (a module the page's other blocks import, or a test
file), and every other block is appended to one script, run in order.
``test_*.py`` files are then run with pytest. A block preceded by
``<!-- docs-test: skip ... -->`` is left out (it says why).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

# Runs subprocesses or whole tools: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
BLOCK = re.compile(r"(<!-- docs-test: skip[^>]*-->\n)?```python\n(.*?)```", re.S)
FILE_HEADER = re.compile(r"^# (\w+\.py)\n")
PAGES = sorted(p for p in DOCS.glob("*.md") if "```python" in p.read_text(encoding="utf-8"))


def _clean_env(workdir: Path) -> dict[str, str]:
    """The environment minus any PREFACTOR_* setting, so nothing reaches a real API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFACTOR_")}
    env["PYTHONPATH"] = os.pathsep.join([str(workdir), str(ROOT)])
    return env


def _write_page(page: Path, workdir: Path) -> tuple[Path, list[Path]]:
    script: list[str] = []
    tests: list[Path] = []
    for skip, code in BLOCK.findall(page.read_text(encoding="utf-8")):
        if skip:
            continue
        header = FILE_HEADER.match(code)
        if header is None:
            script.append(code)
            continue
        target = workdir / header.group(1)
        target.write_text(code, encoding="utf-8")
        if target.name.startswith("test_"):
            tests.append(target)
    main = workdir / "page_script.py"
    main.write_text("\n\n".join(script), encoding="utf-8")
    return main, tests


def _run(args: list[str], workdir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=workdir,
        env=_clean_env(workdir),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("page", [pytest.param(p, id=p.stem) for p in PAGES])
def test_python_blocks_of_the_page_run(page: Path, tmp_path: Path) -> None:
    main, tests = _write_page(page, tmp_path)
    result = _run([sys.executable, str(main)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    if tests:
        plugin = (
            []
            if entry_points(group="pytest11", name="prefactor")
            else ["-p", "prefactor.testing.plugin"]
        )
        result = _run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                *plugin,
                *map(str, tests),
            ],
            tmp_path,
        )
        assert result.returncode == 0, result.stdout + result.stderr
