"""The pytest plugin, registered through the ``pytest11`` entry point.

Installing prefactor makes two fixtures available; nothing else changes for a
project that does not use them (the process-wide tracer is only touched while
a test that asked for a fixture runs):

* ``prefactor_spans``: the process-wide tracer records into memory for the
  test, in strict mode, and the fixture (a :class:`Recorder`) reads back the
  instances and spans. The tracer is shut down after the test.
* ``prefactor_server``: the real local API server on a loopback port with a
  fresh SQLite file, as a :class:`prefactor.testing.server.LocalServer`.

Strict mode (a schema violation raises :class:`SchemaValidationError` in the
test) is on by default. It is chosen, most specific first, by the marker
``@pytest.mark.prefactor(strict=False)``, the ``--prefactor-strict`` /
``--prefactor-no-strict`` options, then the ``prefactor_strict`` ini setting.

A failing test whose error is (or was caused by) a ``SchemaValidationError``
gets a report section naming the span type, side, path and reason; a failing
test that used ``prefactor_spans`` also gets the rendered span tree.
"""

from __future__ import annotations

import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import pytest

from prefactor._errors import SchemaValidationError
from prefactor._schemas.registry import SchemaRegistry
from prefactor.testing.recorder import Recorder

if TYPE_CHECKING:
    from prefactor.testing.server import LocalServer

__all__ = ["prefactor_server", "prefactor_spans", "strict_for"]

_NAMES = frozenset({"prefactor", __name__})  # the entry point's name and the module's
_MARKER_OPTIONS = frozenset({"strict", "agent_id", "registry"})
_READ_TIMEOUT = 5.0
_SDK_DIR = Path(__file__).resolve().parents[1]
_recorder_key = pytest.StashKey[Recorder]()


def pytest_plugin_registered(
    plugin: object, plugin_name: str, manager: pytest.PytestPluginManager
) -> None:
    """Once loaded under one name, block the other so nothing registers this module twice.

    Installed, the plugin is the ``prefactor`` entry point; a user may also name
    the module (``-p prefactor.testing.plugin`` or ``pytest_plugins``), and pluggy
    refuses one module under two names.
    """
    if plugin is sys.modules[__name__] and plugin_name in _NAMES:
        for other in _NAMES - {plugin_name}:
            if not manager.is_blocked(other):
                manager.set_blocked(other)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add the strict-mode options and ini setting."""
    group = parser.getgroup("prefactor", "prefactor agent observability")
    group.addoption(
        "--prefactor-strict",
        action="store_true",
        dest="prefactor_strict",
        default=None,
        help="raise SchemaValidationError on span schema violations (the default)",
    )
    group.addoption(
        "--prefactor-no-strict",
        action="store_false",
        dest="prefactor_strict",
        default=None,
        help="record span schema violations as flags instead of raising",
    )
    parser.addini(
        "prefactor_strict",
        type="bool",
        default=True,
        help="raise SchemaValidationError on span schema violations (default: true)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``prefactor`` marker (``--strict-markers`` friendly)."""
    config.addinivalue_line(
        "markers",
        "prefactor(strict=None, agent_id=None, registry=None): options of the "
        "prefactor_spans fixture for this test (strict mode, default agent, schema registry)",
    )


