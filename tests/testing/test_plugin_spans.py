"""The prefactor_spans fixture: recording, lookups, navigation, render and records."""

from __future__ import annotations

import pytest

from tests.testing.conftest import write_ini

AGENT_MODULE = """
from prefactor._tracing.agents import agent, tool


@tool
def search_notes(query: str, limit: int = 2) -> list[str]:
    return [f"{query}-{n}" for n in range(limit)]


@tool
def summarise_notes(texts: list[str]) -> str:
    return " + ".join(texts)


@agent
def note_researcher(topic: str) -> str:
    return summarise_notes(search_notes(topic))
"""


def run_tests(project: pytest.Pytester, body: str) -> pytest.RunResult:
    project.makepyfile(notes_agent=AGENT_MODULE)
    project.makepyfile(test_user=body)
    return project.runpytest()


def test_prefactor_spans_records_the_spans_of_the_test(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher

        def test_run(prefactor_spans):
            note_researcher("cats")
            assert [s.type for s in prefactor_spans.spans] == [
                "agent:note_researcher", "tool:search_notes", "tool:summarise_notes"
            ]
            assert [(i.agent_id, i.status) for i in prefactor_spans.instances] == [
                ("test-agent", "complete")
            ]
        """,
    )
    result.assert_outcomes(passed=1)


def test_lookups_find_spans_by_type_name_and_status(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        import pytest
        from notes_agent import note_researcher, search_notes

        def test_lookups(prefactor_spans):
            note_researcher("cats")
            search_notes("dogs", limit=1)
            summary = prefactor_spans.span("tool:summarise_notes")
            assert summary.params == {"texts": ["cats-0", "cats-1"]}
            searches = prefactor_spans.spans_of_type("tool:search_notes")
            assert [s.params["query"] for s in searches] == ["cats", "dogs"]
            found = prefactor_spans.find(name="search_notes", status="complete")
            assert [s.type for s in found] == ["tool:search_notes", "tool:search_notes"]
            assert prefactor_spans.find(type="tool:search_notes", status="failed") == []
            with pytest.raises(LookupError, match="expected one 'tool:search_notes' span, found 2"):
                prefactor_spans.span("tool:search_notes")
        """,
    )
    result.assert_outcomes(passed=1)


def test_parent_and_children_navigate_the_span_tree(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher

        def test_tree(prefactor_spans):
            note_researcher("cats")
            tool = prefactor_spans.span("tool:search_notes")
            root = prefactor_spans.parent(tool)
            assert root.type == "agent:note_researcher"
            assert prefactor_spans.parent(root) is None
            assert [c.type for c in root.children] == ["tool:search_notes", "tool:summarise_notes"]
        """,
    )
    result.assert_outcomes(passed=1)


def test_render_shows_the_span_tree_as_indented_text(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher

        def test_render(prefactor_spans):
            note_researcher("cats")
            assert prefactor_spans.render() == (
                "instance test-agent [complete]\\n"
                "  agent:note_researcher [complete]\\n"
                "    tool:search_notes [complete]\\n"
                "    tool:summarise_notes [complete]"
            )
        """,
    )
    result.assert_outcomes(passed=1)


def test_records_compare_equal_to_a_literal_with_stable_tokens(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher, search_notes

        def test_records(prefactor_spans):
            note_researcher("cats")
            search_notes("dogs", limit=1)
            assert prefactor_spans.records() == [
                {"id": "span-1", "parent_id": None, "instance_id": "instance-1",
                 "type": "agent:note_researcher", "status": "complete",
                 "params": {"topic": "cats"}, "result": {"value": "cats-0 + cats-1"},
                 "violations": []},
                {"id": "span-2", "parent_id": "span-1", "instance_id": "instance-1",
                 "type": "tool:search_notes", "status": "complete",
                 "params": {"query": "cats", "limit": 2}, "result": {"value": ["cats-0", "cats-1"]},
                 "violations": []},
                {"id": "span-3", "parent_id": "span-1", "instance_id": "instance-1",
                 "type": "tool:summarise_notes", "status": "complete",
                 "params": {"texts": ["cats-0", "cats-1"]}, "result": {"value": "cats-0 + cats-1"},
                 "violations": []},
                {"id": "span-4", "parent_id": None, "instance_id": "instance-2",
                 "type": "tool:search_notes", "status": "complete",
                 "params": {"query": "dogs", "limit": 1}, "result": {"value": ["dogs-0"]},
                 "violations": []},
            ]
        """,
    )
    result.assert_outcomes(passed=1)


def test_clear_forgets_what_was_recorded(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher, search_notes

        def test_clear(prefactor_spans):
            note_researcher("cats")
            prefactor_spans.clear()
            search_notes("dogs")
            assert [s.type for s in prefactor_spans.spans] == ["tool:search_notes"]
        """,
    )
    result.assert_outcomes(passed=1)


