"""Code written for prefactor-core 0.5.3 and prefactor-http 0.4.3 runs with its imports changed.

Each test takes a name or a documented behaviour of the peers' public API (their
READMEs and docstrings: prefactor-core's ``__all__``, prefactor-http's
``HttpClientConfig`` and exceptions) and exercises it through ``prefactor``,
against the real server in process or on a loopback port.
"""

from __future__ import annotations

import inspect
import logging
import platform
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import prefactor_http
import pytest
from core_helpers import VERSION, Recording, http_config, llm_registry

import prefactor
from prefactor import (
    HttpClientConfig,
    HttpSink,
    PrefactorAuthError,
    PrefactorConfigError,
    PrefactorCoreClient,
    PrefactorCoreConfig,
    QueueConfig,
    generate_idempotency_key,
    validate_idempotency_key,
)
from prefactor.server.store import Store
from prefactor.testing.server import LocalServer

# prefactor_core.__all__ (0.5.3), as its package documents it.
PREFACTOR_CORE_ALL = [
    "PrefactorCoreClient",
    "PrefactorCoreConfig",
    "QueueConfig",
    "SpanContext",
    "SpanContextStack",
    "PrefactorCoreError",
    "ClientNotInitializedError",
    "ClientAlreadyInitializedError",
    "OperationError",
    "InstanceNotFoundError",
    "SpanNotFoundError",
    "PrefactorTelemetryFailureError",
    "PrefactorTerminatedError",
    "AgentInstance",
    "Span",
    "Operation",
    "OperationType",
    "Queue",
    "QueueClosedError",
    "InMemoryQueue",
    "TaskExecutor",
    "AgentInstanceHandle",
    "build_runtime_environment",
    "SchemaRegistry",
    "generate_idempotency_key",
    "validate_idempotency_key",
    "warn_missing_adaptor_config",
    "__version__",
]

# prefactor_http's configuration and exceptions (0.4.3).
PREFACTOR_HTTP_NAMES = [
    "HttpClientConfig",
    "PrefactorHttpError",
    "PrefactorApiError",
    "PrefactorAuthError",
    "PrefactorClientError",
    "PrefactorNotFoundError",
    "PrefactorResponseContractError",
    "PrefactorRetryExhaustedError",
    "PrefactorValidationError",
]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Store, Recording]]:
    store = Store(tmp_path / "compat.db")
    yield store, Recording(store)
    store.close()


@pytest.fixture
async def recorded(
    server: tuple[Store, Recording],
) -> AsyncIterator[Callable[..., PrefactorCoreClient]]:
    """Make initialized clients that send to the recording server; close them afterwards."""
    transport = server[1]
    clients: list[PrefactorCoreClient] = []

    def make(**options: Any) -> PrefactorCoreClient:
        entry = options.pop("sdk_header_entry", None)
        config = PrefactorCoreConfig(
            http_config=http_config(), sink=HttpSink(http_config(), transport=transport), **options
        )
        client = PrefactorCoreClient(config, sdk_header_entry=entry)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


# --- names and signatures ---------------------------------------------------------------


@pytest.mark.parametrize("name", PREFACTOR_CORE_ALL)
def test_every_name_prefactor_core_exports_is_importable_from_prefactor(name: str) -> None:
    namespace: dict[str, Any] = {}
    exec(f"from prefactor import {name}", namespace)
    assert namespace[name] is getattr(prefactor, name)


@pytest.mark.parametrize("name", PREFACTOR_HTTP_NAMES)
def test_prefactor_https_config_and_errors_are_importable_from_prefactor_in_its_tree(
    name: str,
) -> None:
    theirs = getattr(prefactor_http, name)
    ancestors = [c.__name__ for c in theirs.__mro__ if c.__module__.startswith("prefactor_http")]
    ours = getattr(prefactor, name)
    assert all(isinstance(getattr(prefactor, a), type) for a in ancestors)
    assert all(issubclass(ours, getattr(prefactor, a)) for a in ancestors)


