"""Building blocks of the store: the API problem, JSON, times, request parsing.

Times are stored as fixed-width ISO strings in UTC with microseconds and a
``Z`` (``2026-02-09T00:00:00.000000Z``), so string order is time order.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from prefactor._errors import PrefactorError
from prefactor._records import iso_from_ns

__all__ = [
    "ApiProblem",
    "dumps",
    "fingerprint",
    "idempotency_conflict",
    "loads",
    "now_iso",
    "pagination",
    "parse",
    "path_key",
    "store_time",
]

M = TypeVar("M", bound=BaseModel)

# The empty hasher every fingerprint starts from (16-byte BLAKE2b; stored digests use it).
_FINGERPRINT = hashlib.blake2b(digest_size=16)


class ApiProblem(PrefactorError):
    """An API error answer: HTTP status, machine code, message and optional field errors."""

    def __init__(
        self, status: int, code: str, message: str, errors: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors

    def to_body(self) -> dict[str, Any]:
        """The error envelope."""
        body: dict[str, Any] = {"status": "error", "code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body

    def __repr__(self) -> str:
        return f"ApiProblem({self.status}, {self.code!r}, {self.message!r})"


loads = orjson.loads


def dumps(value: Any) -> str:
    """Compact JSON text of ``value``.

    Raises:
        ApiProblem: 422 when ``value`` holds something JSON cannot carry (the in-process
            sink may hand the store arbitrary Python objects).
    """
    try:
        return orjson.dumps(value).decode()
    except TypeError as exc:
        raise ApiProblem(422, "validation_error", f"not JSON-serialisable: {exc}") from None


def idempotency_conflict(key: str) -> ApiProblem:
    """The 409 answer for a key replayed with a different request."""
    return ApiProblem(
        409,
        "idempotency_conflict",
        f"idempotency_key {key!r} was already used with a different request",
    )


def store_time(moment: datetime) -> str:
    """An aware datetime as the store's ISO string."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def now_iso() -> str:
    """Now, as the store's ISO string (the SDK's fixed-width form, with ``Z``)."""
    return iso_from_ns(time.time_ns())[:26] + "Z"


def path_key(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a request path: ``details.payload[0].x``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


def parse(model: type[M], body: Any, prefix: tuple[str, ...] = ()) -> M:
    """Validate ``body`` against ``model``.

    Raises:
        ApiProblem: 422 ``validation_error`` whose ``errors`` maps each failing path to
            its messages.
    """
    if not isinstance(body, dict):
        raise ApiProblem(
            422,
            "validation_error",
            "The request body must be a JSON object",
            {"body": ["must be a JSON object"]},
        )
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        errors: dict[str, list[str]] = {}
        for err in exc.errors(include_url=False, include_input=False):
            errors.setdefault(path_key(prefix + tuple(err["loc"])), []).append(err["msg"])
        raise ApiProblem(422, "validation_error", "The request is invalid", errors) from None


def fingerprint(scope: str, target: str | None, body: dict[str, Any]) -> str:
    """A digest of what an idempotent request asks for (its key excluded)."""
    try:
        text = orjson.dumps([scope, target, body], option=orjson.OPT_SORT_KEYS)
    except TypeError as exc:
        raise ApiProblem(422, "validation_error", f"not JSON-serialisable: {exc}") from None
    digest = _FINGERPRINT.copy()  # copying a hasher skips parsing its parameters
    digest.update(text)
    return digest.hexdigest()


def pagination(offset: int, page_size: int, total: int, returned: int) -> dict[str, Any]:
    """The contract's PaginationOutput for one page."""
    return {
        "item_count": total,
        "item_start": offset + 1 if returned else 0,
        "item_end": offset + returned,
        "next_page_offset": offset + page_size if offset + page_size < total else None,
        "previous_page_offset": max(0, offset - page_size) if offset > 0 else None,
        "page_count": -(-total // page_size),
        "page_index": offset // page_size + 1,
        "page_offset": offset,
        "page_size": page_size,
    }
