"""The one shared HTTP client: connection pool, timeouts, retries, request ids.

Retries live here and only here, as a transport layer (tenacity): network errors,
timeouts and the configured status codes (408, 429, 5xx by default) are retried with
exponential backoff and jitter, honouring ``Retry-After``. A request marked with
``extensions={"ghga_retry": False}`` is sent once (used for non-idempotent calls such
as creating an upload, which the uploader checks and repeats itself).
"""

from __future__ import annotations

import logging
import random
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
)

from ghga_connector.adapters.network import pooled_transport
from ghga_connector.config import Config
from ghga_connector.errors import ServerResponseError

__all__ = [
    "MAX_API_BODY",
    "BoundedResponseTransport",
    "RetryPolicy",
    "RetryStats",
    "RetryTransport",
    "make_http_client",
]

_LOG = logging.getLogger("ghga_connector.http")

#: The longest ``Retry-After`` that is honoured, in seconds.
MAX_RETRY_AFTER = 300.0
USER_AGENT_PREFIX = "ghga-connector"


@dataclass
class RetryStats:
    """Counts of retried requests in this run, by reason (status code or error name)."""

    by_reason: dict[str, int] = field(default_factory=dict)

    def add(self, reason: str) -> None:
        """Count one retry."""
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1

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


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class RetryTransport(httpx.AsyncBaseTransport):
    """Wraps a transport and retries failed attempts according to a :class:`RetryPolicy`."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        policy: RetryPolicy,
        stats: RetryStats | None = None,
        sleep: Callable[[float], Any] | None = None,
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
                after = _retry_after(response)
                if after is not None:
                    return after
        return self._policy.backoff(state.attempt_number)

    async def _before_sleep(self, state: RetryCallState) -> None:
        outcome = state.outcome
        if outcome is None:
            return
        if outcome.failed:
            self.stats.add(type(outcome.exception()).__name__)
            return
        response = outcome.result()
        self.stats.add(str(response.status_code))
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

        async def attempt() -> httpx.Response:
            request.headers["X-Request-Id"] = str(uuid.uuid4())
            return await self._inner.handle_async_request(request)

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
            before_sleep=self._before_sleep,
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
            reraise=True,
            **kwargs,
        )
        response: httpx.Response = await retrying(attempt)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


#: Largest body accepted from a GHGA service (JSON), in bytes; object data is streamed
#: into fixed buffers by the S3 adapter and is exempt (``extensions={"ghga_stream": True}``).
MAX_API_BODY = 4 * 1024 * 1024


class _BoundedStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, limit: int, host: str) -> None:
        self._inner = inner
        self._limit = limit
        self._host = host

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        async for chunk in self._inner:
            received += len(chunk)
            if received > self._limit:
                raise ServerResponseError(
                    f"The server at {self._host} sent an answer larger than {self._limit} bytes; "
                    "refusing it."
                )
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()


class BoundedResponseTransport(httpx.AsyncBaseTransport):
    """Refuses response bodies over ``limit`` bytes (memory safety against bad servers).

    Requests marked ``extensions={"ghga_stream": True}`` are exempt.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport, limit: int = MAX_API_BODY) -> None:
        self._inner = inner
        self._limit = limit

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request; wrap the response body in a size check."""
        response = await self._inner.handle_async_request(request)
        if request.extensions.get("ghga_stream"):
            return response
        length = response.headers.get("Content-Length")
        host = f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}"
        if length is not None and length.isdigit() and int(length) > self._limit:
            await response.aclose()
            raise ServerResponseError(
                f"The server at {host} announced an answer of {length} bytes; refusing it."
            )
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _BoundedStream(response.stream, self._limit, host)
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


class LoggingTransport(httpx.AsyncBaseTransport):
    """Logs each attempt at DEBUG level (``--debug``): method, host and path, status, time.

    Query strings (presigned URL signatures) and headers (tokens) are never logged.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request and log the outcome."""
        if not _LOG.isEnabledFor(logging.DEBUG):
            return await self._inner.handle_async_request(request)
        started = time()
        where = f"{request.url.scheme}://{request.url.netloc.decode('ascii', 'replace')}{request.url.path}"
        try:
            response = await self._inner.handle_async_request(request)
        except httpx.TransportError as error:
            _LOG.debug(
                "%s %s -> %s after %.3f s",
                request.method,
                where,
                type(error).__name__,
                time() - started,
            )
            raise
        _LOG.debug(
            "%s %s -> %d in %.3f s (request id %s)",
            request.method,
            where,
            response.status_code,
            time() - started,
            request.headers.get("X-Request-Id", "-"),
        )
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def make_http_client(
    config: Config,
    *,
    user_agent: str,
    stats: RetryStats | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int = 32,
) -> httpx.AsyncClient:
    """The run's one ``httpx.AsyncClient`` with the retry layer over ``transport``.

    ``transport`` defaults to a pooled ``httpx.AsyncHTTPTransport`` that verifies TLS
    (system trust store via ``SSL_CERT_FILE`` or certifi, plus ``config.ca_bundle``),
    receives in 1 MiB reads (:mod:`ghga_connector.adapters.network`) and honours the
    proxy environment variables. Tests pass ``httpx.MockTransport``.
    """
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    if transport is None:
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(config.ca_bundle))
        transport = pooled_transport(verify=verify, limits=limits)
    policy = RetryPolicy(
        attempts=config.client_num_retries,
        backoff_max=float(config.client_exponential_backoff_max),
        jitter=config.per_request_jitter,
        status_codes=frozenset(config.client_retry_status_codes),
    )
    return httpx.AsyncClient(
        transport=RetryTransport(
            BoundedResponseTransport(LoggingTransport(transport)), policy, stats
        ),
        timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=True,
    )