SIGNATURES: list[tuple[str, list[str]]] = [
    ("PrefactorCoreClient", ["config", "queue", "sdk_header_entry"]),
    (
        "PrefactorCoreClient.create_agent_instance",
        [
            "agent_version",
            "agent_schema_version",
            "agent_id",
            "instance_id",
            "external_schema_version_id",
            "environment_id",
            "purpose",
            "external_identifier",
        ],
    ),
    (
        "PrefactorCoreClient.create_span",
        ["instance_id", "schema_name", "parent_span_id", "payload", "started_at"],
    ),
    ("PrefactorCoreClient.finish_span", ["span_id", "result_payload", "timestamp"]),
    ("PrefactorCoreClient.record_quality", ["instance_id", "name", "payload"]),
    ("PrefactorCoreClient.span", ["instance_id", "schema_name", "parent_span_id", "payload"]),
    ("AgentInstanceHandle", ["instance_id", "client"]),
    ("AgentInstanceHandle.start", ["timestamp"]),
    ("AgentInstanceHandle.finish", ["status", "timestamp"]),
    ("AgentInstanceHandle.record_quality", ["name", "payload"]),
    (
        "AgentInstanceHandle.create_span",
        ["schema_name", "parent_span_id", "payload", "started_at"],
    ),
    ("AgentInstanceHandle.finish_span", ["span_id", "result_payload", "timestamp"]),
    ("AgentInstanceHandle.span", ["schema_name", "parent_span_id", "payload"]),
    ("SpanContext.start", ["payload", "started_at"]),
    ("SpanContext.complete", ["result", "timestamp"]),
    ("SpanContext.fail", ["result", "timestamp"]),
    ("SpanContext.cancel", ["timestamp"]),
    ("SpanContext.set_result", ["data"]),
    ("TaskExecutor", ["queue", "handler", "num_workers", "max_retries", "is_retryable"]),
    ("InMemoryQueue.close", ["num_waiters"]),
    ("SchemaRegistry.register", ["schema_name", "schema"]),
    (
        "SchemaRegistry.register_type",
        [
            "name",
            "params_schema",
            "result_schema",
            "title",
            "description",
            "template",
            "data_risk",
        ],
    ),
    (
        "SchemaRegistry.register_quality_schema",
        ["name", "schema", "title", "description", "template", "data_risk"],
    ),
    ("SchemaRegistry.merge", ["other"]),
    ("build_runtime_environment", ["sdk_header_entry"]),
    ("warn_missing_adaptor_config", ["instance_id", "adaptor_name", "create_client_call"]),
    ("validate_idempotency_key", ["key"]),
]


@pytest.mark.parametrize(("path", "expected"), SIGNATURES, ids=[s[0] for s in SIGNATURES])
def test_calls_take_prefactor_cores_parameters_in_its_order(path: str, expected: list[str]) -> None:
    obj: Any = prefactor
    for part in path.split("."):
        obj = getattr(obj, part)
    params = [p for p in inspect.signature(obj).parameters if p != "self"]
    assert params[: len(expected)] == expected


def test_prefactor_https_exceptions_take_its_constructor_arguments() -> None:
    auth = prefactor.PrefactorAuthError("bad token", "unauthorized", 401)
    invalid = prefactor.PrefactorValidationError("bad", "validation_error", 422, {"id": ["x"]})
    exhausted = prefactor.PrefactorRetryExhaustedError("gave up", auth)
    contract = prefactor.PrefactorResponseContractError("odd", status_code=503, body_snippet="<")
    assert (auth.code, auth.status_code, invalid.errors) == ("unauthorized", 401, {"id": ["x"]})
    assert (exhausted.last_error, contract.status_code, contract.body_snippet) == (auth, 503, "<")
    assert isinstance(auth, prefactor.PrefactorApiError)
    assert isinstance(exhausted, prefactor.PrefactorHttpError)


# --- configuration ----------------------------------------------------------------------


