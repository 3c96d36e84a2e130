"""``import prefactor`` defers what it can, and every public name still resolves.

Checked in fresh interpreters: this test session has long imported everything.
No timing is asserted here (``benchmarks/bench_import.py`` measures it); what
is asserted is which modules an import loads.
"""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Each costs milliseconds to tens of milliseconds to import, and none is needed until a
# function is decorated (schema derivation and checks) or called (the exporter, a sink).
HEAVY = (
    "asyncio",
    "httpx",
    "jsonschema",
    "jsonschema_rs",
    "referencing",
    "pydantic",
    "pydantic_core",
    "orjson",
    "sqlite3",
    "prefactor._api.client",
    "prefactor._api.models",
    "prefactor._config",
    "prefactor._runtime",
    "prefactor.server",
    "prefactor.server.store",
    "wrapt",
)

# Packages some of whose names are exported lazily (PEP 562).
LAZY_PACKAGES = ["prefactor", "prefactor._api", "prefactor._export.sinks"]


def _loaded_after(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after running ``code``."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(result.stdout.splitlines()[-1]))


def _run(code: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, cwd=ROOT
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_import_prefactor_loads_no_dependency_and_not_the_tracing_machinery() -> None:
    loaded = _loaded_after("import prefactor")
    assert loaded & set(HEAVY) == set()
    assert "prefactor._tracing.decorator" not in loaded


def test_importing_the_decorators_loads_no_dependency_nor_the_runtime() -> None:
    loaded = _loaded_after("from prefactor import agent, tool, traced")
    assert "prefactor._tracing.decorator" in loaded
    assert loaded & set(HEAVY) == set()


@pytest.mark.parametrize(("writer", "store_loaded"), [("process", False), ("inline", True)])
def test_a_call_on_the_embedded_store_loads_httpx_never_and_the_store_only_inline(
    tmp_path: Path, writer: str, store_loaded: bool
) -> None:
    code = f"""
import prefactor
prefactor.configure(db_path={str(tmp_path / "traces.db")!r}, embedded_writer={writer!r})

@prefactor.traced
def double(x: int) -> int:
    return 2 * x

assert double(2) == 4
assert prefactor.shutdown(10)
"""
    loaded = _loaded_after(code)
    assert ("prefactor.server.store" in loaded) is store_loaded
    assert "httpx" not in loaded


def test_the_schemas_module_loads_neither_httpx_jsonschema_nor_the_server() -> None:
    loaded = _loaded_after("import prefactor.schemas")
    assert loaded & {"httpx", "jsonschema", "prefactor.server", "prefactor._api.client"} == set()


def test_the_pytest_plugin_loads_neither_httpx_nor_the_server() -> None:
    loaded = _loaded_after("import prefactor.testing.plugin")
    assert loaded & {"httpx", "prefactor.server", "prefactor._api.client"} == set()


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_every_name_of_all_resolves_in_a_fresh_interpreter_and_dir_lists_it_before(
    package: str,
) -> None:
    out = _run(
        f"import importlib, inspect, json\n"
        f"m = importlib.import_module({package!r})\n"
        f"before = set(dir(m))\n"
        f"values = [getattr(m, name) for name in m.__all__]\n"
        f"public = {{n for n in dir(m) if n[0] != '_' and not inspect.ismodule(getattr(m, n))}}\n"
        f"print(json.dumps([sorted(set(m.__all__) - before), sorted(public - before)]))"
    )
    not_listed, listed_late = json.loads(out)
    assert not_listed == []
    assert listed_late == []


def test_a_star_import_gives_every_public_name() -> None:
    out = _run(
        "from prefactor import *\n"
        "import prefactor\n"
        "print(all(globals()[n] is getattr(prefactor, n) for n in prefactor.__all__))"
    )
    assert out.strip() == "True"


def test_a_public_name_says_it_comes_from_prefactor_when_first_resolved() -> None:
    out = _run("import prefactor as p\nprint(p.traced.__module__, p.Exporter.__module__)")
    assert out.split() == ["prefactor", "prefactor"]


def test_a_public_class_the_first_access_loaded_is_named_from_prefactor_before_asked_for() -> None:
    out = _run(
        "import prefactor\n"
        "prefactor.traced\n"
        "from prefactor._tracing.capture import Capturer\n"
        "print(Capturer.__module__)"
    )
    assert out.strip() == "prefactor"


def test_an_error_raised_inside_the_sdk_is_named_from_prefactor_before_any_access() -> None:
    out = _run(
        "import prefactor\n"
        "from prefactor._errors import SchemaValidationError\n"
        "print(SchemaValidationError.__module__)"
    )
    assert out.strip() == "prefactor"


def test_a_traced_call_finds_the_default_tracer_when_only_the_decorator_was_imported(
    tmp_path: Path,
) -> None:
    code = f"""
import os
os.environ["PREFACTOR_DB"] = {str(tmp_path / "traces.db")!r}
from prefactor import traced

@traced
def double(x: int) -> int:
    return 2 * x

assert double(2) == 4
import prefactor
assert prefactor.shutdown(10)
from prefactor.server.store import Store
store = Store({str(tmp_path / "traces.db")!r})
(instance,) = store.list_instances()["summaries"]
spans = store.list_spans(agent_instance_id=instance["id"])["summaries"]
print(*[span["schema_name"] for span in spans])
"""
    assert _run(code).split() == ["function:double"]


def _type_checking_imports(package: str) -> dict[str, str]:
    """The names a lazy package imports under ``if TYPE_CHECKING:``, each with its module."""
    module = importlib.import_module(package)
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    typed: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for imp in node.body:
                assert isinstance(imp, ast.ImportFrom) and imp.module is not None
                typed.update((alias.name, imp.module) for alias in imp.names)
    return typed


@pytest.mark.parametrize("package", LAZY_PACKAGES)
def test_the_type_checking_imports_name_the_lazy_table_exactly(package: str) -> None:
    module = importlib.import_module(package)
    table = {name: where for where, names in module._EXPORTS.items() for name in names}
    typed = _type_checking_imports(package)
    assert table
    assert {name: where for name, where in typed.items() if name in module.__all__} == table
