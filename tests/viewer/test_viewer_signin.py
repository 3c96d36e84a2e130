"""Signing in to the viewer: one-time links, the session cookie, what each credential opens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from viewer_helpers import BASE_URL, TOKEN, run_agents, support_agent

from prefactor.server._viewer.session import SESSION_SECONDS, SignIn
from prefactor.server.store import Store

ROOT = Path(__file__).resolve().parents[2]
PAGES = ["/", "/runs/rows", "/schemas"]


def cookie_header(response: httpx.Response) -> str:
    (value,) = response.headers.get_list("set-cookie")
    return value


@pytest.mark.parametrize("path", PAGES)
async def test_a_page_opened_without_signing_in_sends_the_browser_to_sign_in(
    anonymous: httpx.AsyncClient, db: Path, path: str
) -> None:
    run_agents(db, (support_agent("secret-agent"), "q"))
    response = await anonymous.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/signin")
    page = await anonymous.get(response.headers["location"])
    assert page.status_code == 200
    assert "secret-agent" not in response.text + page.text


async def test_a_run_page_without_a_session_shows_nothing_of_the_run(
    anonymous: httpx.AsyncClient, store: Store, db: Path
) -> None:
    run_agents(db, (support_agent("secret-agent"), "q"))
    run_id = store.list_instances()["summaries"][0]["id"]
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/live"):
        response = await anonymous.get(path)
        assert response.status_code == 303
        page = await anonymous.get(response.headers["location"])
        assert "secret-agent" not in response.text + page.text
        assert "<table" not in page.text and "span-row" not in page.text


async def test_signing_in_leads_back_to_the_page_first_asked_for(
    anonymous: httpx.AsyncClient, store: Store
) -> None:
    run_id = store.register_instance({"agent_id": "a"})["details"]["id"]
    asked = await anonymous.get(f"/runs/{run_id}", params={"span": "x"})
    location = asked.headers["location"]
    assert location == f"/signin?next=%2Fruns%2F{run_id}%3Fspan%3Dx"
    form = (await anonymous.get(location)).text
    assert f'name="next" value="/runs/{run_id}?span=x"' in form
    signed = await anonymous.post(
        "/signin", data={"token": TOKEN, "next": f"/runs/{run_id}?span=x"}
    )
    assert signed.headers["location"] == f"/runs/{run_id}?span=x"
    assert (await anonymous.get("/signin", params={"next": "/schemas"})).headers[
        "location"
    ] == "/schemas"  # signed in already: straight on


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "runs", ""]
)
async def test_signing_in_never_leads_off_the_server(
    anonymous: httpx.AsyncClient, target: str
) -> None:
    signed = await anonymous.post("/signin", data={"token": TOKEN, "next": target})
    assert signed.headers["location"] == "/"


async def test_a_post_without_a_session_is_refused(
    anonymous: httpx.AsyncClient, store: Store
) -> None:
    run_id = store.register_instance({"agent_id": "a"})["details"]["id"]
    store.start_instance(run_id, {})
    response = await anonymous.post(f"/runs/{run_id}/terminate", data={"reason": "x"})
    assert response.status_code == 401
    assert store.get_instance(run_id)["details"]["status"] == "active"


async def test_a_sign_in_code_signs_in_once(anonymous: httpx.AsyncClient, app: FastAPI) -> None:
    code = app.state.sign_in.issue_code()
    first = await anonymous.post("/signin", data={"code": code})
    assert (first.status_code, first.headers["location"]) == (303, "/")
    assert (await anonymous.get("/")).status_code == 200
    anonymous.cookies.clear()
    again = await anonymous.post("/signin", data={"code": code})
    assert again.status_code == 401
    assert "used already" in again.text
    assert "set-cookie" not in again.headers


async def test_the_session_cookie_is_http_only_same_site_strict_and_not_the_token(
    anonymous: httpx.AsyncClient, app: FastAPI
) -> None:
    response = await anonymous.post("/signin", data={"code": app.state.sign_in.issue_code()})
    cookie = cookie_header(response)
    attributes = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/", f"max-age={SESSION_SECONDS}"} <= attributes
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would be dropped
    assert TOKEN not in cookie


async def test_over_https_the_session_cookie_is_secure(app: FastAPI) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://viewer.test") as client:
        response = await client.post("/signin", data={"code": app.state.sign_in.issue_code()})
    assert "secure" in {p.strip().lower() for p in cookie_header(response).split(";")}


async def test_the_api_token_typed_into_the_form_signs_in(anonymous: httpx.AsyncClient) -> None:
    response = await anonymous.post("/signin", data={"token": TOKEN})
    assert response.status_code == 303
    assert (await anonymous.get("/")).status_code == 200


async def test_a_wrong_token_or_code_does_not_sign_in(anonymous: httpx.AsyncClient) -> None:
    for data in ({"token": TOKEN + "x"}, {"code": "made-up"}, {}):
        response = await anonymous.post("/signin", data=data)
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
    assert (await anonymous.get("/")).status_code == 303


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({"Sec-Fetch-Site": "cross-site"}, id="sec-fetch-site"),
        pytest.param({"Origin": "https://evil.example"}, id="origin"),
    ],
)
async def test_a_sign_in_posted_from_another_site_is_refused(
    anonymous: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    response = await anonymous.post("/signin", data={"token": TOKEN}, headers=headers)
    assert response.status_code == 403
    assert "set-cookie" not in response.headers


async def test_a_sign_in_posted_from_the_page_itself_is_accepted(
    anonymous: httpx.AsyncClient,
) -> None:
    headers = {"Origin": BASE_URL, "Sec-Fetch-Site": "same-origin"}
    response = await anonymous.post("/signin", data={"token": TOKEN}, headers=headers)
    assert response.status_code == 303


async def test_the_api_does_not_take_the_session_cookie_as_a_credential(
    viewer: httpx.AsyncClient,
) -> None:
    response = await viewer.get("/api/v1/agent_instance")
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    with_token = await viewer.get(
        "/api/v1/agent_instance", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert with_token.status_code == 200


async def test_a_bearer_token_does_not_open_the_viewers_pages(
    anonymous: httpx.AsyncClient,
) -> None:
    response = await anonymous.get("/", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 303


async def test_a_tampered_session_cookie_is_refused(viewer: httpx.AsyncClient) -> None:
    (name, value), *_ = viewer.cookies.items()
    expires, nonce, signature = value.split(".")
    viewer.cookies.clear()
    opens = await viewer.get("/", headers={"Cookie": f"{name}={value}"})
    assert opens.status_code == 200  # the header below is how the cookie travels
    forged = f"{int(expires) + 10**6}.{nonce}.{signature}"
    assert (await viewer.get("/", headers={"Cookie": f"{name}={forged}"})).status_code == 303


def test_a_session_lapses_after_its_lifetime() -> None:
    now = [1_000_000.0]
    sign_in = SignIn(TOKEN, clock=lambda: now[0])
    cookie = sign_in.new_session()
    assert sign_in.session_nonce(cookie) is not None
    now[0] += SESSION_SECONDS
    assert sign_in.session_nonce(cookie) is None


def test_sessions_of_one_token_hold_across_restarts_and_end_with_a_new_token() -> None:
    cookie = SignIn(TOKEN).new_session()
    assert SignIn(TOKEN).session_nonce(cookie) is not None
    assert SignIn(TOKEN + "-rotated").session_nonce(cookie) is None


def test_the_sign_in_state_shows_no_secret() -> None:
    sign_in = SignIn(TOKEN)
    code = sign_in.issue_code()
    assert TOKEN not in repr(sign_in) and code not in repr(sign_in)


async def test_signing_out_ends_the_session_in_the_browser(viewer: httpx.AsyncClient) -> None:
    response = await viewer.post("/signout")
    assert (response.status_code, response.headers["location"]) == (303, "/signin")
    assert "max-age=0" in cookie_header(response).lower()
    assert (await viewer.get("/")).status_code == 303


async def test_pages_forbid_framing_and_load_only_their_own_files(
    viewer: httpx.AsyncClient,
) -> None:
    response = await viewer.get("/")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"


def _serve(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``prefactor serve`` on a free port; the process and its banner, up to the viewer line."""
    command = ["serve", "--port", "0", "--db", str(tmp_path / "t.db"), *args]
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefactor._cli", *command],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PREFACTOR_API_TOKEN": TOKEN},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    banner = [proc.stdout.readline()]
    while banner[-1] and not banner[-1].startswith("  viewer: "):
        banner.append(proc.stdout.readline())
    return proc, banner


