"""Strict mode under the plugin: on by default, switched by option, ini and marker."""

from __future__ import annotations

import pytest

from tests.testing.conftest import write_ini

LOOKUP_MODULE = """
from prefactor._tracing.agents import tool


@tool
def find_book(isbn: str) -> dict[str, str]:
    return {"isbn": str(isbn)}
"""

BROKEN_CALL = """
from book_tools import find_book

def test_lookup(prefactor_spans):
    find_book(9780131103627)
    assert prefactor_spans.span("tool:find_book").violations == [
        {"side": "params", "path": "$.isbn", "reason": "9780131103627 is not of type 'string'"}
    ]
"""

FIXED_CALL = """
from book_tools import find_book

def test_lookup(prefactor_spans):
    find_book("9780131103627")
    assert prefactor_spans.span("tool:find_book").violations == []
"""


def run_tests(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(book_tools=LOOKUP_MODULE)
    pytester.makepyfile(test_user=body)
    return pytester.runpytest(*args)


def test_strict_by_default_a_params_violation_fails_naming_span_path_and_reason(
    project: pytest.Pytester,
) -> None:
    result = run_tests(project, BROKEN_CALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       find_book(9780131103627)",
            "E       prefactor.SchemaValidationError: tool:find_book params at $.isbn: "
            "9780131103627 is not of type 'string'",
            "test_user.py:4: SchemaValidationError",
            "*- prefactor schema violation -*",
            "span type: tool:find_book",
            "side:      params",
            "path:      $.isbn",
            "reason:    9780131103627 is not of type 'string'",
        ]
    )


def test_the_same_test_passes_once_the_payload_is_fixed(project: pytest.Pytester) -> None:
    result = run_tests(project, FIXED_CALL)
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("ini", "args", "outcome"),
    [
        pytest.param("", ("--prefactor-no-strict",), "passed", id="option-no-strict"),
        pytest.param("prefactor_strict = false", (), "passed", id="ini-false"),
        pytest.param(
            "prefactor_strict = false", ("--prefactor-strict",), "failed", id="option-over-ini"
        ),
        pytest.param("prefactor_strict = true", (), "failed", id="ini-true"),
    ],
)
def test_option_and_ini_choose_strict_mode_for_the_run(
    pytester: pytest.Pytester, ini: str, args: tuple[str, ...], outcome: str
) -> None:
    write_ini(pytester, ini)
    result = run_tests(pytester, BROKEN_CALL, *args)
    result.assert_outcomes(**{outcome: 1})


def test_marker_turns_strict_mode_off_for_one_test(project: pytest.Pytester) -> None:
    body = BROKEN_CALL.replace(
        "def test_lookup", "import pytest\n\n@pytest.mark.prefactor(strict=False)\ndef test_lookup"
    )
    result = run_tests(project, body + BROKEN_CALL.replace("test_lookup", "test_lookup_strict"))
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED test_user.py::test_lookup_strict - prefactor.SchemaValidation*"]
    )


def test_marker_turns_strict_mode_on_in_a_lenient_run(pytester: pytest.Pytester) -> None:
    write_ini(pytester, "prefactor_strict = false")
    body = BROKEN_CALL.replace(
        "def test_lookup", "import pytest\n\n@pytest.mark.prefactor(strict=True)\ndef test_lookup"
    )
    result = run_tests(pytester, body)
    result.assert_outcomes(failed=1)


def test_violation_raised_as_the_cause_of_another_error_is_still_reported(
    project: pytest.Pytester,
) -> None:
    body = """
    from book_tools import find_book

    def test_wrapped(prefactor_spans):
        try:
            find_book(None)
        except ValueError as exc:
            raise RuntimeError("the catalogue step failed") from exc
    """
    result = run_tests(project, body)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*- prefactor schema violation -*", "span type: tool:find_book", "path:      $.isbn"]
    )


def test_marker_with_an_unknown_option_errors_naming_it(project: pytest.Pytester) -> None:
    body = """
    import pytest

    @pytest.mark.prefactor(strickt=False)
    def test_typo(prefactor_spans):
        pass
    """
    result = run_tests(project, body)
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*unknown options [[]'strickt'[]]; known: [[]'agent_id', 'registry', 'strict'[]]"]
    )


NESTED_CALL = """
from book_tools import find_book
from prefactor._tracing.agents import agent

@agent
def book_librarian(code: int) -> dict:
    return find_book(code)

def test_nested(prefactor_spans):
    book_librarian(7)
"""


def test_violation_traceback_shows_the_users_frames_without_the_sdks(
    project: pytest.Pytester,
) -> None:
    result = run_tests(project, NESTED_CALL)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            ">       book_librarian(7)",
            ">       return find_book(code)",
            "E       prefactor.SchemaValidationError: tool:find_book params at $.isbn: *",
        ]
    )
    result.stdout.no_fnmatch_line("*prefactor/tracing/*")


def test_fulltrace_keeps_the_sdk_frames_of_a_violation(project: pytest.Pytester) -> None:
    result = run_tests(project, NESTED_CALL, "--fulltrace")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*prefactor/_tracing/*.py:*"])