def test_http_client_config_takes_prefactor_https_positional_order() -> None:
    config = HttpClientConfig("https://api.test.com", "test-token", 12.0, 3.0, 0, 0.5, 8.0, 1.5)
    assert (config.api_url, config.api_token) == ("https://api.test.com", "test-token")
    assert (config.request_timeout, config.connect_timeout, config.max_retries) == (12.0, 3.0, 0)
    assert (config.initial_retry_delay, config.max_retry_delay) == (0.5, 8.0)
    assert config.retry_multiplier == 1.5


def test_http_client_config_has_prefactor_https_defaults() -> None:
    ours = HttpClientConfig("https://api.test.com", "t")
    theirs = prefactor_http.HttpClientConfig("https://api.test.com", "t")
    assert ours.model_dump() == vars(theirs)


def test_http_client_config_accepts_default_idempotency_key() -> None:
    config = HttpClientConfig("https://api.test.com", "t", default_idempotency_key="run-1")
    assert config.default_idempotency_key == "run-1"


def test_queue_config_has_prefactor_cores_defaults() -> None:
    config = QueueConfig()
    assert (config.num_workers, config.max_retries, config.retry_delay_base) == (3, 3, 1.0)


def test_api_token_reads_as_the_plain_string_and_reprs_mask_it() -> None:
    config = HttpClientConfig("https://api.test.com", "sk-live-token")
    core = PrefactorCoreConfig(http_config=config)
    assert config.api_token == "sk-live-token"
    assert f"Bearer {config.api_token}" == "Bearer sk-live-token"
    for shown in (repr(config), str(config), repr(core), config.model_dump_json()):
        assert "sk-live-token" not in shown
        assert "**********" in shown


@pytest.mark.parametrize(
    ("config", "option", "value"),
    [
        pytest.param(lambda: HttpClientConfig("https://a.test", "t"), "max_retries", 0, id="http"),
        pytest.param(QueueConfig, "num_workers", 1, id="queue"),
        pytest.param(PrefactorCoreConfig, "schema_registry", llm_registry(), id="core"),
    ],
)
def test_config_objects_may_be_changed_after_they_are_built(
    config: Callable[[], Any], option: str, value: Any
) -> None:
    built = config()
    setattr(built, option, value)
    assert getattr(built, option) is value


def test_a_change_after_construction_is_checked_and_a_refused_one_changes_nothing() -> None:
    config = QueueConfig()
    with pytest.raises(PrefactorConfigError, match="num_workers must be from 1 to 20"):
        config.num_workers = 0
    assert config.num_workers == 3


