"""The prefactor_server fixture and LocalServer: the real local API on a loopback port."""

from __future__ import annotations

import httpx
import pytest

from prefactor.testing.server import LocalServer


def test_prefactor_server_round_trips_register_and_spans_over_loopback(
    subprocess_project: pytest.Pytester,
) -> None:
    subprocess_project.makepyfile(
        test_user="""
        def test_rest_round_trip(prefactor_server):
            client = prefactor_server.client
            assert prefactor_server.url.startswith("http://127.0.0.1:")
            registered = client.post(
                "/api/v1/agent_instance/register",
                {"agent_id": "raw", "agent_version": {"name": "raw", "external_identifier": "1"}},
            )
            instance_id = registered["details"]["id"]
            client.post(f"/api/v1/agent_instance/{instance_id}/start", {})
            created = client.post(
                "/api/v1/agent_spans",
                {"details": {"agent_instance_id": instance_id, "schema_name": "step",
                             "status": "active", "payload": {"n": 1}}},
            )
            span_id = created["details"]["id"]
            client.post(
                f"/api/v1/agent_spans/{span_id}/finish",
                {"status": "complete", "result_payload": {"ok": True}},
            )
            trace = client.trace()
            assert trace.render() == "instance raw [active]\\n  step [complete]"
            assert trace.span("step").result == {"ok": True}
        """
    )
    subprocess_project.runpytest_subprocess().assert_outcomes(passed=1)


def test_route_tracer_sends_an_agent_run_to_the_server(
    subprocess_project: pytest.Pytester,
) -> None:
    subprocess_project.makepyfile(
        test_user="""
        from prefactor import _runtime as runtime
        from prefactor._tracing.agents import agent, tool

        @tool
        def fetch_page_length(url: str) -> int:
            return len(url)

        @agent(agent_id="crawler")
        def length_crawler(url: str) -> int:
            return fetch_page_length(url)

        def test_agent_over_http(prefactor_server):
            prefactor_server.route_tracer()
            length_crawler("https://example.org")
            assert runtime.flush(10)
            trace = prefactor_server.client.trace(agent_id="crawler")
            assert trace.render() == (
                "instance crawler [complete]\\n"
                "  agent:length_crawler [complete]\\n"
                "    tool:fetch_page_length [complete]"
            )
            assert trace.records()[1] == {
                "id": "span-2", "parent_id": "span-1", "instance_id": "instance-1",
                "type": "tool:fetch_page_length", "status": "complete",
                "params": {"url": "https://example.org"}, "result": {"value": 19},
                "violations": [],
            }
        """
    )
    subprocess_project.runpytest_subprocess().assert_outcomes(passed=1)


def test_stopped_server_refuses_connections_and_releases_its_database(tmp_path) -> None:
    db_path = tmp_path / "server.db"
    with LocalServer(db_path) as server:
        url = server.url
        assert server.client.instances() == []
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/api/v1/ping", timeout=2)
    db_path.unlink()  # an open SQLite handle would keep the file busy on some platforms
    assert not db_path.exists()


def test_server_requires_its_bearer_token(tmp_path) -> None:
    with LocalServer(tmp_path / "server.db", token="s3cret-token-0123") as server:
        answer = httpx.get(f"{server.url}/api/v1/ping", timeout=2)
        assert answer.status_code == 401
        assert "s3cret-token-0123" not in repr(server) + repr(server.client)
