"""The viewer's door: which paths are the viewer's, who may open them, what headers they carry.

The API's bearer check lets the viewer's paths through (the API's routes are
all elsewhere); this middleware then asks those requests for a session
cookie instead, and answers a request without one by sending the browser to
the sign-in page, before any route reads the store.
"""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse, RedirectResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prefactor.server._viewer.session import SESSION_COOKIE, SignIn

__all__ = ["SESSION_SCOPE_KEY", "SessionGate", "is_viewer_path", "local_path"]

SESSION_SCOPE_KEY = "prefactor.viewer_session"
_SEGMENTS = frozenset({"", "runs", "schemas", "signin", "signout", "static"})
_OPEN_PATHS = frozenset({"/signin", "/signout"})
_HEADERS = {
    # Only the package's own files: no other host, no inline script or style.
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
}


def is_viewer_path(path: str) -> bool:
    """Whether ``path`` is the viewer's: ``/``, ``/runs...``, ``/schemas``, sign-in, assets."""
    return path.startswith("/") and path.split("/", 2)[1] in _SEGMENTS


def local_path(target: str | None) -> str:
    """``target`` if it is a path on this server (where to go after signing in), else ``/``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _is_open(path: str) -> bool:
    return path in _OPEN_PATHS or path.startswith("/static/")


class SessionGate:
    """Asks the viewer's requests for a valid session; adds the viewer's security headers.

    Args:
        app: the application behind it.
        sign_in: checks session cookies.
    """

    def __init__(self, app: ASGIApp, sign_in: SignIn) -> None:
        self._app = app
        self._sign_in = sign_in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not is_viewer_path(scope["path"]):
            await self._app(scope, receive, send)
            return
        path = scope["path"]
        data_page = not path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers.setdefault(name, value)
                if data_page:
                    headers["cache-control"] = "no-store"
            await send(message)

        nonce = self._sign_in.session_nonce(HTTPConnection(scope).cookies.get(SESSION_COOKIE))
        if nonce is None and not _is_open(path):
            if scope["method"] in ("GET", "HEAD"):
                back = path + (
                    f"?{scope['query_string'].decode('latin-1')}" if scope["query_string"] else ""
                )
                answer: PlainTextResponse | RedirectResponse = RedirectResponse(
                    "/signin" if back == "/" else f"/signin?{urlencode({'next': back})}", 303
                )
            else:
                answer = PlainTextResponse("Sign in first.", 401)
            await answer(scope, receive, send_with_headers)
            return
        scope[SESSION_SCOPE_KEY] = nonce
        await self._app(scope, receive, send_with_headers)
