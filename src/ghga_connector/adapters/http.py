"""The one shared HTTP client: connection pool, proxies, timeouts, retries, request ids.

Request-level retries are :class:`~ghga_connector.adapters.retry.RetryTransport`
(tenacity; see :mod:`ghga_connector.adapters.retry` for which layer retries what). A
request marked with ``extensions={"ghga_retry": False}`` is sent once (used for
non-idempotent calls such as creating an upload, which the uploader checks and repeats
itself).

Proxies: the ``proxy`` setting, else ``HTTPS_PROXY`` / ``HTTP_PROXY`` (by the URL's
scheme), else ``ALL_PROXY``; hosts matching ``NO_PROXY`` (comma-separated names or
domain suffixes, ``*`` for all) are reached directly. This applies to the GHGA services
and to the object storage's presigned URLs alike. Direct and proxied connections read in
large chunks (:mod:`ghga_connector.adapters.network`).
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from time import time
from urllib.parse import SplitResult, urlsplit
from urllib.request import getproxies_environment

import httpx

from ghga_connector.adapters.network import pooled_transport, proxied_transport
from ghga_connector.adapters.receive import DirectRangeTransport
from ghga_connector.adapters.retry import RetryTransport
from ghga_connector.config import Config
from ghga_connector.errors import ConfigurationError, ServerResponseError, request_id_note
from ghga_connector.retrying import RetryPolicy, RetryStats, Sleep

__all__ = [
    "MAX_API_BODY",
    "BoundedResponseTransport",
    "ProxyRoutes",
    "ProxyRoutingTransport",
    "make_http_client",
    "no_proxy_matches",
    "proxy_routes",
    "retry_policy",
    "safe_proxy_url",
]

_LOG = logging.getLogger("ghga_connector.http")

USER_AGENT_PREFIX = "ghga-connector"


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
        """Send the request; wrap the response body in a size check.

        Raises:
            ServerResponseError: the answer announces more than ``limit`` bytes.
            httpx.TransportError: from the inner transport.
        """
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


def _shown_request_id(response: httpx.Response, request: httpx.Request) -> str:
    """The server's ``X-Request-Id`` (else the one sent), if it is safe to print."""
    request_id = response.headers.get("X-Request-Id") or request.headers.get("X-Request-Id")
    return request_id if request_id_note(request_id) else "-"


