"""What capture hands the exporter is what the embedded store keeps: read back from the file.

Values JSON cannot carry, large sets and secrets, each through ``@tool`` calls with the
default embedded sink (a real SQLite file), in lenient mode (captured in the exporter's
thread) and in strict mode (captured on the caller's path).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import prefactor
from prefactor import _runtime as runtime
from prefactor import tool
from prefactor.server.store import Store

BAD_NAME = os.fsdecode(b"caf\xe9.txt")  # a non-UTF-8 file name: "caf\udce9.txt"
HUGE = 2**70


@tool
def open_file(name: str, size: int, *, owner: str = "bob") -> int:
    return HUGE


@tool
def list_dir(names: list[str], sizes: dict[str, int]) -> set[str]:
    return set(names)


@tool
def count_tags(tags: frozenset[str]) -> int:
    return len(tags)


@tool
def connect(dsn: str, pwd: str, otp: int, config: dict[str, Any]) -> str:
    return dsn


@pytest.fixture(params=[False, True], ids=["lenient", "strict"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "traces.db"
    prefactor.configure(db_path=path, strict=request.param, agent_id="capture-test")
    yield path
    runtime.shutdown()


def stored(path: Path, span_type: str) -> dict[str, Any]:
    """The one stored span of ``span_type``, after everything was delivered."""
    assert prefactor.flush(10)
    assert prefactor.stats()["rejected"] == 0
    store = Store(path)
    try:
        (instance,) = [
            i
            for i in store.list_instances()["summaries"]
            if any(
                s["schema_name"] == span_type
                for s in store.list_spans(agent_instance_id=i["id"])["summaries"]
            )
        ]
        spans = store.list_spans(agent_instance_id=instance["id"])["summaries"]
    finally:
        store.close()
    (span,) = [s for s in spans if s["schema_name"] == span_type]
    return span


def test_values_json_cannot_carry_are_stored_encodable_with_markers(db: Path) -> None:
    open_file(BAD_NAME, 2**65, owner=BAD_NAME)
    span = stored(db, "tool:open_file")
    assert span["payload"] == {
        "name": "caf\\udce9.txt…[escaped 1 lone surrogate]",
        "size": "36893488147419103232…[int beyond 64 bits]",
        "owner": "caf\\udce9.txt…[escaped 1 lone surrogate]",
    }
    assert span["result_payload"] == {"value": "1180591620717411303424…[int beyond 64 bits]"}
    assert (span["status"], span["schema_violations"]) == ("complete", None)


def test_nested_unencodable_values_and_keys_are_stored_with_markers(db: Path) -> None:
    list_dir([BAD_NAME, "ok.txt"], {BAD_NAME: HUGE})
    span = stored(db, "tool:list_dir")
    escaped = "caf\\udce9.txt…[escaped 1 lone surrogate]"
    assert span["payload"] == {
        "names": [escaped, "ok.txt"],
        "sizes": {escaped: "1180591620717411303424…[int beyond 64 bits]"},
    }
    assert span["result_payload"] == {"value": [escaped, "ok.txt"]}
    assert span["schema_violations"] is None


def test_a_large_set_is_stored_as_its_first_items_sorted_with_a_marker(db: Path) -> None:
    count_tags(frozenset(f"tag-{n:07d}" for n in range(200_000)))
    span = stored(db, "tool:count_tags")
    tags = span["payload"]["tags"]
    assert len(tags) == 1_001 and tags[-1] == "…[199000 more items]"
    assert tags[:-1] == sorted(tags[:-1])
    assert span["schema_violations"] is None


def test_no_secret_reaches_the_database_file(db: Path) -> None:
    connect(
        "postgres://bob:hunter2@db.internal:5432/app",
        pwd="s3cr3t-pwd",
        otp=314159,
        config={"sessionToken": "tok-abc", "url": "https://ann:pa55@api.example/v1", "n": 1},
    )
    span = stored(db, "tool:connect")
    assert span["payload"] == {
        "dsn": "postgres://bob:[REDACTED]@db.internal:5432/app",
        "pwd": "[REDACTED]",
        "otp": "[REDACTED]",
        "config": {
            "sessionToken": "[REDACTED]",
            "url": "https://ann:[REDACTED]@api.example/v1",
            "n": 1,
        },
    }
    assert span["result_payload"] == {"value": "postgres://bob:[REDACTED]@db.internal:5432/app"}
    assert span["schema_violations"] is None
    runtime.shutdown()
    raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
    for secret in (b"hunter2", b"s3cr3t-pwd", b"314159", b"tok-abc", b"pa55"):
        assert secret not in raw


@tool
def scale_capture(factor: float, factors: list[float]) -> float:
    return factor


@pytest.mark.parametrize("strict", [False, True], ids=["lenient", "strict"])
def test_infinite_floats_under_a_tiny_string_cap_are_stored_whole_and_valid(
    tmp_path: Path, strict: bool
) -> None:
    path = tmp_path / "traces.db"
    prefactor.configure(
        db_path=path,
        strict=strict,
        agent_id="capture-test",
        capturer=prefactor.Capturer(max_string_length=4),
    )
    try:
        assert scale_capture(float("-inf"), [float("inf"), 1.5]) == float("-inf")
        span = stored(path, "tool:scale_capture")
    finally:
        runtime.shutdown()
    assert span["payload"] == {"factor": "-Infinity", "factors": ["Infinity", 1.5]}
    assert span["result_payload"] == {"value": "-Infinity"}
    assert (span["status"], span["schema_violations"]) == ("complete", None)
