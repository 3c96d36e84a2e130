"""The API client's transport behaviour: retries, Retry-After, contract errors, secrecy.

Faults are simulated at the transport level with ``httpx.MockTransport``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from api_helpers import make_config

from prefactor._api.client import PrefactorApiClient, parse_retry_after
from prefactor._errors import (
    PrefactorApiError,
    PrefactorResponseContractError,
    PrefactorRetryExhaustedError,
    PrefactorValidationError,
)

SECRET = "sekrit-token-do-not-leak"
Handler = Callable[[httpx.Request], httpx.Response]


class Faults:
    """A scripted server: answers in order, then repeats the last; counts requests."""

    def __init__(self, *answers: httpx.Response | Exception) -> None:
        self.answers = list(answers)
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        if isinstance(answer, Exception):
            raise answer
        return answer


def error(status: int, code: str = "x", headers: dict[str, str] | None = None) -> httpx.Response:
    body = {"status": "error", "code": code, "message": f"failed {status}"}
    return httpx.Response(status, json=body, headers=headers)


OK = httpx.Response(200, json={"status": "success"})


def make_client(faults: Faults, delays: list[float], **config: object) -> PrefactorApiClient:
    async def record(seconds: float) -> None:
        delays.append(seconds)

    return PrefactorApiClient(
        make_config(SECRET, **config), transport=httpx.MockTransport(faults), sleep=record
    )


async def test_a_503_is_retried_until_success() -> None:
    faults, delays = Faults(error(503), error(503), OK), []
    async with make_client(faults, delays) as c:
        assert await c.ping() == {"status": "success"}
    assert (faults.calls, len(delays)) == (3, 2)


async def test_backoff_grows_by_the_multiplier_within_jitter() -> None:
    faults, delays = Faults(error(500), error(500), error(500), OK), []
    async with make_client(faults, delays, initial_retry_delay=0.1, max_retry_delay=10.0) as c:
        await c.ping()
    for delay, base in zip(delays, (0.1, 0.2, 0.4), strict=True):
        assert base * 0.75 <= delay <= base * 1.25


async def test_retry_after_seconds_sets_the_wait() -> None:
    faults, delays = Faults(error(429, headers={"Retry-After": "0.5"}), OK), []
    async with make_client(faults, delays, max_retry_delay=5.0) as c:
        await c.ping()
    assert delays == [0.5]


async def test_retry_after_is_capped_by_max_retry_delay() -> None:
    faults, delays = Faults(error(429, headers={"Retry-After": "120"}), OK), []
    async with make_client(faults, delays, max_retry_delay=2.0) as c:
        await c.ping()
    assert delays == [2.0]


def test_retry_after_reads_an_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    parsed = parse_retry_after(format_datetime(when, usegmt=True))
    assert parsed is not None and 25 <= parsed <= 31


@pytest.mark.parametrize("value", [None, "", "soon"])
def test_retry_after_that_says_nothing_is_none(value: str | None) -> None:
    assert parse_retry_after(value) is None


async def test_exhausted_retries_wrap_the_last_error() -> None:
    faults, delays = Faults(error(502)), []
    async with make_client(faults, delays, max_retries=2) as c:
        with pytest.raises(PrefactorRetryExhaustedError) as caught:
            await c.ping()
    assert faults.calls == 3
    last = caught.value.last_error
    assert isinstance(last, PrefactorApiError) and last.status_code == 502


async def test_with_max_retries_0_the_original_error_is_raised_with_retry_after() -> None:
    faults, delays = Faults(error(429, headers={"Retry-After": "7"})), []
    async with make_client(faults, delays, max_retries=0) as c:
        with pytest.raises(PrefactorApiError) as caught:
            await c.ping()
    assert (caught.value.status_code, caught.value.retry_after, faults.calls) == (429, 7.0, 1)


async def test_network_errors_are_retried() -> None:
    faults, delays = Faults(httpx.ConnectError("refused"), OK), []
    async with make_client(faults, delays) as c:
        assert await c.ping() == {"status": "success"}
    assert faults.calls == 2


async def test_with_max_retries_0_a_network_error_is_raised_as_is() -> None:
    faults, delays = Faults(httpx.ReadTimeout("slow")), []
    async with make_client(faults, delays, max_retries=0) as c:
        with pytest.raises(httpx.ReadTimeout):
            await c.ping()


async def test_a_422_is_not_retried() -> None:
    faults, delays = Faults(error(422, "validation_error")), []
    async with make_client(faults, delays) as c:
        with pytest.raises(PrefactorValidationError):
            await c.ping()
    assert faults.calls == 1


async def test_only_the_configured_statuses_are_retried() -> None:
    faults, delays = Faults(error(418), error(503), OK), []
    async with make_client(faults, delays, retry_on_status_codes=(418,)) as c:
        with pytest.raises(PrefactorApiError) as caught:
            await c.ping()
    assert (caught.value.status_code, faults.calls) == (503, 2)


async def test_an_error_without_a_json_body_still_raises_with_its_status() -> None:
    faults, delays = Faults(httpx.Response(400, text="<html>bad</html>")), []
    async with make_client(faults, delays) as c:
        with pytest.raises(PrefactorValidationError) as caught:
            await c.ping()
    assert (caught.value.code, caught.value.message) == ("unknown", "HTTP 400")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param(httpx.Response(200, text="not json"), id="not-json"),
        pytest.param(httpx.Response(200, json=[1]), id="not-an-object"),
        pytest.param(httpx.Response(200, json={"status": "success"}), id="missing-details"),
        pytest.param(
            httpx.Response(200, json={"status": "success", "details": {"id": "x"}}),
            id="missing-required-fields",
        ),
    ],
)
async def test_a_2xx_answer_off_the_contract_raises_a_contract_error(
    answer: httpx.Response,
) -> None:
    faults, delays = Faults(answer), []
    async with make_client(faults, delays) as c:
        with pytest.raises(PrefactorResponseContractError):
            await c.get_instance("x")
    assert faults.calls == 1


async def test_the_token_never_appears_in_reprs_errors_or_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults(
        error(401, "unauthorized"),
        error(503),
        error(503),
        error(503),
        httpx.Response(200, text="?"),
        httpx.ConnectError("down"),
    )
    raised: list[BaseException] = []
    async with make_client(faults, [], max_retries=2) as c:
        for _ in range(4):
            try:
                await c.get_instance("x")
            except Exception as exc:
                raised.append(exc)
        texts = [repr(c), repr(c.config), str(c.config)]
    texts += [f"{e!s} {e!r} {e.__cause__!r}" for e in raised]
    assert len(raised) == 4
    assert all(SECRET not in text for text in texts)
    assert SECRET not in caplog.text
