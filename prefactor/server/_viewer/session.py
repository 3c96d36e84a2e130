"""Signing in to the web viewer without the token leaving the sign-in request.

A browser cannot send a bearer header when it navigates, so the viewer's
pages use a session cookie, and the API keeps accepting bearer tokens only:

* ``prefactor serve`` prints a sign-in link ``/signin#code=...``. The code is
  random and good for one sign-in. It rides in the URL's fragment, which a
  browser never sends to a server, so it reaches no access log, proxy or
  ``Referer``; the sign-in page's script posts it in a request body and
  removes it from the address bar and the history.
* The sign-in page also takes the API token in a password field, posted in
  the body, for another browser or once the link was used.
* Either answers with a cookie ``HttpOnly; SameSite=Strict; Path=/``
  (``Secure`` over HTTPS): no script reads it and no request started by
  another site carries it. Its value is an expiry and a random nonce signed
  with HMAC-SHA256 under a key derived from the token, so every server
  process holding the token can check it, a restart keeps sessions, and a new
  token ends them all.
* A form that changes anything must come from the viewer's own origin
  (``Sec-Fetch-Site`` / ``Origin``); terminating a run also needs a CSRF token
  derived from the session.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping

__all__ = ["SESSION_COOKIE", "SESSION_SECONDS", "SignIn", "same_origin"]

SESSION_COOKIE = "prefactor_session"
SESSION_SECONDS = 12 * 60 * 60
_CODE_BYTES = 24
_MAX_UNUSED_CODES = 64


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class SignIn:
    """Sign-in codes, session cookies and CSRF tokens for one API token.

    Args:
        token: the server's API token; sessions are signed with a key derived from it.
        clock: seconds since the epoch (injectable for tests of expiry).
    """

    def __init__(self, token: str, *, clock: Callable[[], float] = time.time) -> None:
        self._token = _digest(token)
        self._key = hmac.new(token.encode(), b"prefactor viewer session 1", "sha256").digest()
        self._clock = clock
        self._codes: dict[bytes, None] = {}  # digests of the codes not used yet, oldest first
        self._lock = threading.Lock()

    def issue_code(self) -> str:
        """A new one-time sign-in code (the oldest unused ones lapse past a few dozen)."""
        code = secrets.token_urlsafe(_CODE_BYTES)
        with self._lock:
            if len(self._codes) >= _MAX_UNUSED_CODES:
                del self._codes[next(iter(self._codes))]
            self._codes[_digest(code)] = None
        return code

    def redeem_code(self, code: str) -> bool:
        """Whether ``code`` is an unused sign-in code; it is used up either way."""
        with self._lock:
            return self._codes.pop(_digest(code), False) is None

    def token_matches(self, given: str) -> bool:
        """Whether ``given`` is the API token (compared in constant time)."""
        return hmac.compare_digest(_digest(given), self._token)

    def new_session(self) -> str:
        """A signed session cookie value, valid for :data:`SESSION_SECONDS`."""
        body = f"{int(self._clock()) + SESSION_SECONDS}.{secrets.token_urlsafe(16)}"
        return f"{body}.{self._sign('session', body)}"

    def session_nonce(self, cookie: str | None) -> str | None:
        """The nonce of a valid, unexpired session cookie value; ``None`` otherwise."""
        if not cookie:
            return None
        body, _, signature = cookie.rpartition(".")
        expires, _, nonce = body.partition(".")
        if not (expires.isdigit() and nonce):
            return None
        if not hmac.compare_digest(signature, self._sign("session", body)):
            return None
        if int(expires) <= self._clock():
            return None
        return nonce

    def csrf_token(self, nonce: str) -> str:
        """The CSRF token of the session with ``nonce``, for the forms of its pages."""
        return self._sign("csrf", nonce)

    def csrf_matches(self, nonce: str, given: str) -> bool:
        """Whether ``given`` is the CSRF token of the session with ``nonce``."""
        return hmac.compare_digest(given, self.csrf_token(nonce))

    def _sign(self, purpose: str, text: str) -> str:
        return _b64(hmac.new(self._key, f"{purpose}:{text}".encode(), "sha256").digest())

    def __repr__(self) -> str:
        return "SignIn(<secret>)"


def same_origin(headers: Mapping[str, str], scheme: str) -> bool:
    """Whether a browser request came from the page's own origin.

    ``Sec-Fetch-Site`` decides when present; else ``Origin`` must name this
    host. A request with neither (not a browser's form post; curl, httpx) is
    let through: it cannot carry a victim's cookie.
    """
    site = headers.get("sec-fetch-site")
    if site is not None:
        return site == "same-origin"
    origin = headers.get("origin")
    if origin is None:
        return True
    return origin == f"{scheme}://{headers.get('host', '')}"
