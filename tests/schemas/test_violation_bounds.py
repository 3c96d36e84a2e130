"""A violation says what failed in bounded words: no large value repeated, no thousands listed."""

from __future__ import annotations

from pathlib import Path

import pytest
from store_helpers import the_only_span

import prefactor
from prefactor import _runtime as runtime
from prefactor import tool
from prefactor._schemas.validation import MAX_REASON_LENGTH, MAX_VIOLATIONS, compile_schema

INTEGERS = {"type": "array", "items": {"type": "integer"}}


def test_a_reason_quoting_a_long_string_keeps_its_start_and_what_failed() -> None:
    ((path, reason),) = compile_schema({"type": "integer"}).errors("x" * 5_000)
    assert path == "$"
    assert len(reason) == MAX_REASON_LENGTH
    assert reason.startswith("'xxxx")
    assert reason.endswith("' is not of type 'integer'")
    assert "characters]" in reason


def test_a_short_reason_is_left_whole() -> None:
    assert compile_schema({"type": "integer"}).errors("seven") == [
        ("$", "'seven' is not of type 'integer'")
    ]


def test_a_payload_lists_a_bounded_number_of_violations_and_says_more_were_left_out() -> None:
    errors = compile_schema(INTEGERS).errors(["s"] * (MAX_VIOLATIONS * 3))
    assert len(errors) == MAX_VIOLATIONS + 1
    assert errors[-1] == ("$", f"more violations not listed (the first {MAX_VIOLATIONS} are)")
    assert all(reason == "'s' is not of type 'integer'" for _, reason in errors[:-1])


def test_exactly_the_bound_lists_every_violation_and_no_note() -> None:
    errors = compile_schema(INTEGERS).errors(["s"] * MAX_VIOLATIONS)
    assert len(errors) == MAX_VIOLATIONS
    assert all(path != "$" for path, _ in errors)


@tool
def count_words(count: int, words: list[int]) -> int:
    return len(words)


def test_strict_mode_raises_with_the_bounded_violations(tmp_path: Path) -> None:
    prefactor.configure(db_path=tmp_path / "traces.db", strict=True, agent_id="bounds")
    try:
        with pytest.raises(prefactor.SchemaValidationError) as raised:
            count_words("y" * 8_000, ["w"] * 1_000)  # type: ignore[arg-type, list-item]
    finally:
        runtime.shutdown()
    assert len(raised.value.errors) == MAX_VIOLATIONS + 1
    assert str(raised.value).endswith(f"is not of type 'integer' (and {MAX_VIOLATIONS} more)")
    assert len(str(raised.value)) < MAX_REASON_LENGTH + 100


def test_the_stored_span_carries_bounded_violations(tmp_path: Path) -> None:
    prefactor.configure(db_path=tmp_path / "traces.db", agent_id="bounds")
    try:
        count_words("y" * 8_000, ["w"] * 1_000)  # type: ignore[arg-type, list-item]
        assert prefactor.flush(10)
        assert prefactor.stats()["rejected"] == 0
    finally:
        runtime.shutdown()
    span = the_only_span(tmp_path / "traces.db")
    violations = span["schema_violations"]
    assert span["payload"]["count"].startswith("yyyy")  # the value itself is kept, as captured
    assert {v["side"] for v in violations} == {"params"}
    assert len(violations) == MAX_VIOLATIONS + 1
    assert max(len(v["reason"]) for v in violations) == MAX_REASON_LENGTH
    assert violations[-1]["path"] == "$"
