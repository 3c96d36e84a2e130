"""Loading the plugin: by entry point and by module name together, it registers once."""

from __future__ import annotations

import pytest

# No -p option: the plugin comes from the entry point (and, per test, by module name).
BARE_INI = """
[pytest]
addopts = -p no:hypothesispytest
filterwarnings = error
asyncio_default_fixture_loop_scope = function
"""

USES_FIXTURE = """
def test_fixture_is_there(prefactor_spans):
    assert prefactor_spans.spans == []
"""


@pytest.fixture
def installed_entry_point(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the ``prefactor`` pytest11 entry point visible, as an installed package has it."""
    dist_info = pytester.mkdir("site") / "prefactor_plugin_probe-0.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: prefactor-plugin-probe\nVersion: 0\n"
    )
    (dist_info / "entry_points.txt").write_text(
        "[pytest11]\nprefactor = prefactor.testing.plugin\n"
    )
    monkeypatch.syspath_prepend(dist_info.parent)


@pytest.mark.parametrize(
    ("conftest", "args"),
    [
        pytest.param("", ("-p", "prefactor.testing.plugin"), id="dash-p-module"),
        pytest.param('pytest_plugins = ["prefactor.testing.plugin"]', (), id="pytest-plugins"),
    ],
)
@pytest.mark.usefixtures("installed_entry_point")
def test_plugin_named_by_module_registers_once_beside_its_entry_point(
    pytester: pytest.Pytester, conftest: str, args: tuple[str, ...]
) -> None:
    pytester.makeini(BARE_INI)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_user=USES_FIXTURE)
    result = pytester.runpytest(*args)
    result.assert_outcomes(passed=1)


@pytest.mark.usefixtures("installed_entry_point")
def test_entry_point_alone_provides_the_fixtures(pytester: pytest.Pytester) -> None:
    pytester.makeini(BARE_INI)
    pytester.makepyfile(test_user=USES_FIXTURE)
    pytester.runpytest().assert_outcomes(passed=1)
