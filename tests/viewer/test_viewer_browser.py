"""The viewer in a real browser: headless Chromium (Debian's package) driven by Playwright.

The app runs under uvicorn on a loopback port with its access log on; agents
send their spans to it over HTTP with the SDK, as a user's would. ``.ci/run``
installs Chromium when it is missing.

The documentation's screenshots come from here: run with
``PREFACTOR_UPDATE_SCREENSHOTS=1`` to write them to ``docs/images/``
(otherwise they go to a temporary directory and are only checked).
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright
from viewer_helpers import TOKEN, ServedApp, ask_model, kb_search, support_agent

from prefactor import _runtime as runtime
from prefactor._errors import PrefactorTerminatedError
from prefactor._tracing.agents import agent, tool
from prefactor.server.store import Store

# Starts Chromium: deselect with -m 'not slow' for a quick run.
pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1400, "height": 860}
DOCS_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
WAIT_MS = 10_000  # live pages poll every 2 s; a few polls at most


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    with ServedApp(tmp_path_factory.mktemp("browser") / "traces.db") as app:
        yield app


@contextmanager
def sdk_sending_to(served: ServedApp) -> Iterator[None]:
    """The SDK sends spans to the served app over HTTP (lenient mode) until the block ends."""
    runtime.configure(api_url=served.url, api_token=TOKEN, strict=False, on_full="block")
    try:
        yield
        assert runtime.flush(10)
    finally:
        runtime.shutdown()


def run_ids(store: Store, agent_id: str) -> list[str]:
    return [i["id"] for i in store.list_instances(agent_id=agent_id)["summaries"]]


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    context.set_default_timeout(WAIT_MS)
    return context


def sign_in(context: BrowserContext, served: ServedApp) -> Page:
    page = context.new_page()
    page.goto(served.sign_in_link())
    expect(page).to_have_url(served.url + "/")
    return page


@pytest.fixture
def page(browser: Browser, served: ServedApp) -> Iterator[Page]:
    """A signed-in tab."""
    context = new_context(browser)
    yield sign_in(context, served)
    context.close()


def test_a_page_opened_without_signing_in_shows_no_data(
    browser: Browser, served: ServedApp
) -> None:
    with sdk_sending_to(served):
        support_agent("private-bot")("hello")
    (run_id,) = run_ids(served.store, "private-bot")
    context = new_context(browser)
    try:
        tab = context.new_page()
        for path in ("/", f"/runs/{run_id}", "/schemas"):
            tab.goto(served.url + path)
            expect(tab).to_have_url(re.compile(re.escape(served.url + "/signin")))
            html = tab.content()  # the run's id may be in the way back, never what it holds
            assert "private-bot" not in html and "span-row" not in html and "<table" not in html
            expect(tab.locator("h1")).to_have_text("Sign in")
    finally:
        context.close()


def test_a_link_to_a_run_opens_it_after_signing_in_or_at_once_when_signed_in(
    browser: Browser, served: ServedApp
) -> None:
    with sdk_sending_to(served):
        support_agent("link-bot")("q")
    (run_id,) = run_ids(served.store, "link-bot")
    run_url = f"{served.url}/runs/{run_id}"
    context = new_context(browser)
    try:
        tab = context.new_page()
        tab.goto(run_url)
        tab.fill("#token", TOKEN)
        tab.click("text=Sign in >> nth=-1")
        expect(tab).to_have_url(run_url)
        # A link followed from another page (another site's, as in a chat message).
        tab.set_content(f'<a id="go" href="{run_url}">the run</a>')
        tab.click("#go")
        expect(tab).to_have_url(run_url)
        expect(tab.locator(".run-head h1")).to_contain_text("link-bot")
    finally:
        context.close()


def test_the_runs_page_lists_a_run_with_its_failure_and_violation_marks(
    page: Page, served: ServedApp
) -> None:
    with sdk_sending_to(served):
        support_agent("list-bot", "2.0.1")("where is my invoice")
    (run_id,) = run_ids(served.store, "list-bot")
    page.goto(served.url + "/?agent=list-bot")
    row = page.locator(f'tr[data-id="{run_id}"]')
    for text in ("list-bot", "2.0.1", "complete", "✗ 1 failed", "⚑ 1 flagged"):
        expect(row).to_contain_text(text)
    expect(row.locator("td.num").nth(1)).to_have_text("5")


def test_a_failed_spans_error_is_read_after_opening_the_run(page: Page, served: ServedApp) -> None:
    with sdk_sending_to(served):
        support_agent("error-bot")("refund")
    (run_id,) = run_ids(served.store, "error-bot")
    page.goto(served.url + "/?agent=error-bot")
    page.locator(f'tr[data-id="{run_id}"] td').nth(1).click()  # the whole row opens the run
    expect(page).to_have_url(f"{served.url}/runs/{run_id}")
    page.locator(".span-row", has_text="tool:fetch_help_page").locator("a").click()
    error = page.locator("#span-detail .error-box")
    expect(error).to_contain_text(
        "TimeoutError: GET https://docs.example.com/refund did not answer"
    )
    expect(page.locator(".span-row.selected")).to_contain_text("tool:fetch_help_page")
    assert "span=" in page.url  # the selection is a link to share


def test_a_schema_violation_shows_its_json_path_in_the_params(
    page: Page, served: ServedApp
) -> None:
    with sdk_sending_to(served):
        support_agent("flag-bot")("q")
    (run_id,) = run_ids(served.store, "flag-bot")
    page.goto(f"{served.url}/runs/{run_id}")
    page.locator(".span-row", has_text="tool:ask_model").nth(1).locator("a").click()
    expect(page.locator("#span-detail .violations .path")).to_have_text("$.messages[0].content")
    flagged = page.locator('#span-detail [data-path="$.messages[0].content"]')
    expect(flagged).to_be_visible()
    expect(flagged).to_have_class("j j-leaf j-bad")
    expect(flagged).to_contain_text("17 is not of type 'string'")


def test_new_runs_appear_on_the_runs_page_without_a_reload(page: Page, served: ServedApp) -> None:
    page.goto(served.url + "/?agent=arrival-bot")
    expect(page.locator("#runs-live")).to_contain_text("No run matches the filter.")
    page.evaluate("window.stillTheSamePage = true")
    with sdk_sending_to(served):
        support_agent("arrival-bot")("hello")
    (run_id,) = run_ids(served.store, "arrival-bot")
    expect(page.locator(f'tr[data-id="{run_id}"]')).to_be_visible()
    assert page.evaluate("window.stillTheSamePage") is True


def test_a_run_in_progress_updates_live_and_is_terminated_with_a_reason(
    page: Page, served: ServedApp
) -> None:
    waiting, step, finish = threading.Event(), threading.Event(), threading.Event()

    @agent(agent_id="slow-bot")
    def slow_agent(question: str) -> str:
        kb_search(question)
        waiting.set()
        step.wait(WAIT_MS / 1000)
        ask_model("gpt-4o-mini", [{"role": "user", "content": question}])
        finish.wait(WAIT_MS / 1000)
        return "done"

    outcome: list[BaseException | str] = []

    def run() -> None:
        try:
            outcome.append(slow_agent("status"))
        except PrefactorTerminatedError as exc:  # the SDK may stop the agent once terminated
            outcome.append(exc)

    with sdk_sending_to(served):
        worker = threading.Thread(target=run)
        worker.start()
        try:
            # Flush only once the agent's records are queued: a flush racing the very first
            # record, while the exporter's thread is being started, returns False at once.
            assert waiting.wait(10)
            assert runtime.flush(10)
            (run_id,) = run_ids(served.store, "slow-bot")
            page.goto(f"{served.url}/runs/{run_id}")
            expect(page.locator(".run-state .badge")).to_have_text("active")
            expect(page.locator(".span-row")).to_have_count(2)
            page.evaluate("window.stillTheSamePage = true")
            step.set()
            assert runtime.flush(10)
            expect(page.locator(".span-row", has_text="tool:ask_model")).to_have_count(1)
            assert page.evaluate("window.stillTheSamePage") is True
            page.fill("#terminate-reason", "stuck waiting on a human")
            page.click("text=Terminate run")
            expect(page.locator(".run-state .badge")).to_have_text("terminated")
            expect(page.locator(".terminated-reason")).to_contain_text("stuck waiting on a human")
        finally:
            step.set()
            finish.set()
            worker.join(10)
    details = served.store.get_instance(run_id)["details"]
    assert (details["status"], details["termination_reason"]) == (
        "terminated",
        "stuck waiting on a human",
    )
    assert outcome, "the agent thread did not end"


def test_the_token_never_appears_in_the_access_log_the_html_or_any_url(
    browser: Browser, served: ServedApp
) -> None:
    with sdk_sending_to(served):
        support_agent("leak-bot")("q")
    (run_id,) = run_ids(served.store, "leak-bot")
    link = served.sign_in_link()
    code = link.split("#code=", 1)[1]
    urls: list[str] = []
    pages: list[str] = []
    context = new_context(browser)
    try:
        tab = context.new_page()
        tab.on("request", lambda request: urls.append(request.url))
        tab.goto(link)
        expect(tab).to_have_url(served.url + "/")
        with tab.expect_request(lambda r: "/runs/rows" in r.url):  # a live poll or two
            pages.append(tab.content())
        tab.goto(f"{served.url}/runs/{run_id}")
        tab.locator(".span-row", has_text="tool:fetch_help_page").locator("a").click()
        expect(tab.locator(".error-box")).to_be_visible()
        pages.append(tab.content())
        tab.goto(served.url + "/schemas")
        pages.append(tab.content())
        assert tab.evaluate("document.cookie") == ""  # HttpOnly: no script can read it
        assert tab.evaluate("window.history.length") >= 1 and "#" not in tab.url
        # Signing in by typing the token into the form sends it in a body, never a URL.
        context.clear_cookies()
        tab.goto(served.url + "/signin")
        tab.fill("#token", TOKEN)
        tab.click("text=Sign in >> nth=-1")
        expect(tab).to_have_url(served.url + "/")
        pages.append(tab.content())
        (cookie,) = [c for c in context.cookies() if c["name"] == "prefactor_session"]
    finally:
        context.close()
    assert (cookie["httpOnly"], cookie["sameSite"]) == (True, "Strict")
    assert TOKEN not in cookie["value"]
    log = "\n".join(served.access_log.lines)
    assert "GET /signin HTTP/1.1" in log and "POST /signin HTTP/1.1" in log  # it was logging
    for secret in (TOKEN, code):
        assert secret not in log
        assert not [url for url in urls if secret in url]
        assert not [html for html in pages if secret in html]


def test_the_viewer_loads_every_asset_from_the_server_itself(page: Page, served: ServedApp) -> None:
    with sdk_sending_to(served):
        support_agent("offline-bot")("q")
    (run_id,) = run_ids(served.store, "offline-bot")
    urls: list[str] = []
    page.on("request", lambda request: urls.append(request.url))
    for path in ("/", f"/runs/{run_id}", "/schemas"):
        page.goto(served.url + path)
    assert urls and all(url.startswith(served.url + "/") for url in urls), urls
    assert any("/static/viewer.css" in url for url in urls)
    background = page.evaluate(
        "getComputedStyle(document.querySelector('header.top')).backgroundColor"
    )
    assert background == "rgb(31, 35, 40)"  # the stylesheet was served and applied


# --- the documentation's screenshots ------------------------------------------------------
# Agents that take a few milliseconds per step, so the waterfall has something to show.


@tool
def search_help(query: str, limit: int = 3) -> list[str]:
    """Search the help centre."""
    time.sleep(0.012)
    return [f"article about {query}"][:limit]


@tool
def open_help_page(url: str):  # type: ignore[no-untyped-def]
    """Fetch a page (and time out)."""
    time.sleep(0.006)
    raise TimeoutError(f"GET {url} did not answer within 5 s")


@tool
def chat_model(model: str, messages: list[dict[str, str]]) -> dict[str, str]:
    """A model call."""
    time.sleep(0.025)
    return {"text": "Open Settings, then Security, then Reset password."}


@agent(agent_id="support-bot", version="1.4.0")
def support_bot(question: str) -> str:
    search_help(question)
    try:
        open_help_page("https://help.example.com/" + question.replace(" ", "-"))
    except TimeoutError:
        pass
    chat_model("gpt-4o-mini", [{"role": "system", "content": "Answer briefly."}])
    reply = chat_model("gpt-4o-mini", [{"role": "user", "content": 17}])  # type: ignore[dict-item]
    return reply["text"]


@agent(agent_id="research-agent", version="0.9.2")
def research_topic(goal: str) -> str:
    notes = [str(search_help(step)) for step in (goal, goal + " costs")]
    return chat_model("gpt-4o", [{"role": "user", "content": " ".join(notes)}])["text"]


def screenshot_dir(tmp_path: Path) -> Path:
    if os.environ.get("PREFACTOR_UPDATE_SCREENSHOTS"):
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        return DOCS_IMAGES
    return tmp_path


def test_screenshots_of_the_runs_page_and_of_a_run(browser: Browser, tmp_path: Path) -> None:
    """Takes the pictures of ``docs/server.md`` (see the module's docstring)."""
    out = screenshot_dir(tmp_path)
    with ServedApp(tmp_path / "shots.db") as shots:
        with sdk_sending_to(shots):
            for goal in ("solar panels", "heat pumps"):
                research_topic(goal)
            for question in ("reset my password", "where is my invoice", "cancel my plan"):
                support_bot(question)
        waiting = shots.store.register_instance({"agent_id": "billing-agent"})["details"]["id"]
        shots.store.start_instance(waiting, {})
        stopped = shots.store.register_instance({"agent_id": "billing-agent"})["details"]["id"]
        shots.store.start_instance(stopped, {})
        shots.store.terminate_instance(stopped, {"reason": "over budget"})
        context = new_context(browser)
        try:
            tab = sign_in(context, shots)
            expect(tab.locator("tr[data-id]")).to_have_count(7)
            tab.screenshot(path=str(out / "viewer-runs.png"))
            tab.locator("tr[data-id]", has_text="support-bot").first.locator("a").click()
            tab.locator(".span-row", has_text="tool:chat_model").nth(1).locator("a").click()
            expect(tab.locator("#span-detail .violations")).to_be_visible()
            tab.screenshot(path=str(out / "viewer-run.png"))
        finally:
            context.close()
    for name in ("viewer-runs.png", "viewer-run.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_docs_show_the_screenshots_the_tests_take() -> None:
    text = (DOCS_IMAGES.parent / "server.md").read_text()
    for name in ("viewer-runs.png", "viewer-run.png"):
        assert f"](images/{name})" in text
        assert (DOCS_IMAGES / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