@pytest.mark.slow
def test_prefactor_serve_prints_a_sign_in_link_whose_code_the_server_never_sees(
    tmp_path: Path,
) -> None:
    proc, banner = _serve(tmp_path)
    try:
        url = banner[0].split("listening on ", 1)[1].strip()
        page, _, fragment = banner[-1].removeprefix("  viewer: ").strip().partition("#")
        assert page == f"{url}/signin" and fragment.startswith("code=")
        assert TOKEN not in "".join(banner)
        with httpx.Client(base_url=url) as browser:
            assert browser.get(page).status_code == 200  # what a browser requests: no code
            signed = browser.post("/signin", data={"code": fragment.removeprefix("code=")})
            assert signed.status_code == 303
            assert 'data-page="runs"' in browser.get("/").text
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.slow
def test_with_several_workers_the_token_signs_in_and_every_worker_takes_the_session(
    tmp_path: Path,
) -> None:
    proc, banner = _serve(tmp_path, "--workers", "2")
    try:
        url = banner[0].split("listening on ", 1)[1].strip()
        assert banner[-1].strip() == f"viewer: {url}/signin (with the token)"
        with httpx.Client(base_url=url) as browser:
            assert browser.post("/signin", data={"token": TOKEN}).status_code == 303
            cookie = browser.cookies["prefactor_session"]
        # New connections land on either worker; the session's signature holds on both.
        answers = [
            httpx.get(f"{url}/", cookies={"prefactor_session": cookie}).status_code
            for _ in range(8)
        ]
        assert answers == [200] * 8
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