def test_prefactor_https_own_http_client_config_is_accepted_by_prefactor_core_config() -> None:
    theirs = prefactor_http.HttpClientConfig(
        api_url="https://api.test.com", api_token="peer-token", max_retries=0
    )
    config = PrefactorCoreConfig(http_config=theirs)
    assert isinstance(config.http_config, HttpClientConfig)
    assert config.http_config.model_dump() == vars(theirs)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        pytest.param({"api_url": ""}, "api_url is required", id="api_url"),
        pytest.param({"api_token": ""}, "api_token is required", id="api_token"),
        pytest.param({"max_retries": -1}, "max_retries must be non-negative", id="max_retries"),
        pytest.param(
            {"initial_retry_delay": 0}, "initial_retry_delay must be positive", id="delay"
        ),
        pytest.param({"retry_multiplier": 0.5}, "retry_multiplier must be >= 1", id="multiplier"),
    ],
)
def test_http_client_config_refuses_what_prefactor_http_refused_in_its_words(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        HttpClientConfig(**{"api_url": "https://api.test.com", "api_token": "t", **fields})


# --- idempotency keys -------------------------------------------------------------------


def test_generate_idempotency_key_returns_a_uuid4_string() -> None:
    key = generate_idempotency_key()
    assert uuid.UUID(key).version == 4
    assert str(uuid.UUID(key)) == key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        pytest.param("", "Idempotency key must not be empty", id="empty"),
        pytest.param("k" * 65, "Idempotency key must be at most 64 characters, got 65", id="long"),
    ],
)
def test_validate_idempotency_key_refuses_with_prefactor_cores_messages(
    key: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_idempotency_key(key)


# --- what a registration carries --------------------------------------------------------


async def test_without_an_agent_id_the_registration_leaves_it_out(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    async with recorded() as client:
        instance = await client.create_agent_instance(agent_version=VERSION)
        assert await client.flush(10)
    (registration,) = server[1].registrations()
    assert "agent_id" not in registration
    assert "environment_id" not in registration
    assert server[0].get_instance(instance.id)["details"]["id"] == instance.id


async def test_a_configured_agent_id_is_sent_when_the_call_gives_none(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    async with recorded(agent_id="configured-agent") as client:
        await client.create_agent_instance(agent_version=VERSION)
        await client.create_agent_instance(agent_version=VERSION, agent_id="given-agent")
        assert await client.flush(10)
    assert [r["agent_id"] for r in server[1].registrations()] == ["configured-agent", "given-agent"]


async def test_decorated_code_without_an_agent_id_still_registers_default_agent(
    server: tuple[Store, Recording],
) -> None:
    prefactor.configure(sink=HttpSink(http_config(), transport=server[1]))

    @prefactor.traced
    def step(n: int) -> int:
        return n

    try:
        step(1)
        assert prefactor.flush(10)
    finally:
        prefactor.shutdown()
    (registration,) = server[1].registrations()
    assert registration["agent_id"] == "default-agent"


async def test_the_agent_version_gains_a_runtime_environment(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    async with recorded(sdk_header_entry=" prefactor-langchain@0.3.0 ") as client:
        await client.create_agent_instance(agent_version=VERSION, agent_id="a")
        assert await client.flush(10)
    (registration,) = server[1].registrations()
    version = registration["agent_version"]
    assert {k: v for k, v in version.items() if k != "runtime_environment"} == VERSION
    assert version["runtime_environment"] == {
        "agent_sdk": ["prefactor-langchain@0.3.0"],
        "os": platform.system().lower(),
        "prefactor_sdk": [
            f"prefactor@{prefactor.__version__}",
            "prefactor-core@0.5.3",
            "prefactor-http@0.4.3",
        ],
        "runtime": f"{sys.implementation.name}@{sys.version_info[0]}.{sys.version_info[1]}",
    }


async def test_a_runtime_environment_the_caller_gives_is_kept(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    custom = {"agent_sdk": ["mine@1"], "os": "plan9", "prefactor_sdk": [], "runtime": "x@1"}
    async with recorded() as client:
        await client.create_agent_instance(
            agent_version={**VERSION, "runtime_environment": custom}, agent_id="a"
        )
        assert await client.flush(10)
    (registration,) = server[1].registrations()
    assert registration["agent_version"]["runtime_environment"] == custom


async def test_external_schema_version_id_names_the_registrys_schema_version(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    async with recorded(schema_registry=llm_registry()) as client:
        await client.create_agent_instance(
            agent_version=VERSION, agent_id="a", external_schema_version_id="llm-schemas-v1"
        )
        assert await client.flush(10)
    (registration,) = server[1].registrations()
    schemas = registration["agent_schema_version"]
    assert schemas["external_identifier"] == "llm-schemas-v1"
    assert [t["name"] for t in schemas["span_type_schemas"]] == ["agent:llm"]


def test_build_runtime_environment_lists_only_integrations_as_agent_sdk() -> None:
    found = prefactor.build_runtime_environment(
        "prefactor-langchain@0.2.7 my-framework@1.0.0 prefactor-core@0.5.1"
    )
    assert found["agent_sdk"] == ["prefactor-langchain@0.2.7", "my-framework@1.0.0"]
    assert prefactor.build_runtime_environment()["agent_sdk"] == []


async def test_the_sdk_header_names_integrations_then_prefactor_then_the_core_api(
    server: tuple[Store, Recording],
) -> None:
    sink = HttpSink(http_config(), transport=server[1], sdk_header_entry="prefactor-lc@0.3.0")
    async with PrefactorCoreClient(PrefactorCoreConfig(sink=sink)) as client:
        await client.create_agent_instance(agent_version=VERSION, agent_id="a")
        assert await client.flush(10)
    headers, _ = server[1].requests[0]
    expected = f"prefactor-lc@0.3.0 prefactor@{prefactor.__version__} prefactor-core@0.5.3"
    assert headers["x-prefactor-sdk"] == expected


# --- initialize() checks the token ------------------------------------------------------


async def test_initialize_raises_prefactor_auth_error_when_the_api_refuses_the_token(
    prefactor_server: LocalServer,
) -> None:
    config = HttpClientConfig(prefactor_server.url, "wrong-secret-token")
    client = PrefactorCoreClient(PrefactorCoreConfig(http_config=config))
    with pytest.raises(PrefactorAuthError) as refused:
        await client.initialize()
    assert refused.value.status_code == 401
    assert "wrong-secret-token" not in str(refused.value)
    assert client.instance_manager is None


async def test_initialize_with_an_accepted_token_starts_and_delivers(
    prefactor_server: LocalServer,
) -> None:
    config = HttpClientConfig(prefactor_server.url, prefactor_server.token)
    async with PrefactorCoreClient(PrefactorCoreConfig(http_config=config)) as client:
        instance = await client.create_agent_instance(agent_version=VERSION, agent_id="a")
        await instance.start()
        assert await client.flush(10)
    assert [i["id"] for i in prefactor_server.client.instances()] == [instance.id]


async def test_initialize_with_the_api_unreachable_neither_waits_nor_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = HttpClientConfig(f"http://127.0.0.1:{port}", "t", connect_timeout=30.0)
    queue = QueueConfig(shutdown_timeout=0)
    client = PrefactorCoreClient(PrefactorCoreConfig(http_config=config, queue_config=queue))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="prefactor.client"):
        await client.initialize()
    waited = time.monotonic() - started
    await client.close(timeout=0)
    assert waited < 5  # a refused connection, not the 30 s connect timeout
    assert "could not check the API token" in caplog.text


# --- instance_manager and handles -------------------------------------------------------


async def test_instance_manager_is_none_before_initialize_and_queues_calls_by_instance_id(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    client = recorded()
    assert client.instance_manager is None
    await client.initialize()
    manager = client.instance_manager
    assert manager is not None
    instance_id = await manager.register(VERSION, None, agent_id="a")
    await manager.start_with_idempotency_key(instance_id, generate_idempotency_key())
    await manager.record_quality(instance_id, "score", None)
    await manager.finish(instance_id, status="failed")
    assert await client.flush(10)
    assert server[0].get_instance(instance_id)["details"]["status"] == "failed"


async def test_an_agent_instance_handle_can_be_made_from_an_instance_id(
    recorded: Callable[..., PrefactorCoreClient], server: tuple[Store, Recording]
) -> None:
    async with recorded() as client:
        created = await client.create_agent_instance(agent_version=VERSION, agent_id="a")
        handle = prefactor.AgentInstanceHandle(created.id, client)
        await handle.start()
        async with handle.span("agent:step") as span:
            await span.start({"n": 1})
        await handle.finish()
        assert await client.flush(10)
    assert server[0].get_instance(created.id)["details"]["status"] == "complete"
    (stored,) = server[0].list_spans(agent_instance_id=created.id)["summaries"]
    assert (stored["id"], stored["payload"]) == (span.id, {"n": 1})


def test_warn_missing_adaptor_config_names_the_instance_and_what_to_call(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="prefactor"):
        prefactor.warn_missing_adaptor_config("inst-1", "middleware", "Middleware.create_client()")
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    for part in ("inst-1", "middleware", "Middleware.create_client()"):
        assert part in record.getMessage()


async def test_prefactor_cores_queue_and_task_executor_still_work() -> None:
    queue: Any = prefactor.InMemoryQueue()
    seen: list[str] = []

    async def handle(item: str) -> None:
        seen.append(item)

    executor = prefactor.TaskExecutor(queue, handle, 2, 0)
    executor.start()
    for item in ("a", "b", "c"):
        await queue.put(item)
    await executor.stop()
    assert sorted(seen) == ["a", "b", "c"]
    with pytest.raises(prefactor.QueueClosedError):
        await queue.put("late")
