"""Every retry of the connector, one layer per kind of failure (docs/architecture.md).

* :class:`RetryTransport` (every request): network errors and timeouts before or during
  a GHGA service answer, and the configured statuses (408, 429, 5xx):
  ``client_num_retries`` attempts in all, backoff 1, 2, 4 … s up to
  ``client_exponential_backoff_max`` plus jitter, ``Retry-After`` honoured (clamped).
* work order tokens and presigned URLs (services, uploader, downloader): a 401 gets a new
  work order token once; an S3 403 a new presigned URL, without waiting.
* :func:`body_retrying` (each download range, each upload part): an object body that
  broke off mid-way, a Crypt4GH MAC or an ETag that did not match:
  :data:`BODY_ATTEMPTS` attempts with the same backoff.

A failure is retried by exactly one layer: a range whose server cannot be reached fails
after the transport's attempts, it is not retried again by the range loop.

``Retry-After`` values (seconds or an HTTP date) are clamped: negative → 0, more than
the longest backoff → the longest backoff; ``nan``, ``inf`` and unparsable values are
ignored (normal backoff). A 202 (file being staged) is not an error; its ``Retry-After``
is clamped to :data:`STAGING_WAIT_RANGE` (default :data:`STAGING_WAIT_DEFAULT`).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from ghga_connector.retrying import (
    RetryNotice,
    RetryPolicy,
    RetryStats,
    Sleep,
    parse_retry_after,
)

__all__ = ["RetryTransport"]


class RetryTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and retries failed attempts according to a :class:`RetryPolicy`.

    The body of an answer that is not streamed (``extensions={"ghga_stream": True}``)
    is read inside the attempt, so a connection that drops mid-body is retried here
    (with backoff) like one that drops before the headers.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        stats: RetryStats | None = None,
        sleep: Sleep | None = None,
    ) -> None:
        self._inner = inner
        self._policy = policy
        self.stats = stats or RetryStats()
        self._sleep = sleep

    def _wait(self, state: RetryCallState) -> float:
        outcome = state.outcome
        if outcome is not None and not outcome.failed:
            response = outcome.result()
            if isinstance(response, httpx.Response):
                after = parse_retry_after(
                    response.headers.get("Retry-After"), low=0.0, high=self._policy.backoff_max
                )
                if after is not None:
                    return after
        return self._policy.backoff(state.attempt_number)

    def _notice(self, state: RetryCallState, request: httpx.Request, reason: str) -> RetryNotice:
        url = request.url
        wait = state.next_action.sleep if state.next_action is not None else 0.0
        return RetryNotice(
            request=f"{request.method} {url.host}{url.path}",
            attempt=state.attempt_number + 1,
            attempts=self._policy.attempts,
            reason=reason,
            wait=wait,
        )

    async def _before_sleep(self, state: RetryCallState, request: httpx.Request) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            reason = type(outcome.exception()).__name__
            self.stats.add(reason, self._notice(state, request, reason))
            return
        response = outcome.result()
        reason = str(response.status_code)
        self.stats.add(reason, self._notice(state, request, reason))
        await response.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``, retrying as the policy allows; return the last response.

        Raises:
            httpx.TransportError: if the last attempt failed on the network.
        """
        request.headers["X-Request-Id"] = str(uuid.uuid4())
        if request.extensions.get("ghga_retry") is False:
            return await self._inner.handle_async_request(request)
        codes = self._policy.status_codes
        streamed = bool(request.extensions.get("ghga_stream"))

        async def attempt() -> httpx.Response:
            request.headers["X-Request-Id"] = str(uuid.uuid4())
            response = await self._inner.handle_async_request(request)
            if not streamed:
                try:
                    await response.aread()
                except BaseException:
                    await response.aclose()
                    raise
            return response

        async def before_sleep(state: RetryCallState) -> None:
            await self._before_sleep(state, request)

        kwargs: dict[str, Any] = {}
        if self._sleep is not None:
            kwargs["sleep"] = self._sleep
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._policy.attempts),
            wait=self._wait,
            retry=(
                retry_if_exception_type(httpx.TransportError)
                | retry_if_result(lambda r: r.status_code in codes)
            ),
            before_sleep=before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
            reraise=True,
            **kwargs,
        )
        response: httpx.Response = await retrying(attempt)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()
