"""Small helpers of the exporter: backoff delays and a rate-limited logger."""

from __future__ import annotations

import logging
import random
import time

__all__ = ["RateLimitedLog", "backoff_delay"]


def backoff_delay(retry: int, base: float, cap: float, retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``retry`` (0-based).

    Exponential (``base * 2**retry``) capped at ``cap``, times a jitter drawn
    from U(0.5, 1.0) so that many clients recovering together spread out. A
    server's ``Retry-After`` is a floor, and ``cap`` still bounds it: a long
    wait would only fill the queue and hold up ``flush``.
    """
    delay = min(base * (2.0**retry), cap) * random.uniform(0.5, 1.0)
    if retry_after is not None and retry_after > delay:
        delay = min(retry_after, cap)
    return delay


class RateLimitedLog:
    """Logs at most ``burst`` messages per ``interval`` seconds; counts the rest.

    The first message after a quiet spell says how many were suppressed, so a
    flood of identical rejections costs a few lines, not thousands.
    """

    def __init__(self, logger: logging.Logger, burst: int = 10, interval: float = 60.0) -> None:
        self._logger = logger
        self._burst = burst
        self._interval = interval
        self._window_start = -interval
        self._in_window = 0
        self._suppressed = 0

    def log(
        self, level: int, msg: str, *args: object, exc_info: BaseException | None = None
    ) -> None:
        """Log ``msg % args`` (with ``exc_info``) at ``level`` unless the budget is spent."""
        now = time.monotonic()
        if now - self._window_start >= self._interval:
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self._burst:
            self._suppressed += 1
            return
        self._in_window += 1
        if self._suppressed:
            msg += " (%d similar messages suppressed)"
            args = (*args, self._suppressed)
            self._suppressed = 0
        self._logger.log(level, msg, *args, exc_info=exc_info)
