"""The top-level namespace: what ``__all__`` promises, the compatibility names, the errors."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import prefactor
from prefactor import PrefactorError

# Changing this list changes the public API: say so in the CHANGELOG.
PUBLIC = [
    "AgentInstanceHandle",
    "Capturer",
    "ClientAlreadyInitializedError",
    "ClientNotInitializedError",
    "ContextThreadPoolExecutor",
    "ExportStats",
    "Exporter",
    "HttpClientConfig",
    "HttpSink",
    "InstanceNotFoundError",
    "LocalSink",
    "MemorySink",
    "OperationError",
    "PrefactorApiClient",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorConfigError",
    "PrefactorCoreClient",
    "PrefactorCoreConfig",
    "PrefactorCoreError",
    "PrefactorError",
    "PrefactorHttpError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "PrefactorValidationError",
    "QueueConfig",
    "SchemaRegistry",
    "SchemaValidationError",
    "SpanContext",
    "SpanNotFoundError",
    "__version__",
    "agent",
    "configure",
    "current_instance",
    "current_span",
    "default_registry",
    "flush",
    "generate_idempotency_key",
    "generate_pfid",
    "get_tracer",
    "in_context",
    "instrument_tools",
    "is_pfid",
    "shutdown",
    "stats",
    "tool",
    "traced",
    "validate_idempotency_key",
]

# prefactor-core's names kept only for its users' code: in prefactor.compat.
COMPAT = [
    "AgentInstance",
    "InMemoryQueue",
    "Operation",
    "OperationType",
    "Queue",
    "QueueClosedError",
    "Span",
    "SpanContextStack",
    "TaskExecutor",
    "build_runtime_environment",
    "warn_missing_adaptor_config",
]

# Raised only inside the SDK or its server and being moved under PrefactorError by their
# owners; remove each entry once its class derives from PrefactorError.
PENDING = {
    "prefactor.server.store_common.ApiProblem",
    "prefactor.server.store_schemas.SchemaProblems",
}


def test_all_holds_exactly_the_public_names_sorted() -> None:
    assert prefactor.__all__ == PUBLIC


@pytest.mark.parametrize("name", [n for n in PUBLIC if not n.startswith("__")])
def test_every_public_name_says_it_comes_from_prefactor(name: str) -> None:
    assert getattr(prefactor, name).__module__ == "prefactor"


@pytest.mark.parametrize("name", COMPAT)
def test_prefactor_cores_leftovers_come_from_prefactor_compat_and_import_from_prefactor(
    name: str,
) -> None:
    obj = getattr(prefactor, name)
    assert obj is getattr(prefactor.compat, name)
    assert obj.__module__ == "prefactor.compat"
    assert name in dir(prefactor) and name not in prefactor.__all__


def test_compat_exports_exactly_the_leftovers() -> None:
    assert sorted(prefactor.compat.__all__) == COMPAT


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nonexistent'"):
        prefactor.Nonexistent


def _exception_classes() -> set[type[BaseException]]:
    found: set[type[BaseException]] = set()
    for module in pkgutil.walk_packages(prefactor.__path__, "prefactor."):
        if module.name != "prefactor.__main__":
            for _, obj in inspect.getmembers(importlib.import_module(module.name), inspect.isclass):
                if issubclass(obj, BaseException) and obj.__module__.startswith("prefactor"):
                    found.add(obj)
    return found


def _tree(classes: set[type[BaseException]]) -> set[type[BaseException]]:
    return {c for c in classes if issubclass(c, PrefactorError)}


def test_every_exception_class_of_the_package_derives_from_prefactor_error() -> None:
    classes = _exception_classes()
    outside = {f"{c.__module__}.{c.__qualname__}" for c in classes - _tree(classes)}
    assert len(classes) > 20
    assert outside <= PENDING, f"new exception classes outside the tree: {outside - PENDING}"