def test_tracer_is_shut_down_after_a_test_using_prefactor_spans(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        used = []

        def test_first(prefactor_spans):
            used.append(prefactor_spans)
            assert not prefactor_spans.sink.closed

        def test_second():
            assert used[0].sink.closed
        """,
    )
    result.assert_outcomes(passed=2)


def test_plugin_leaves_a_users_own_tracer_alone_without_its_fixtures(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        import pytest
        from prefactor import _runtime as runtime
        from prefactor._export.sinks import MemorySink

        @pytest.fixture(scope="session")
        def own_sink():
            sink = MemorySink()
            runtime.configure(sink=sink, strict=False)
            yield sink
            runtime.shutdown()
        """
    )
    result = run_tests(
        project,
        """
        from prefactor import _runtime as runtime
        from prefactor.testing import Trace
        from notes_agent import search_notes

        def test_uses_own_tracer(own_sink):
            search_notes("cats")
            assert runtime.flush(10)
            span = Trace(own_sink.items).span("tool:search_notes")
            assert span.params == {"query": "cats", "limit": 2}
        """,
    )
    result.assert_outcomes(passed=1)


def test_a_users_own_tracer_is_restored_after_a_test_using_prefactor_spans(
    project: pytest.Pytester,
) -> None:
    project.makeconftest(
        """
        import pytest
        from prefactor import _runtime as runtime
        from prefactor._export.sinks import MemorySink

        @pytest.fixture(scope="session")
        def own_sink():
            sink = MemorySink()
            runtime.configure(sink=sink, strict=False)
            yield sink
            runtime.shutdown()
        """
    )
    result = run_tests(
        project,
        """
        from prefactor import _runtime as runtime
        from prefactor.testing import Trace
        from notes_agent import search_notes

        def test_records_in_memory(own_sink, prefactor_spans):
            search_notes("cats")
            assert [s.type for s in prefactor_spans.spans] == ["tool:search_notes"]

        def test_own_tracer_still_works_afterwards(own_sink):
            assert not own_sink.closed
            search_notes("dogs")
            assert runtime.flush(10)
            (span,) = Trace(own_sink.items).spans_of_type("tool:search_notes")
            assert span.params == {"query": "dogs", "limit": 2}
        """,
    )
    result.assert_outcomes(passed=2)


def test_failing_test_report_shows_the_rendered_span_tree(project: pytest.Pytester) -> None:
    result = run_tests(
        project,
        """
        from notes_agent import note_researcher

        def test_wrong_expectation(prefactor_spans):
            note_researcher("cats")
            assert prefactor_spans.span("tool:search_notes").params["limit"] == 5
        """,
    )
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*- prefactor spans -*",
            "instance test-agent [[]complete[]]",
            "  agent:note_researcher [[]complete[]]",
            "    tool:search_notes [[]complete[]]",
        ]
    )


def test_marker_agent_id_names_the_agent_of_new_instances(pytester: pytest.Pytester) -> None:
    write_ini(pytester)
    result = run_tests(
        pytester,
        """
        import pytest
        from notes_agent import search_notes

        @pytest.mark.prefactor(agent_id="librarian")
        def test_agent_id(prefactor_spans):
            search_notes("cats")
            assert [i.agent_id for i in prefactor_spans.instances] == ["librarian"]
        """,
    )
    result.assert_outcomes(passed=1)