def _marker_options(node: pytest.Item) -> dict[str, Any]:
    """The ``prefactor`` marker's options, the closest marker winning per option."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers("prefactor"))):
        if marker.args:
            pytest.fail("@pytest.mark.prefactor takes keyword options only", pytrace=False)
        unknown = set(marker.kwargs) - _MARKER_OPTIONS
        if unknown:
            pytest.fail(
                f"@pytest.mark.prefactor got unknown options {sorted(unknown)}; "
                f"known: {sorted(_MARKER_OPTIONS)}",
                pytrace=False,
            )
        options.update(marker.kwargs)
    return options


def strict_for(item: pytest.Item) -> bool:
    """Whether ``item`` runs in strict mode: marker, then command line, then ini (default on)."""
    marked = _marker_options(item).get("strict")
    if marked is not None:
        return bool(marked)
    given = item.config.getoption("prefactor_strict")
    if given is not None:
        return bool(given)
    return bool(item.config.getini("prefactor_strict"))


@pytest.fixture
def prefactor_spans(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    """Record the test's spans in memory (strict mode unless turned off) and read them back.

    The returned :class:`Recorder` flushes before every read: ``.spans``,
    ``.instances``, ``.span("tool:search")``, ``.spans_of_type(...)``,
    ``.find(type=, name=, status=)``, ``.parent(span)``, ``.render()``,
    ``.records()`` (deterministic dicts) and ``.clear()``.
    """
    item = request.node
    assert isinstance(item, pytest.Item)
    options = _marker_options(item)
    registry = options.get("registry")
    if registry is not None and not isinstance(registry, SchemaRegistry):
        pytest.fail("@pytest.mark.prefactor(registry=...) needs a SchemaRegistry", pytrace=False)
    recorder = Recorder.install(
        strict=strict_for(item),
        agent_id=str(options.get("agent_id") or "test-agent"),
        registry=registry,
        on_full="block",
    )
    item.stash[_recorder_key] = recorder
    try:
        yield recorder
    finally:
        del item.stash[_recorder_key]
        recorder.uninstall(_READ_TIMEOUT)


@pytest.fixture
def prefactor_server(tmp_path: Path) -> Iterator[LocalServer]:
    """The real local API on ``127.0.0.1`` with a fresh SQLite file, stopped after the test.

    Yields a :class:`prefactor.testing.server.LocalServer`: ``.url``,
    ``.token``, ``.client`` (reads instances, spans and a ``Trace`` back) and
    ``.route_tracer()`` (sends the process-wide tracer's records to it).
    """
    # Imported here, not at the top: the server needs the optional ``server`` extra,
    # and a top-level import would break every pytest run of a project without it.
    from prefactor.testing.server import LocalServer

    with LocalServer(tmp_path / "prefactor-server.db") as server:
        yield server


def _schema_violation(exc: BaseException | None) -> SchemaValidationError | None:
    """The ``SchemaValidationError`` that is ``exc`` or (transitively) caused it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, SchemaValidationError):
            return exc
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return None


def _describe_violation(exc: SchemaValidationError) -> str:
    """A schema violation spelled out for a failure report."""
    lines = [
        f"span type: {exc.span_type}",
        f"side:      {exc.side}",
        f"path:      {exc.path}",
        f"reason:    {exc.reason}",
    ]
    if len(exc.errors) > 1:
        lines.append("all violations:")
        lines.extend(f"  {path}: {reason}" for path, reason in exc.errors)
    return "\n".join(lines)


def _rendered_spans(recorder: Recorder) -> str:
    try:
        text = recorder.trace(_READ_TIMEOUT).render()
    except Exception as exc:  # the report must not fail because the spans could not be read
        return f"(the spans could not be read: {exc!r})"
    return text or "(no spans were recorded)"


def _in_sdk(tb: TracebackType) -> bool:
    return Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(_SDK_DIR)


def _hide_sdk_frames(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    """Leave only the user's frames in a schema violation's traceback: the SDK's are noise.

    pytest rebuilds filtered tracebacks from the raw ``tb_next`` chain, so the
    chain itself is relinked around the SDK's frames.
    """
    frames: list[TracebackType] = []
    tb: TracebackType | None = excinfo.tb
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    kept = [frame for frame in frames if not _in_sdk(frame)]
    if not kept or kept[0] is not frames[0] or len(kept) == len(frames):
        return
    for frame, following in zip(kept, [*kept[1:], None], strict=True):
        frame.tb_next = following
    excinfo.traceback = type(excinfo.traceback)(excinfo.tb)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Add the schema violation and the span tree to a failing test's report."""
    excinfo = call.excinfo
    if (
        excinfo is not None
        and isinstance(excinfo.value, SchemaValidationError)
        and not item.config.getoption("fulltrace", False)
    ):
        _hide_sdk_frames(excinfo)
    report = yield
    if not report.failed:
        return report
    violation = _schema_violation(excinfo.value if excinfo else None)
    if violation is not None:
        report.sections.append(("prefactor schema violation", _describe_violation(violation)))
    recorder = item.stash.get(_recorder_key, None)
    if recorder is not None and call.when == "call":
        report.sections.append(("prefactor spans", _rendered_spans(recorder)))
    return report
