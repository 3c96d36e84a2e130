"""The public testing namespace: an honest sorted __all__; the server extra stays optional."""

from __future__ import annotations

import subprocess
import sys

import prefactor.testing
from tests.testing.conftest import REPO_ROOT


def test_testing_all_is_sorted_and_every_name_resolves() -> None:
    names = prefactor.testing.__all__
    assert names == sorted(names)
    assert all(getattr(prefactor.testing, name).__name__ == name for name in names)


def test_loading_the_plugin_does_not_import_the_server_extra() -> None:
    probe = (
        "import sys, prefactor.testing, prefactor.testing.plugin\n"
        "print([name for name in ('fastapi', 'uvicorn') if name in sys.modules])\n"
    )
    answer = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert answer.stdout.strip() == "[]"
