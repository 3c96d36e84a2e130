"""Names a package exports but imports only when first asked for (PEP 562).

``import prefactor`` must stay cheap: most programs import it at start-up and
use only the decorators, while the REST client needs httpx, the embedded store
the server's modules, the validator python-jsonschema, the configuration
pydantic. A package lists each exported name once, with the module that
defines it; :func:`exports` gives it the module ``__getattr__`` and ``__dir__``
that import that module on first access and remember the value as a plain
module attribute, so later accesses cost nothing. Type checkers see the same
names through an ``if TYPE_CHECKING:`` import block; a test keeps the two in
agreement.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = ["exports", "name_publicly"]


def name_publicly(package: str, value: Any) -> None:
    """Give a class or function of ``package``'s private modules ``__module__ = package``.

    So that reprs, tracebacks and pickles name the path users import it from
    (``prefactor.traced``, not the private module that defines it).
    """
    if getattr(value, "__module__", "").startswith(f"{package}."):
        value.__module__ = package


def exports(
    package: str,
    table: Mapping[str, Iterable[str]],
    *,
    rename: bool = False,
    fallback: str | None = None,
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of ``package``, exporting ``table`` lazily.

    Args:
        package: the package's ``__name__``.
        table: each defining module, with the names to export from it.
        rename: name each exported class and function publicly (:func:`name_publicly`)
            once its module is loaded and any exported name is first asked for.
        fallback: a module whose ``__all__`` names are also reachable (not renamed;
            ``__dir__`` imports it to list them).

    Returns:
        The module-level ``__getattr__`` and ``__dir__`` functions for ``package``.
    """
    where = {name: module for module, names in table.items() for name in names}

    def name_loaded() -> None:
        # Every exported value whose module is loaded by now, not only the one asked for:
        # what the SDK hands out (the class of a span, say) is named publicly too.
        for name, module_name in where.items():
            module = sys.modules.get(module_name)
            if module is not None:  # vars(): never a lazy export of that module's own
                name_publicly(package, vars(module).get(name))

    def __getattr__(name: str) -> Any:
        module_name = where.get(name)
        if module_name is not None:
            value = getattr(importlib.import_module(module_name), name)
            if rename:
                name_loaded()
        elif fallback is not None and name in getattr(
            importlib.import_module(fallback), "__all__", ()
        ):
            value = getattr(sys.modules[fallback], name)
        else:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        names = {*vars(sys.modules[package]), *where}
        if fallback is not None:
            names.update(getattr(importlib.import_module(fallback), "__all__", ()))
        return sorted(names)

    return __getattr__, __dir__
