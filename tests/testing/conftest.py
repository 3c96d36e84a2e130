"""Fixtures for the plugin tests: a throwaway user project that loads the plugin once."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from pathlib import Path

import pytest

# pytester's in-process runs drop every module they imported when they end; importing
# the SDK once here keeps each run from paying for a fresh import of it.
for _module in (
    "prefactor.testing.recorder",
    "prefactor.testing.server",
    "prefactor._tracing.agents",
):
    importlib.import_module(_module)

# Installed, the plugin is the ``prefactor`` entry point; naming its module with -p
# as well would register it twice, so name whichever form this environment has.
PLUGIN = (
    "prefactor" if entry_points(group="pytest11", name="prefactor") else "prefactor.testing.plugin"
)


def write_ini(pytester: pytest.Pytester, extra: str = "") -> None:
    """The user project's pytest.ini: the plugin, strict markers, warnings as errors.

    Hypothesis's plugin is left out: the project does not use it, and its summary hook
    imports all of hypothesis afresh in every in-process run (about a second).
    """
    pytester.makeini(
        f"""
        [pytest]
        addopts = -p {PLUGIN} --strict-markers -p no:hypothesispytest
        filterwarnings = error
        asyncio_default_fixture_loop_scope = function
        {extra}
        """
    )


REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user project with the plugin loaded and default settings."""
    write_ini(pytester)
    return pytester


@pytest.fixture
def subprocess_project(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    """A user project for ``runpytest_subprocess`` (prefactor importable from this checkout).

    Runs that start servers or threads use a subprocess: pytester's in-process runs
    drop the modules they imported when they end, which breaks the class identity
    of anything (httpcore's exceptions, uvicorn's protocols) first imported there.
    """
    monkeypatch.setenv("PYTHONPATH", str(REPO_ROOT))
    return project
