"""The example user test suite (examples/test_suite_example) passes under the plugin."""

from __future__ import annotations

import pytest

from tests.testing.conftest import REPO_ROOT

EXAMPLE = REPO_ROOT / "examples" / "test_suite_example"


def test_example_suite_passes(project: pytest.Pytester) -> None:
    for name in ("agent.py", "test_agent.py"):
        (project.path / name).write_text((EXAMPLE / name).read_text())
    result = project.runpytest()
    result.assert_outcomes(passed=5)
