"""Store: a schema version is compiled once per distinct content, and still enforced."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from server_helpers import GOOD_PAYLOAD, SCHEMA_VERSION, Register, span_body

from prefactor.server.store import ApiProblem, Store
from prefactor.server.store_schemas import SchemaSet


def _version_of(store: Store, instance_id: str) -> SchemaSet:
    """The compiled schemas the store checks ``instance_id``'s spans against."""

    def read() -> SchemaSet:
        row = store._conn.execute(
            "SELECT schema_version_id FROM instances WHERE id = ?", (instance_id,)
        ).fetchone()
        return store._schema_set(row[0])

    return store._read(read)


def _flags(store: Store, instance_id: str, payload: dict[str, Any]) -> list[str]:
    details = store.create_span(span_body(instance_id, payload=payload))["details"]
    return sorted(v["path"] for v in details["schema_violations"] or ())


def test_equal_schema_versions_of_two_agents_share_one_compiled_set(
    store: Store, register: Register
) -> None:
    first, second = register(agent_id="agent-a"), register(agent_id="agent-b")
    assert _version_of(store, first) is _version_of(store, second)


def test_every_instance_of_a_reused_version_is_still_checked(
    store: Store, register: Register
) -> None:
    instances = [register() for _ in range(3)]
    assert [_flags(store, i, {"model": 1}) for i in instances] == [["$", "$.model"]] * 3
    assert [_flags(store, i, GOOD_PAYLOAD) for i in instances] == [[]] * 3


def test_a_version_that_does_not_compile_is_refused_every_time(
    store: Store, register: Register
) -> None:
    broken = {
        "external_identifier": "broken-v1",
        "span_type_schemas": [{"name": "agent:llm", "params_schema": {"type": "nope"}}],
    }
    for _ in range(2):
        with pytest.raises(ApiProblem) as caught:
            register(schema=broken)
        assert caught.value.status == 422


def test_a_reopened_store_checks_spans_of_a_version_registered_before(
    tmp_path: Path,
) -> None:
    db = tmp_path / "traces.db"
    with_schema = {"agent_id": "agent-1", "agent_schema_version": SCHEMA_VERSION}
    first = Store(db)
    instance_id = first.register_instance(with_schema)["details"]["id"]
    first.close()
    reopened = Store(db)
    try:
        assert _flags(reopened, instance_id, {"model": 1}) == ["$", "$.model"]
        again = reopened.register_instance(with_schema)["details"]["id"]
        assert _version_of(reopened, again) is _version_of(reopened, instance_id)
    finally:
        reopened.close()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        pytest.param({"id": "not-a-pfid"}, "id", id="id"),
        pytest.param({"purpose": "bogus"}, "purpose", id="purpose"),
        pytest.param({"agent_version": {"name": 3}}, "agent_version.name", id="version"),
    ],
)
def test_a_register_of_a_version_compiled_before_still_checks_the_rest_of_its_body(
    store: Store, register: Register, extra: dict[str, Any], field: str
) -> None:
    register()  # SCHEMA_VERSION's content is compiled now
    with pytest.raises(ApiProblem) as caught:
        register(**extra)
    assert caught.value.status == 422 and field in (caught.value.errors or {})
    assert store.list_instances()["pagination"]["item_count"] == 1


def test_a_version_compiled_before_is_stored_again_for_another_agent(
    store: Store, register: Register
) -> None:
    first, second = register(agent_id="agent-a"), register(agent_id="agent-b")
    ids = [store.get_instance(i)["details"]["agent_id"] for i in (first, second)]
    versions = store._read(
        lambda: store._conn.execute(
            "SELECT agent_id, external_identifier FROM schema_versions ORDER BY agent_id"
        ).fetchall()
    )
    assert ids == ["agent-a", "agent-b"]
    assert [tuple(v) for v in versions] == [
        ("agent-a", "schemas-v1"),
        ("agent-b", "schemas-v1"),
    ]
