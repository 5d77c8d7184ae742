"""Socket streams that receive in large reads, under httpx's connection pool.

httpcore reads a response body from its socket 64 KiB at a time, and every read runs
through asyncio, anyio, httpcore, h11 and httpx in pure Python. For a large download
that per-read cost is a large share of the client's CPU. :class:`LargeReadBackend`
wraps httpcore's own network backend so that each read asks the socket for up to
:data:`READ_SIZE` bytes instead (HTTP/1.1 parsing is unchanged: h11 accepts any amount
of received data). :func:`pooled_transport` builds httpx's standard transport over it.
"""

# ruff: noqa: ASYNC109  (the ``timeout`` parameters are httpcore's interface)
from __future__ import annotations

import select
import ssl
from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

__all__ = [
    "READ_SIZE",
    "LargeReadBackend",
    "LargeReadStream",
    "pooled_transport",
    "proxied_transport",
]

#: Bytes asked of the socket per read (httpcore's own default is 65 536).
READ_SIZE = 1024 * 1024


class LargeReadStream(httpcore.AsyncNetworkStream):
    """A network stream whose reads ask for at least ``read_size`` bytes."""

    def __init__(self, inner: httpcore.AsyncNetworkStream, read_size: int = READ_SIZE) -> None:
        self._inner = inner
        self._read_size = read_size
        self._socket: Any = None
        """The raw socket (asyncio hands out a ``TransportSocket``), once asked for."""
        self._poll: Any = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        """Up to ``max(max_bytes, read_size)`` bytes; ``b""`` at the end of the stream."""
        return await self._inner.read(max(max_bytes, self._read_size), timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        """Send all of ``buffer``."""
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        """Close the socket."""
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Upgrade to TLS; the TLS stream reads in large chunks too."""
        tls = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        return LargeReadStream(tls, self._read_size)

    def get_extra_info(self, info: str) -> Any:
        """Socket details (``ssl_object``, ``server_addr``, ...) of the wrapped stream.

        ``is_readable`` (httpcore asks it of every idle connection in the pool whenever a
        request starts or a response ends, to find connections the server closed) is
        answered by :meth:`is_readable` with one poll object per connection.
        """
        if info == "is_readable":
            return self.is_readable()
        return self._inner.get_extra_info(info)

    def is_readable(self) -> bool:
        """Whether the socket has data or its end waiting (``True`` once it is closed).

        The same answer as httpcore's own check, without its per-call cost: httpcore asks
        anyio for the raw socket (anyio builds a dictionary of every socket attribute per
        call) and creates and registers a new ``select.poll`` object each time. Here the
        socket and a poll object registered for it are kept for the connection's life.
        """
        if self._poll is None:
            sock = self._inner.get_extra_info("socket")
            if sock is None or not hasattr(select, "poll"):
                return bool(self._inner.get_extra_info("is_readable"))
            if sock.fileno() == -1:
                return True
            poll = select.poll()
            poll.register(sock.fileno(), select.POLLIN)
            self._socket, self._poll = sock, poll
        assert self._socket is not None
        if self._socket.fileno() == -1:
            return True
        return bool(self._poll.poll(0))


class LargeReadBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend with :class:`LargeReadStream` connections."""

    def __init__(
        self, inner: httpcore.AsyncNetworkBackend | None = None, read_size: int = READ_SIZE
    ) -> None:
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()
        self._read_size = read_size

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a TCP connection."""
        stream = await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        return LargeReadStream(stream, self._read_size)

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        """Open a Unix socket connection."""
        stream = await self._inner.connect_unix_socket(path, timeout, socket_options)
        return LargeReadStream(stream, self._read_size)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``."""
        await self._inner.sleep(seconds)


def pooled_transport(
    *, verify: ssl.SSLContext | bool, limits: httpx.Limits, read_size: int = READ_SIZE
) -> httpx.AsyncHTTPTransport:
    """The standard pooled HTTP/1.1 transport of httpx whose direct connections use large reads.

    The transport is built by httpx as usual (TLS verification, ``limits``, no
    transport-level retries); its connection pool is then rebuilt with the same
    settings over :class:`LargeReadBackend`. httpx offers no public setting for the
    network backend, so if a future httpx lays out its transport differently the stock
    pool is kept (same behaviour, smaller reads).
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, retries=0)
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore.AsyncConnectionPool:
        transport._pool = httpcore.AsyncConnectionPool(
            ssl_context=pool._ssl_context,
            **_pool_settings(limits, read_size),
        )
    return transport


def _pool_settings(limits: httpx.Limits, read_size: int) -> dict[str, Any]:
    """The connection-pool settings both transports share.

    httpx's limits, HTTP/1.1 only, no pool-level retries (``adapters/retry.py``
    retries), large reads.
    """
    return {
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": True,
        "http2": False,
        "retries": 0,
        "network_backend": LargeReadBackend(read_size=read_size),
    }


def proxied_transport(
    proxy: str, *, verify: ssl.SSLContext | bool, limits: httpx.Limits, read_size: int = READ_SIZE
) -> httpx.AsyncHTTPTransport:
    """Httpx's transport through the HTTP(S) proxy ``proxy``, with large reads as well.

    Built by httpx as usual (proxy credentials from the URL become a
    ``Proxy-Authorization`` header, TLS to the origin through ``CONNECT``); its proxy
    pool is then rebuilt with the same settings over :class:`LargeReadBackend`. If a
    future httpx lays out its transport differently, the stock pool is kept.
    """
    transport = httpx.AsyncHTTPTransport(verify=verify, limits=limits, proxy=proxy, retries=0)
    pool = getattr(transport, "_pool", None)
    if type(pool) is httpcore.AsyncHTTPProxy:
        transport._pool = httpcore.AsyncHTTPProxy(
            proxy_url=pool._proxy_url,
            proxy_headers=pool._proxy_headers,
            ssl_context=pool._ssl_context,
            proxy_ssl_context=pool._proxy_ssl_context,
            **_pool_settings(limits, read_size),
        )
    return transport
