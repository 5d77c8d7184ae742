"""Retry policy without transport: how often and how long to wait, per failure kind.

The policy values and the retry loop of one download range or upload part
(:func:`body_retrying`), used by the core; the transport's own retries
(:class:`~ghga_connector.adapters.retry.RetryTransport`) build on the same
:class:`RetryPolicy`. Which layer retries what is described in
:mod:`ghga_connector.adapters.retry` and in ``docs/architecture.md`` ("Retries").
"""

from __future__ import annotations

import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

__all__ = [
    "BODY_ATTEMPTS",
    "STAGING_WAIT_DEFAULT",
    "STAGING_WAIT_RANGE",
    "RetryNotice",
    "RetryPolicy",
    "RetryStats",
    "Sleep",
    "body_retrying",
    "parse_retry_after",
    "staging_wait",
]

#: Attempts per range or part whose body broke off or failed its check (MAC, ETag).
BODY_ATTEMPTS = 5
#: Smallest and largest wait in seconds honoured from a 202's ``Retry-After``.
STAGING_WAIT_RANGE = (1.0, 300.0)
#: Wait in seconds after a 202 without a usable ``Retry-After``.
STAGING_WAIT_DEFAULT = 5.0

Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True)
class RetryNotice:
    """A request is about to be sent again.

    ``request``: method, host and path (never the query, which may hold a presigned
    URL's signature); ``attempt`` of ``attempts`` is the attempt that comes next;
    ``reason``: the status code or the network error's name; ``wait``: seconds until then.
    """

    request: str
    attempt: int
    attempts: int
    reason: str
    wait: float

    def text(self) -> str:
        """One line for the user: what is retried, why, and attempt k of n."""
        return (
            f"Retrying {self.request} ({self.reason}) in {self.wait:.0f} s: "
            f"attempt {self.attempt} of {self.attempts}"
        )


@dataclass
class RetryStats:
    """Counts of retried requests in this run, by reason (status code or error name).

    ``listener`` (if set) hears of every retry as it is scheduled (the CLI shows it).
    """

    by_reason: dict[str, int] = field(default_factory=dict)
    listener: Callable[[RetryNotice], None] | None = None

    def add(self, reason: str, notice: RetryNotice | None = None) -> None:
        """Count one retry; pass ``notice`` on to the listener."""
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if notice is not None and self.listener is not None:
            self.listener(notice)

    @property
    def total(self) -> int:
        """All retries."""
        return sum(self.by_reason.values())


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, how often, and how long to wait (seconds)."""

    attempts: int = 5
    backoff_max: float = 60.0
    jitter: float = 0.0
    status_codes: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})
    base_delay: float = 1.0

    def backoff(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1``: 1, 2, 4 ... seconds, capped, plus jitter.

        The jitter is up to 10 % of the delay plus up to ``jitter`` seconds, so that
        parallel parts that failed together do not retry in lockstep.
        """
        delay = min(self.base_delay * 2.0 ** (attempt - 1), self.backoff_max)
        return delay + random.uniform(0, 0.1 * delay + self.jitter)  # noqa: S311


def parse_retry_after(value: str | None, *, low: float, high: float) -> float | None:
    """A ``Retry-After`` header (delta seconds or HTTP date) in seconds within ``[low, high]``.

    Returns ``None`` for a missing, unparsable, ``nan`` or infinite value.
    """
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, low), high)


def staging_wait(value: str | None) -> float:
    """Seconds to wait after a DCS 202 with ``Retry-After: value`` (contract §3.4)."""
    low, high = STAGING_WAIT_RANGE
    seconds = parse_retry_after(value, low=low, high=high)
    return STAGING_WAIT_DEFAULT if seconds is None else seconds


def body_retrying(
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...],
    *,
    no_wait: tuple[type[BaseException], ...] = (),
    attempts: int = BODY_ATTEMPTS,
    sleep: Sleep | None = None,
) -> AsyncRetrying:
    """The retry loop of one range or part: ``attempts`` tries on ``retry_on`` errors.

    Errors in ``no_wait`` (an expired URL that was just renewed) are retried at once;
    the others after the policy's backoff. The last error is re-raised.
    """

    def wait(state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and isinstance(outcome.exception(), no_wait):
            return 0.0
        return policy.backoff(state.attempt_number)

    kwargs: dict[str, Any] = {"sleep": sleep} if sleep is not None else {}
    return AsyncRetrying(
        stop=stop_after_attempt(attempts),
        wait=wait,
        retry=retry_if_exception_type(retry_on),
        reraise=True,
        **kwargs,
    )
