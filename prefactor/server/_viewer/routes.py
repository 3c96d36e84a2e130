"""The web viewer's routes: runs, a run and its spans, schemas, signing in and out.

Pages are rendered on the server with Jinja2 (autoescaped, so a payload that
holds markup shows as text); ``static/viewer.js`` polls fragments of them for
live updates and loads a span's details without a reload. Like the API's
routes, each one reads the store and renders in a worker thread, so a large
run never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import jinja2
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from prefactor._version import __version__
from prefactor.server._store_views import COUNT_CAP, INSTANCE_STATUSES
from prefactor.server._viewer.gate import SESSION_SCOPE_KEY, SessionGate, local_path
from prefactor.server._viewer.present import (
    TERMINAL_RUN,
    WINDOWS,
    decode_position,
    json_tree,
    parse_filter,
    pretty_json,
    run_duration,
    schema_fields,
    short_time,
    span_detail,
    waterfall,
)
from prefactor.server._viewer.session import SESSION_COOKIE, SESSION_SECONDS, SignIn, same_origin
from prefactor.server.store import ApiProblem, Store
from prefactor.server.store_common import now_iso, store_time

__all__ = ["add_viewer"]

_HERE = Path(__file__).parent
PAGE_SIZE = 50
MAX_WATERFALL_SPANS = 10_000
_FORM_LIMIT = 16 * 1024
_REASON_LIMIT = 500


class _Views:
    """Renders each page from the store; every method runs in a worker thread."""

    def __init__(self, store: Store, sign_in: SignIn) -> None:
        self.store = store
        self.sign_in = sign_in
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_HERE / "templates"),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.globals.update(
            version=__version__,
            count_cap=COUNT_CAP,
            short_time=short_time,
            run_duration=run_duration,
            pretty=pretty_json,
            schema_fields=schema_fields,
            schema_tree=lambda schema: json_tree(schema, open_depth=1),
        )
        # A <select> option whose label is its value.
        self.env.filters["pair"] = lambda value: (value, value)

    def html(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        nonce = request.scope.get(SESSION_SCOPE_KEY)
        context.setdefault("signed_in", nonce is not None)
        context.setdefault("csrf", self.sign_in.csrf_token(nonce) if nonce else "")
        context.setdefault("page_name", name.removesuffix(".html").lstrip("_"))
        return HTMLResponse(self.env.get_template(name).render(context), status)

    def not_found(self, request: Request, message: str) -> HTMLResponse:
        return self.message(request, 404, "Not found", message)

    def message(self, request: Request, status: int, heading: str, text: str) -> HTMLResponse:
        return self.html(
            request, "message.html", status, heading=heading, message=text, page_name="message"
        )

    def runs(self, request: Request, *, fragment: bool) -> HTMLResponse:
        query = request.query_params
        now = datetime.now(UTC)
        run_filter, form = parse_filter(query, now)
        before, after = decode_position(query.get("before")), decode_position(query.get("after"))
        page = self.store.run_page(run_filter, before=before, after=after, limit=PAGE_SIZE)

        def link(path: str, **extra: str) -> str:
            params = form.query(**extra)
            return f"{path}?{urlencode(params)}" if params else path

        context: dict[str, Any] = {
            "page": page,
            "form": form,
            "now": store_time(now),
            "live_url": link("/runs/rows") if page.newer is None else "",
            "newest_url": link("/"),
            "newer_url": link("/", after=str(page.newer)) if page.newer is not None else "",
            "older_url": link("/", before=str(page.older)) if page.older is not None else "",
        }
        if fragment:
            return self.html(request, "_runs_table.html", **context)
        return self.html(
            request,
            "runs.html",
            agents=self.store.agent_ids(),
            statuses=INSTANCE_STATUSES,
            windows=[(key, label) for key, (label, _) in WINDOWS.items()],
            **context,
        )

    def run(
        self,
        request: Request,
        run_id: str,
        *,
        live: bool = False,
        notice: str = "",
        status: int = 200,
    ) -> HTMLResponse:
        run = self.store.run(run_id)
        if run is None:
            return self.not_found(request, f"There is no run {run_id!r} in this store.")
        now = now_iso()
        lines = self.store.span_lines(run_id, MAX_WATERFALL_SPANS)
        chart = waterfall(run, lines, now)
        selected = request.query_params.get("span")
        if selected not in {line.id for line in lines}:
            selected = chart.rows[0].span.id if chart.rows else None
        context: dict[str, Any] = {
            "run": run,
            "wf": chart,
            "selected": selected,
            "final": run.status in TERMINAL_RUN,
            "truncated": run.spans > len(lines),
            "now": now,
        }
        if live:
            return self.html(request, "_run_live.html", **context)
        span = self.store.span_of_run(run_id, selected) if selected else None
        detail = span_detail(span, now) if span is not None else None
        return self.html(request, "run.html", status, detail=detail, notice=notice, **context)

    def span(self, request: Request, run_id: str, span_id: str) -> HTMLResponse:
        span = self.store.span_of_run(run_id, span_id)
        if span is None:
            return self.not_found(request, f"Run {run_id!r} has no span {span_id!r}.")
        return self.html(
            request, "_span.html", detail=span_detail(span, now_iso()), page_name="run"
        )

    def terminate(self, request: Request, run_id: str, reason: str) -> Response:
        if not reason:
            return self.run(
                request, run_id, notice="Give a reason to terminate the run.", status=422
            )
        try:
            self.store.terminate_instance(run_id, {"reason": reason})
        except ApiProblem as problem:
            if problem.status == 404:
                return self.not_found(request, f"There is no run {run_id!r} in this store.")
            return self.run(
                request, run_id, notice=f"Not terminated: {problem.message}.", status=409
            )
        return RedirectResponse(f"/runs/{run_id}", 303)

    def schemas(self, request: Request) -> HTMLResponse:
        agents = self.store.agent_ids()
        chosen = request.query_params.get("agent", "")
        versions = self.store.schema_catalog(chosen or None)
        return self.html(
            request, "schemas.html", agents=agents, chosen_agent=chosen, versions=versions
        )


async def _form(request: Request) -> dict[str, str]:
    """A small urlencoded form body; empty when it is anything else or too large."""
    declared = request.headers.get("content-length", "")
    content_type = request.headers.get("content-type", "")
    if not declared.isdigit() or int(declared) > _FORM_LIMIT:
        return {}
    if not content_type.startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > _FORM_LIMIT:
        return {}
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in fields.items()}


def add_viewer(app: FastAPI, store: Store, *, token: str) -> SignIn:
    """Serve the web viewer over ``store`` at ``/``, signed in through ``token``.

    Returns:
        The sign-in state, which issues the one-time links ``prefactor serve`` prints.
    """
    sign_in = SignIn(token)
    views = _Views(store, sign_in)
    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="viewer-static")

    def page(path: str) -> Callable[[Callable[..., Any]], Any]:
        return app.get(path, response_class=HTMLResponse, include_in_schema=False)

    def form_post(path: str) -> Callable[[Callable[..., Any]], Any]:
        return app.post(path, response_class=HTMLResponse, include_in_schema=False)

    def session(request: Request) -> str | None:
        nonce: str | None = request.scope.get(SESSION_SCOPE_KEY)
        return nonce

    def refused(request: Request, message: str) -> HTMLResponse:
        return views.message(request, 403, "Refused", message)

    @page("/")
    async def runs(request: Request) -> Response:
        return await run_in_threadpool(views.runs, request, fragment=False)

    @page("/runs/rows")
    async def runs_rows(request: Request) -> Response:
        return await run_in_threadpool(views.runs, request, fragment=True)

    @page("/runs/{run_id}")
    async def run(request: Request, run_id: str) -> Response:
        return await run_in_threadpool(views.run, request, run_id)

    @page("/runs/{run_id}/live")
    async def run_live(request: Request, run_id: str) -> Response:
        return await run_in_threadpool(views.run, request, run_id, live=True)

    @page("/runs/{run_id}/spans/{span_id}")
    async def span(request: Request, run_id: str, span_id: str) -> Response:
        return await run_in_threadpool(views.span, request, run_id, span_id)

    @form_post("/runs/{run_id}/terminate")
    async def terminate(request: Request, run_id: str) -> Response:
        fields = await _form(request)
        nonce = session(request)
        if (
            nonce is None
            or not same_origin(request.headers, request.url.scheme)
            or not sign_in.csrf_matches(nonce, fields.get("csrf", ""))
        ):
            return refused(request, "This form came from elsewhere or is out of date: reload.")
        reason = fields.get("reason", "").strip()[:_REASON_LIMIT]
        return await run_in_threadpool(views.terminate, request, run_id, reason)

    @page("/schemas")
    async def schemas(request: Request) -> Response:
        return await run_in_threadpool(views.schemas, request)

    @page("/signin")
    async def signin_page(request: Request) -> Response:
        back = local_path(request.query_params.get("next"))
        if session(request) is not None:
            return RedirectResponse(back, 303)
        return views.html(request, "signin.html", error="", next_path=back)

    @form_post("/signin")
    async def signin(request: Request) -> Response:
        if not same_origin(request.headers, request.url.scheme):
            return views.html(
                request, "signin.html", 403, error="Sign in from this page.", next_path="/"
            )
        fields = await _form(request)
        code, given = fields.get("code", ""), fields.get("token", "")
        back = local_path(fields.get("next"))
        if not ((code and sign_in.redeem_code(code)) or (given and sign_in.token_matches(given))):
            error = (
                "This sign-in link was used already or is not valid: enter the API token."
                if code
                else "That is not this server's API token."
            )
            return views.html(request, "signin.html", 401, error=error, next_path=back)
        answer = RedirectResponse(back, 303)
        answer.set_cookie(
            SESSION_COOKIE,
            sign_in.new_session(),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return answer

    @form_post("/signout")
    async def signout(request: Request) -> Response:
        if not same_origin(request.headers, request.url.scheme):
            return refused(request, "Sign out from the viewer's own page.")
        answer = RedirectResponse("/signin", 303)
        answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return answer

    app.add_middleware(SessionGate, sign_in=sign_in)
    return sign_in
