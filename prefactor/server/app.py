"""The local Prefactor API over HTTP: a thin FastAPI layer over the store.

The store owns every rule; this layer only authenticates, reads bodies with a
size limit, and turns answers and problems into JSON. Parsing, the store call
and serialising run together in a worker thread, so a large bulk request never
stalls the event loop. Every error, including unknown routes, wrong methods,
malformed JSON and oversized bodies, uses the contract's error envelope.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from prefactor._api.models import (
    BulkRequest,
    CreateSpanRequest,
    FinishInstanceRequest,
    FinishSpanRequest,
    RecordQualityRequest,
    RegisterInstanceRequest,
    StartInstanceRequest,
    TerminateInstanceRequest,
)
from prefactor.server import openapi
from prefactor.server._viewer import add_viewer, is_viewer_path
from prefactor.server.otlp import OtlpIngest, answer_export
from prefactor.server.store import ApiProblem, Store

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "MIN_TOKEN_LENGTH",
    "check_token",
    "create_app",
    "wants_minimal",
]

DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
MIN_TOKEN_LENGTH = 16
_log = logging.getLogger(__name__)
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


def _json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=headers,
    )


def _problem_response(problem: ApiProblem) -> Response:
    return _json_response(problem.status, problem.to_body())


class _BearerAuth:
    """Answers 401 before routing unless the request carries the bearer token.

    Paths for which ``exempt`` is true pass unchecked: the web viewer's, which
    ask for a session cookie instead.
    """

    def __init__(self, app: ASGIApp, token: str, exempt: Callable[[str], bool]) -> None:
        self._app = app
        self._expected = f"Bearer {token}".encode()
        self._exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._exempt(scope["path"]):
            await self._app(scope, receive, send)
            return
        given = b""
        for name, value in scope["headers"]:
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self._expected):
            problem = ApiProblem(401, "unauthorized", "Missing or invalid bearer token")
            await _problem_response(problem)(scope, receive, send)
            return
        await self._app(scope, receive, send)


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiProblem(413, "payload_too_large", f"The body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:  # a chunked body without a length: stop reading at the limit
            raise ApiProblem(413, "payload_too_large", f"The body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return {}
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ApiProblem(400, "invalid_json", f"The body is not valid JSON: {exc}") from None


def _query_int(request: Request, name: str, default: int) -> int:
    text = request.query_params.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ApiProblem(
            422, "validation_error", f"{name} must be an integer", {name: ["must be an integer"]}
        ) from None


def wants_minimal(prefer: list[str]) -> bool:
    """Whether ``Prefer`` header values (RFC 7240) ask for ``return=minimal``."""
    for header in prefer:
        for preference in header.split(","):
            name, _, value = preference.split(";", 1)[0].partition("=")
            if name.strip().lower() == "return" and value.strip().strip('"') == "minimal":
                return True
    return False


def check_token(token: str) -> None:
    """Refuse a bearer token too short to resist guessing (the message never quotes it).

    Raises:
        ValueError: the token has fewer than :data:`MIN_TOKEN_LENGTH` characters.
    """
    if len(token) < MIN_TOKEN_LENGTH:
        raise ValueError(
            f"the API token must have at least {MIN_TOKEN_LENGTH} characters"
            f" (this one has {len(token)})"
        )


def create_app(
    store: Store,
    *,
    token: str,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    otlp: OtlpIngest | None = None,
) -> FastAPI:
    """Build the HTTP API over ``store``.

    Args:
        store: the store that answers every request.
        token: the bearer token every API request must carry, at least
            :data:`MIN_TOKEN_LENGTH` characters (the viewer's pages take a session
            cookie signed in with it instead).
        max_body_bytes: larger bodies are answered 413 without being read whole.
        otlp: the OTLP ingest behind ``POST /v1/traces`` (default: one over ``store``),
            flushed when the app shuts down.

    Raises:
        ValueError: the token is too short.
    """
    check_token(token)
    ingest = otlp if otlp is not None else OtlpIngest(store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        # OTLP spans still waiting for their parent are stored, not lost, when the server stops.
        await run_in_threadpool(ingest.flush)

    app = FastAPI(
        title="Prefactor local API",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        lifespan=lifespan,
    )
    bodies: list[type[BaseModel]] = [BulkRequest]

    async def run(func: Callable[[], Any]) -> Response:
        def call() -> bytes:
            return orjson.dumps(func())

        try:
            content = await run_in_threadpool(call)
        except ApiProblem as problem:
            return _problem_response(problem)
        return Response(content, media_type="application/json")

    async def with_body(request: Request, func: Callable[[Any], Any]) -> Response:
        try:
            raw = await _read_body(request, max_body_bytes)
        except ApiProblem as problem:
            return _problem_response(problem)
        return await run(lambda: func(_decode(raw)))

    def post(
        path: str, model: type[BaseModel]
    ) -> Callable[[Callable[..., Awaitable[Response]]], Any]:
        bodies.append(model)
        return app.post(path, response_class=Response, openapi_extra=openapi.body(model))

    def get(
        path: str, *params: tuple[str, str, bool]
    ) -> Callable[[Callable[..., Awaitable[Response]]], Any]:
        return app.get(path, response_class=Response, openapi_extra=openapi.query(*params))

    page = (("pagination[offset]", "integer", False), ("pagination[page_size]", "integer", False))

    @get("/api/v1/ping")
    async def ping() -> Response:
        return _json_response(200, {"status": "success"})

    @post("/api/v1/agent_instance/register", RegisterInstanceRequest)
    async def register(request: Request) -> Response:
        return await with_body(request, store.register_instance)

    @post("/api/v1/agent_instance/{instance_id}/start", StartInstanceRequest)
    async def start(instance_id: str, request: Request) -> Response:
        return await with_body(request, lambda b: store.start_instance(instance_id, b))

    @post("/api/v1/agent_instance/{instance_id}/finish", FinishInstanceRequest)
    async def finish(instance_id: str, request: Request) -> Response:
        return await with_body(request, lambda b: store.finish_instance(instance_id, b))

    @post("/api/v1/agent_instance/{instance_id}/record_quality", RecordQualityRequest)
    async def record_quality(instance_id: str, request: Request) -> Response:
        return await with_body(request, lambda b: store.record_quality(instance_id, b))

    @post("/api/v1/agent_instance/{instance_id}/terminate", TerminateInstanceRequest)
    async def terminate(instance_id: str, request: Request) -> Response:
        return await with_body(request, lambda b: store.terminate_instance(instance_id, b))

    @get("/api/v1/agent_instance/{instance_id}")
    async def get_instance(instance_id: str) -> Response:
        return await run(lambda: store.get_instance(instance_id))

    @get("/api/v1/agent_instance", ("agent_id", "string", False), *page)
    async def list_instances(request: Request) -> Response:
        try:
            offset = _query_int(request, "pagination[offset]", 0)
            size = _query_int(request, "pagination[page_size]", 50)
        except ApiProblem as problem:
            return _problem_response(problem)
        agent_id = request.query_params.get("agent_id") or None
        return await run(
            lambda: store.list_instances(agent_id=agent_id, offset=offset, page_size=size)
        )

    @post("/api/v1/agent_spans", CreateSpanRequest)
    async def create_span(request: Request) -> Response:
        return await with_body(request, store.create_span)

    @post("/api/v1/agent_spans/{span_id}/finish", FinishSpanRequest)
    async def finish_span(span_id: str, request: Request) -> Response:
        return await with_body(request, lambda b: store.finish_span(span_id, b))

    @get("/api/v1/agent_spans", ("agent_instance_id", "string", True), *page)
    async def list_spans(request: Request) -> Response:
        instance_id = request.query_params.get("agent_instance_id")
        try:
            if not instance_id:
                raise ApiProblem(
                    422,
                    "validation_error",
                    "agent_instance_id is required",
                    {"agent_instance_id": ["required"]},
                )
            offset = _query_int(request, "pagination[offset]", 0)
            size = _query_int(request, "pagination[page_size]", 1000)
        except ApiProblem as problem:
            return _problem_response(problem)
        return await run(
            lambda: store.list_spans(agent_instance_id=instance_id, offset=offset, page_size=size)
        )

    @app.post(
        "/api/v1/bulk",
        response_class=Response,
        openapi_extra={**openapi.body(BulkRequest), **openapi.prefer_header()},
    )
    async def bulk(request: Request) -> Response:
        minimal = wants_minimal(request.headers.getlist("prefer"))
        response = await with_body(request, lambda b: store.bulk(b, details=not minimal))
        if minimal and response.status_code == 200:
            response.headers["Preference-Applied"] = "return=minimal"
        return response

    # --- OTLP ingest: OpenTelemetry traces (prefactor.server.otlp) ---------------------------
    @app.post("/v1/traces", response_class=Response, openapi_extra=openapi.otlp_traces())
    async def otlp_traces(request: Request) -> Response:
        try:
            raw = await _read_body(request, max_body_bytes)
        except ApiProblem as problem:
            return _problem_response(problem)
        status, content, media = await run_in_threadpool(
            lambda: answer_export(
                ingest,
                raw,
                content_type=request.headers.get("content-type", ""),
                content_encoding=request.headers.get("content-encoding", ""),
                max_bytes=max_body_bytes,
            )
        )
        return Response(content, status_code=status, media_type=media)

    # --- errors ------------------------------------------------------------------------------

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = "No such route" if exc.status_code == 404 else str(exc.detail)
        body = {"status": "error", "code": code, "message": message}
        return _json_response(exc.status_code, body, dict(exc.headers or {}))

    async def internal_error(request: Request, exc: Exception) -> Response:
        _log.error(
            "unexpected error answering %s %s", request.method, request.url.path, exc_info=exc
        )
        body = {"status": "error", "code": "internal_error", "message": "Internal server error"}
        return _json_response(500, body)

    described = openapi.document(app, bodies)
    app.openapi = lambda: described  # type: ignore[method-assign]
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, internal_error)
    # The web viewer: its pages at / with session sign-in (serve prints its link).
    app.state.sign_in = add_viewer(app, store, token=token)
    app.add_middleware(_BearerAuth, token=token, exempt=is_viewer_path)
    return app
