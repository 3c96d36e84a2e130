"""The viewer's pages over a store the SDK wrote: what each shows, and terminating a run.

Runs come from the SDK's embedded sink writing a real SQLite file (lenient
mode), which the app reads; pages are fetched signed in, through ASGI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from viewer_helpers import BASE_URL, run_agents, support_agent

from prefactor._tracing.agents import agent, tool
from prefactor.server.store import Store


def rows(html: str) -> list[str]:
    """The ``data-id`` of each run row of a runs page, in order."""
    return re.findall(r'<tr data-id="([0-9a-z]+)"', html)


def span_rows(html: str) -> list[tuple[str, str, str]]:
    """``(depth, status, schema name)`` of each waterfall row, in order."""
    return re.findall(
        r'<li class="span-row status-(\w+)[^"]*" data-id="\w+".*?data-depth="(\d+)">\s*'
        r'<span class="dot" aria-hidden="true"></span>([\w:]+)',
        html,
        re.S,
    )


def newest(store: Store) -> dict[str, Any]:
    instance: dict[str, Any] = store.list_instances(page_size=1)["summaries"][0]
    return instance


def span_id(store: Store, run_id: str, name: str, index: int = 0) -> str:
    spans = [s for s in store.list_spans(agent_instance_id=run_id)["summaries"]]
    found: str = [s["id"] for s in spans if s["schema_name"] == name][index]
    return found


def active_run(store: Store, agent_id: str = "live-agent") -> str:
    run_id: str = store.register_instance({"agent_id": agent_id})["details"]["id"]
    store.start_instance(run_id, {})
    store.create_span(
        {"details": {"agent_instance_id": run_id, "schema_name": "step", "status": "active"}}
    )
    return run_id


async def test_the_runs_page_lists_each_run_with_its_problems_marked(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot", "1.4.0"), "reset"))
    run = newest(store)
    html = (await viewer.get("/")).text
    assert rows(html) == [run["id"]]
    row = html[html.index(f'<tr data-id="{run["id"]}"') :]
    row = row[: row.index("</tr>")]
    for shown in ("support-bot", "1.4.0", "complete", ">5<", "✗ 1 failed", "⚑ 1 flagged"):
        assert shown in row
    assert "1 run" in html


async def test_filters_narrow_the_runs_and_say_how_many_match(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("bot-a"), "1"), (support_agent("bot-b"), "2"))
    active = active_run(store, "bot-a")
    html = (await viewer.get("/", params={"agent": "bot-a", "status": "active"})).text
    assert rows(html) == [active]
    assert "Runs that match the filter" in html  # agent and status together: not counted
    assert '<option value="bot-a" selected>' in html
    one = (await viewer.get("/", params={"agent": "bot-a"})).text
    assert "2 runs match the filter" in one
    none = (await viewer.get("/", params={"status": "terminated"})).text
    assert rows(none) == [] and "0 runs match the filter" in none
    assert "No run matches the filter." in none


async def test_the_time_filter_leaves_out_older_runs(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    old = active_run(store)
    recent = active_run(store)
    store._conn.execute(  # only SQL can make a run registered two days ago
        "UPDATE instances SET inserted_at = '2020-01-01T00:00:00.000000Z' WHERE id = ?", (old,)
    )
    assert rows((await viewer.get("/", params={"window": "24h"})).text) == [recent]
    assert rows((await viewer.get("/")).text) == [recent, old]


async def test_pages_of_runs_link_to_older_and_newer_ones_keeping_the_filter(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    ids = [active_run(store) for _ in range(55)]
    first = (await viewer.get("/", params={"status": "active"})).text
    assert rows(first) == ids[::-1][:50]
    older = re.search(r'href="(/\?[^"]+)" rel="next"', first)
    assert older is not None and "status=active" in older.group(1)
    second = (await viewer.get(older.group(1).replace("&amp;", "&"))).text
    assert rows(second) == ids[::-1][50:]
    assert 'rel="next"' not in second
    assert "data-live-url" not in second  # only the newest page follows new runs
    newer = re.search(r'href="(/\?[^"]+)" rel="prev"', second)
    assert newer is not None
    assert rows((await viewer.get(newer.group(1).replace("&amp;", "&"))).text) == rows(first)


async def test_the_rows_fragment_holds_the_newest_runs_for_live_updates(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    page = (await viewer.get("/", params={"agent": "live-agent"})).text
    assert 'data-live-url="/runs/rows?agent=live-agent"' in page
    assert rows(page) == []
    new = active_run(store)
    fragment = (await viewer.get("/runs/rows", params={"agent": "live-agent"})).text
    assert rows(fragment) == [new]
    assert "<html" not in fragment


async def test_a_runs_waterfall_lists_its_spans_as_a_tree_coloured_by_status(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot"), "q"))
    html = (await viewer.get(f"/runs/{newest(store)['id']}")).text
    assert span_rows(html) == [
        ("complete", "0", "agent:answer_ticket"),
        ("complete", "1", "tool:kb_search"),
        ("failed", "1", "tool:fetch_help_page"),
        ("complete", "1", "tool:ask_model"),
        ("complete", "1", "tool:ask_model"),
    ]
    bars = [
        (float(x), float(x) + float(w))
        for x, w in re.findall(r'<rect class="bar" x="([\d.]+)%" width="([\d.]+)%"', html)
    ]
    root, *children = bars
    assert len(children) == 4 and 0 <= root[0] and root[1] <= 100
    assert all(root[0] <= start < end <= root[1] + 0.5 for start, end in children)
    assert [start for start, _ in children] == sorted(start for start, _ in children)
    assert '<span class="err-type">✗ TimeoutError</span>' in html


async def test_a_run_page_selects_the_root_span_and_shows_its_params_and_result(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot"), "reset my password"))
    html = (await viewer.get(f"/runs/{newest(store)['id']}")).text
    detail = html[html.index('<aside id="span-detail"') :]
    assert "agent:answer_ticket" in detail
    question = '<span class="j-key">question</span> <span class="j-string">&#34;reset my password'
    assert question in detail
    assert '<span class="j-string">&#34;gpt-4o-mini says: read the docs&#34;</span>' in detail


async def test_a_failed_spans_details_show_its_error_type_and_message(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot"), "reset"))
    run_id = newest(store)["id"]
    failed = span_id(store, run_id, "tool:fetch_help_page")
    html = (await viewer.get(f"/runs/{run_id}/spans/{failed}")).text
    assert '<strong class="err-type">TimeoutError</strong>' in html
    assert "GET https://docs.example.com/reset did not answer within 5 s" in html
    assert "<h3>Result</h3>" not in html


async def test_a_flagged_spans_details_show_each_violation_with_its_json_path(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot"), "q"))
    run_id = newest(store)["id"]
    flagged = span_id(store, run_id, "tool:ask_model", 1)
    html = (await viewer.get(f"/runs/{run_id}?span={flagged}")).text
    assert '<code class="path">$.messages[0].content</code>' in html
    assert "17 is not of type &#39;string&#39;" in html
    node = re.search(r'<div class="j j-leaf j-bad" data-path="\$\.messages\[0\]\.content">', html)
    assert node is not None
    assert re.search(r'<li class="span-row status-complete selected" data-id="' + flagged, html)


async def test_values_that_look_like_markup_are_shown_as_text(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    @tool
    def echo_text(text: str) -> str:
        return text

    @agent(agent_id="<img src=x onerror=alert(1)>")
    def hostile_agent(text: str) -> str:
        return echo_text(text)

    run_agents(db, (hostile_agent, "<script>alert('x')</script>"))
    run_id = newest(store)["id"]
    pages = [
        (await viewer.get("/")).text,
        (await viewer.get(f"/runs/{run_id}")).text,
        (await viewer.get(f"/runs/{run_id}/spans/{span_id(store, run_id, 'tool:echo_text')}")).text,
    ]
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in pages[2]
    assert "&lt;img src=x onerror=alert(1)&gt;" in pages[0]


async def test_an_unknown_run_or_span_is_a_404_page(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id = active_run(store)
    missing = await viewer.get("/runs/01m8xmfd9amfpvjkpyjc186tabnf9tse")
    assert missing.status_code == 404 and "There is no run" in missing.text
    wrong_span = await viewer.get(f"/runs/{run_id}/spans/01m8xmfd9amfpvjkpyjc186tabnf9tse")
    assert wrong_span.status_code == 404


async def test_the_live_fragment_says_whether_the_run_is_still_going(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id = active_run(store)
    going = (await viewer.get(f"/runs/{run_id}/live")).text
    assert 'data-status="active" data-final="0"' in going and "<html" not in going
    store.finish_instance(run_id, {"status": "failed"})
    done = (await viewer.get(f"/runs/{run_id}/live")).text
    assert 'data-status="failed" data-final="1"' in done


async def csrf_of(viewer: httpx.AsyncClient, run_id: str) -> str:
    html = (await viewer.get(f"/runs/{run_id}")).text
    found = re.search(
        r'action="/runs/\w+/terminate"[^>]*>\s*<input type="hidden" name="csrf" value="([^"]+)"',
        html,
    )
    assert found is not None
    return found.group(1)


async def test_terminating_an_active_run_stores_its_reason(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id = active_run(store)
    csrf = await csrf_of(viewer, run_id)
    response = await viewer.post(
        f"/runs/{run_id}/terminate",
        data={"csrf": csrf, "reason": "looping on the same tool"},
        headers={"Origin": BASE_URL},
    )
    assert (response.status_code, response.headers["location"]) == (303, f"/runs/{run_id}")
    details = store.get_instance(run_id)["details"]
    assert (details["status"], details["termination_reason"]) == (
        "terminated",
        "looping on the same tool",
    )
    page = (await viewer.get(f"/runs/{run_id}")).text
    assert "looping on the same tool" in page and 'id="terminate-form"' not in page


@pytest.mark.parametrize(
    ("fields", "headers"),
    [
        pytest.param({"reason": "r"}, {}, id="no-csrf"),
        pytest.param({"reason": "r", "csrf": "forged"}, {}, id="wrong-csrf"),
        pytest.param({"reason": "r"}, {"Origin": "https://evil.example"}, id="other-origin"),
        pytest.param({"reason": "r"}, {"Sec-Fetch-Site": "cross-site"}, id="cross-site"),
    ],
)
async def test_a_terminate_that_is_not_from_the_runs_own_page_is_refused(
    viewer: httpx.AsyncClient, store: Store, fields: dict[str, str], headers: dict[str, str]
) -> None:
    run_id = active_run(store)
    if "csrf" not in fields and headers:
        fields = {**fields, "csrf": await csrf_of(viewer, run_id)}  # right token, wrong origin
    response = await viewer.post(f"/runs/{run_id}/terminate", data=fields, headers=headers)
    assert response.status_code == 403
    assert store.get_instance(run_id)["details"]["status"] == "active"


async def test_a_csrf_token_of_another_session_is_refused(
    viewer: httpx.AsyncClient, app: FastAPI, store: Store
) -> None:
    run_id = active_run(store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as other:
        await other.post("/signin", data={"code": app.state.sign_in.issue_code()})
        theirs = await csrf_of(other, run_id)
    response = await viewer.post(f"/runs/{run_id}/terminate", data={"csrf": theirs, "reason": "r"})
    assert response.status_code == 403


async def test_terminating_without_a_reason_asks_for_one(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id = active_run(store)
    csrf = await csrf_of(viewer, run_id)
    response = await viewer.post(f"/runs/{run_id}/terminate", data={"csrf": csrf, "reason": "  "})
    assert response.status_code == 422 and "Give a reason" in response.text
    assert store.get_instance(run_id)["details"]["status"] == "active"


async def test_terminating_a_finished_run_says_why_nothing_changed(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id = active_run(store)
    csrf = await csrf_of(viewer, run_id)
    store.finish_instance(run_id, {})
    response = await viewer.post(f"/runs/{run_id}/terminate", data={"csrf": csrf, "reason": "r"})
    assert response.status_code == 409
    assert "Not terminated: agent instance is already complete." in response.text
    assert store.get_instance(run_id)["details"]["status"] == "complete"


async def test_the_schemas_page_lists_span_types_per_agent_version(
    viewer: httpx.AsyncClient, db: Path
) -> None:
    run_agents(db, (support_agent("support-bot", "1.4.0"), "q"))
    html = (await viewer.get("/schemas", params={"agent": "support-bot"})).text
    assert "used by agent version" in html and '<span class="tag">1.4.0</span>' in html
    for name in ("agent:answer_ticket", "tool:kb_search", "tool:fetch_help_page", "tool:ask_model"):
        assert f'<span class="mono">{name}</span>' in html
    assert re.search(
        r'<td class="mono">limit</td>\s*<td class="type">integer <span class="muted">= 3</span>',
        html,
    )
    assert (
        "No schema version is registered for nobody"
        in (await viewer.get("/schemas", params={"agent": "nobody"})).text
    )


async def test_every_page_loads_only_the_packages_own_files(
    viewer: httpx.AsyncClient, db: Path, store: Store
) -> None:
    run_agents(db, (support_agent("support-bot"), "q"))
    run_id = newest(store)["id"]
    for path in ("/", f"/runs/{run_id}", "/schemas", "/signin"):
        html = (await viewer.get(path)).text
        for url in re.findall(r'(?:src|href|action)="([^"]*)"', html):
            assert url.startswith(("/", "?", "#")), (path, url)
    for asset in ("/static/viewer.css", "/static/viewer.js", "/static/favicon.svg"):
        response = await viewer.get(asset)
        assert response.status_code == 200 and "http://" not in response.text.replace(
            "http://www.w3.org/2000/svg", ""
        )


async def test_a_run_without_spans_says_so_and_offers_no_span(
    viewer: httpx.AsyncClient, store: Store
) -> None:
    run_id: str = store.register_instance({"agent_id": "empty-agent"})["details"]["id"]
    html = (await viewer.get(f"/runs/{run_id}")).text
    assert "No spans yet." in html
    assert "Select a span to see its params and result." in html
    assert 'data-status="pending" data-final="0"' in html