class LoggingTransport(httpx.AsyncBaseTransport):
    """Logs each attempt at DEBUG level (``--debug``): method, host and path, status, time.

    Query strings (presigned URL signatures) and headers (tokens) are never logged.
    """

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send the request and log the outcome.

        Raises:
            httpx.TransportError: from the inner transport (logged, then re-raised).
        """
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
            _shown_request_id(response, request),
        )
        return response

    async def aclose(self) -> None:
        """Close the wrapped transport."""
        await self._inner.aclose()


def safe_proxy_url(url: str) -> str:
    """``url`` without a password (``http://user:***@host:port``), for output and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    # The host and port as written (parts.port raises for a port out of range).
    netloc = f"{parts.username}:***@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def _valid_port(parts: SplitResult) -> bool:
    """Whether the URL's port, if any, is a number from 1 to 65535."""
    try:
        port = parts.port
    except ValueError:
        return False
    return port is None or port > 0


@dataclass(frozen=True)
class ProxyRoutes:
    """Which proxy URL (or none) serves each request URL.

    ``by_scheme`` maps ``http``/``https`` to a proxy URL; ``no_proxy`` is the
    ``NO_PROXY`` value (hosts reached directly).
    """

    by_scheme: dict[str, str] = field(default_factory=dict)
    no_proxy: str = ""

    def proxy_for(self, url: httpx.URL) -> str | None:
        """The proxy URL for ``url``, or ``None`` to connect directly."""
        proxy = self.by_scheme.get(url.scheme)
        if proxy is None:
            return None
        port = url.port or (443 if url.scheme == "https" else 80)
        if no_proxy_matches(self.no_proxy, url.host, port):
            return None
        return proxy


def no_proxy_matches(no_proxy: str, host: str, port: int | None) -> bool:
    """Whether ``NO_PROXY`` (as curl reads it) names ``host``.

    Entries are comma-separated: ``*`` (every host), a host name that also covers its
    subdomains (``example.org``, ``.example.org``), optionally with ``:port``, an IP
    address, or an IP network (``10.0.0.0/8``).
    """
    host = host.lower().strip("[]")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    for raw in no_proxy.split(","):
        entry = raw.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        if address is not None and "/" in entry:
            try:
                if address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and not entry_port.isdigit():
            name, entry_port = entry, ""
        if entry_port and port is not None and int(entry_port) != port:
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


def proxy_routes(setting: str | None) -> ProxyRoutes:
    """The proxies of this run, from the ``proxy`` setting and the environment.

    ``setting`` serves every scheme; without it ``HTTPS_PROXY``/``HTTP_PROXY`` per
    scheme, else ``ALL_PROXY``; ``NO_PROXY`` always applies. Lower-case variable names win over upper-case ones (as in curl and httpx).

    Raises:
        ConfigurationError: a proxy URL is not ``http://`` or ``https://`` with a host.
    """
    env = getproxies_environment()
    by_scheme: dict[str, str] = {}
    for scheme in ("http", "https"):
        chosen = setting or env.get(scheme) or env.get("all")
        if chosen:
            by_scheme[scheme] = chosen
    for proxy in set(by_scheme.values()):
        parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if parts.scheme not in {"http", "https"} or not parts.hostname or not _valid_port(parts):
            raise ConfigurationError(
                f"The proxy {safe_proxy_url(proxy)!r} is not supported: use an http:// or "
                "https:// proxy URL with a host name and, if any, a port from 1 to 65535.",
                hint="Fix the 'proxy' setting or the HTTPS_PROXY/HTTP_PROXY/ALL_PROXY variable.",
            )
    by_scheme = {
        scheme: proxy if "://" in proxy else f"http://{proxy}"
        for scheme, proxy in by_scheme.items()
    }
    return ProxyRoutes(by_scheme=by_scheme, no_proxy=env.get("no", ""))


class ProxyRoutingTransport(httpx.AsyncBaseTransport):
    """Sends each request directly or through the proxy :class:`ProxyRoutes` picks for it.

    One pooled transport per proxy URL is built on first use by ``make_proxied``.
    """

    def __init__(
        self,
        direct: httpx.AsyncBaseTransport,
        routes: ProxyRoutes,
        make_proxied: Callable[[str], httpx.AsyncBaseTransport],
    ) -> None:
        self._direct = direct
        self._routes = routes
        self._make_proxied = make_proxied
        self._proxied: dict[str, httpx.AsyncBaseTransport] = {}

    def transport_for(self, url: httpx.URL) -> httpx.AsyncBaseTransport:
        """The transport that serves ``url``."""
        proxy = self._routes.proxy_for(url)
        if proxy is None:
            return self._direct
        if proxy not in self._proxied:
            self._proxied[proxy] = self._make_proxied(proxy)
        return self._proxied[proxy]

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request`` through the transport for its URL.

        Raises:
            httpx.ProxyError: the proxy could not be reached (or refused the tunnel).
        """
        transport = self.transport_for(request.url)
        if transport is self._direct:
            return await transport.handle_async_request(request)
        try:
            return await transport.handle_async_request(request)
        except httpx.ConnectError as error:
            proxy = self._routes.proxy_for(request.url) or ""
            raise httpx.ProxyError(
                f"could not connect through the proxy {urlsplit(proxy).netloc.rpartition('@')[2]}",
                request=request,
            ) from error

    async def aclose(self) -> None:
        """Close the direct transport and every proxied one."""
        await self._direct.aclose()
        for transport in self._proxied.values():
            await transport.aclose()


def retry_policy(config: Config) -> RetryPolicy:
    """The retry settings of ``config`` (attempts, longest backoff, jitter, statuses)."""
    return RetryPolicy(
        attempts=config.client_num_retries,
        backoff_max=float(config.client_exponential_backoff_max),
        jitter=config.per_request_jitter,
        status_codes=frozenset(config.client_retry_status_codes),
    )


def make_http_client(
    config: Config,
    *,
    user_agent: str,
    stats: RetryStats | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    pool_size: int = 32,
    sleep: Sleep | None = None,
) -> httpx.AsyncClient:
    """The run's one ``httpx.AsyncClient`` with the retry layer over ``transport``.

    ``transport`` defaults to a pooled ``httpx.AsyncHTTPTransport`` that verifies TLS
    (system trust store via ``SSL_CERT_FILE`` or certifi, plus ``config.ca_bundle``),
    receives in 1 MiB reads (:mod:`ghga_connector.adapters.network`), receives S3 ranges
    straight into their buffers (:mod:`ghga_connector.adapters.receive`) and sends requests
    through the proxy that applies to them (:func:`proxy_routes`: the ``proxy`` setting
    and the proxy environment variables). Tests pass ``httpx.MockTransport``; ``sleep``
    replaces the waits between retries.

    Raises:
        ConfigurationError: an unsupported proxy URL.
    """
    limits = httpx.Limits(max_connections=pool_size, max_keepalive_connections=pool_size)
    if transport is None:
        verify: ssl.SSLContext | bool = True
        if config.ca_bundle is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(config.ca_bundle))
        tls = httpx.create_ssl_context(verify)

        def proxied(proxy: str) -> httpx.AsyncBaseTransport:
            return proxied_transport(proxy, verify=tls, limits=limits)

        direct = DirectRangeTransport(
            pooled_transport(verify=tls, limits=limits), ssl_context=tls, limits=limits
        )
        transport = ProxyRoutingTransport(direct, proxy_routes(config.proxy), proxied)
    policy = retry_policy(config)
    return httpx.AsyncClient(
        transport=RetryTransport(
            BoundedResponseTransport(LoggingTransport(transport)), policy, stats, sleep
        ),
        timeout=httpx.Timeout(config.timeout, connect=config.connect_timeout),
        headers={"User-Agent": user_agent},
        follow_redirects=False,
        trust_env=True,
    )
