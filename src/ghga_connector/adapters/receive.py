"""Ranged GETs whose body the kernel writes straight into the caller's buffer.

A presigned S3 range (contract §3.5) is a plain HTTP/1.1 ``GET`` answered with a
``Content-Length`` body of up to a few dozen MiB. Through httpcore and h11 each received
chunk becomes a ``bytes`` object, is appended to h11's receive buffer, sliced out again
and copied into the range buffer: three copies of every byte and a pass through five
pure-Python layers per chunk, all on the event-loop thread.

:class:`DirectRangeTransport` serves a request that carries
``extensions={"ghga_into": memoryview}`` itself: on a connection of its own pool it
writes the request head (serialised by h11), reads the response head into a small
buffer (parsed by h11), and then lets :class:`asyncio.BufferedProtocol` receive the
body with ``recv_into`` directly into the caller's ``memoryview``: one copy, from the
kernel, with one Python call per socket read of up to the whole remaining range.
Every other request, and a range answer without ``Content-Length``, goes to the wrapped
standard transport (httpx's pooled transport), so behaviour is the same, only slower.

The answer is an :class:`httpx.Response` with the status and headers and an empty
stream; its extensions say how the body went:

``ghga_received``
    bytes written into the buffer (only for 200 and 206 answers; else 0).
``ghga_excess``
    True if the server announced more bytes than the buffer holds (the buffer is
    filled, the rest is not read and the connection is closed).
``ghga_body_error``
    the name of the failure (``ReadError``, ``ReadTimeout``) if the body broke off
    after the head arrived; the caller retries the range.

A request may carry ``extensions={"ghga_progress": callable}``: it is called with the
number of body bytes each time some arrive (the S3 adapter's progress deadline,
``adapters/storage.py``). More than :data:`MAX_INTERIM_HEADS` interim ``1xx`` heads before
the answer are a :class:`httpx.RemoteProtocolError`. A failure before the head is
    raised as the usual :class:`httpx.TransportError`, so the retry layer of
    ``adapters/retry.py`` retries it like any other request.

Used for direct connections only: a request that goes through a proxy is served by the
proxied transport (``adapters/http.py``).
"""

# ruff: noqa: ASYNC109
from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h11
import httpx

__all__ = ["HEAD_LIMIT", "MAX_INTERIM_HEADS", "DirectRangeTransport"]

#: Longest response head accepted, in bytes (status line and headers).
HEAD_LIMIT = 64 * 1024

#: Interim (``1xx``) heads accepted before the answer; more is a protocol error, which
#: the retry layer treats like any failed attempt.
MAX_INTERIM_HEADS = 8


def _no_progress(nbytes: int) -> None:
    """The default progress callback: nobody counts."""


class _Connection(asyncio.BufferedProtocol):
    """One HTTP/1.1 connection; receives a head into a scratch buffer, a body in place.

    Modes: ``idle`` (bytes nobody asked for close the connection), ``head`` (bytes are
    appended to :attr:`pending` until a whole head is there, and after it until the
    body is asked for) and ``body`` (bytes land in the caller's buffer).
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.pending = bytearray()
        self.received = 0  # all bytes ever received: the read timeout's progress
        self._scratch = memoryview(bytearray(HEAD_LIMIT))
        self._mode = "idle"
        self._target = memoryview(b"")
        self._filled = 0
        self._waiter: asyncio.Future[None] | None = None
        self.progress: Callable[[int], None] = _no_progress

    # asyncio.BufferedProtocol -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._mode == "body":
            return self._target[self._filled :]
        return self._scratch

    def buffer_updated(self, nbytes: int) -> None:
        self.received += nbytes
        if self._mode == "body":
            self._filled += nbytes
            self.progress(nbytes)
            if self._filled == len(self._target):
                self._mode = "idle"
                self._wake()
        elif self._mode == "head":
            self.pending += self._scratch[:nbytes]
            self._wake()
        else:
            self.close()  # bytes nobody asked for: the connection cannot be trusted

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._wake()

    # used by the transport ------------------------------------------------------------
    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def close(self) -> None:
        """Close the socket (idempotent)."""
        self.closed = True
        self._mode = "idle"
        if self.transport is not None:
            self.transport.close()

    async def _wait(self, read_timeout: float | None, done: Callable[[], bool]) -> None:
        """Wait until ``done()`` or the connection closed; the timeout counts from the last byte.

        Raises:
            httpx.ReadTimeout: no byte arrived within ``read_timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        while not done() and not self.closed:
            self._waiter = loop.create_future()
            before = self.received
            handle = None if read_timeout is None else loop.call_later(read_timeout, self._wake)
            try:
                await self._waiter
            finally:
                self._waiter = None
                if handle is not None:
                    handle.cancel()
            if not done() and not self.closed and self.received == before:
                raise httpx.ReadTimeout("No data arrived within the read timeout.")

    def _head_end(self) -> int:
        return self.pending.find(b"\r\n\r\n")

    async def read_head(self, read_timeout: float | None) -> bytes:
        """The next response head, up to and including its blank line.

        What arrived after it stays in :attr:`pending` (and more is appended there)
        until :meth:`read_body`.

        Raises:
            httpx.ReadError: the connection closed before a whole head arrived.
            httpx.ReadTimeout: nothing arrived within ``read_timeout`` seconds.
            httpx.RemoteProtocolError: the head is longer than :data:`HEAD_LIMIT`.
        """
        self._mode = "head"
        await self._wait(
            read_timeout, lambda: self._head_end() >= 0 or len(self.pending) > HEAD_LIMIT
        )
        end = self._head_end()
        if end < 0 or end > HEAD_LIMIT:
            if len(self.pending) > HEAD_LIMIT:
                raise httpx.RemoteProtocolError("The response head is too long.")
            raise httpx.ReadError(
                "Server disconnected without sending a response."
                if not self.pending
                else "The connection closed in the middle of the response head."
            )
        head = bytes(self.pending[: end + 4])
        del self.pending[: end + 4]
        return head

    async def read_body(self, into: memoryview, read_timeout: float | None) -> int:
        """Fill ``into`` from :attr:`pending`, then from the socket; the bytes filled.

        Returns fewer than ``len(into)`` bytes if the connection closed. Bytes past
        ``into`` that had already arrived stay in :attr:`pending`.

        Raises:
            httpx.ReadTimeout: no byte arrived within ``read_timeout`` seconds (the
                bytes filled so far are in :attr:`filled`).
        """
        first = min(len(self.pending), len(into))
        into[:first] = self.pending[:first]
        del self.pending[:first]
        self.progress(first)
        self._target, self._filled = into, first
        if first < len(into):
            self._mode = "body"
            try:
                await self._wait(read_timeout, lambda: self._filled == len(into))
            finally:
                self._mode = "idle"
        self._mode = "idle"
        self._target = memoryview(b"")
        return self._filled

    @property
    def filled(self) -> int:
        """Bytes of the current (or last) body written into the caller's buffer."""
        return self._filled


@dataclass
class _Pool:
    """Idle keep-alive connections per origin."""

    max_idle: int
    expiry: float
    idle: dict[tuple[str, str, int], list[_Connection]] = field(default_factory=dict)

    def take(self, origin: tuple[str, str, int]) -> _Connection | None:
        now = time.monotonic()
        connections = self.idle.get(origin, [])
        while connections:
            connection = connections.pop()
            if not connection.closed and now - connection.idle_since < self.expiry:
                return connection
            connection.close()
        return None

    def give(self, origin: tuple[str, str, int], connection: _Connection) -> None:
        connection.progress = _no_progress
        connections = self.idle.setdefault(origin, [])
        if connection.closed or sum(map(len, self.idle.values())) >= self.max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    def close(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                connection.close()
        self.idle.clear()


class DirectRangeTransport(httpx.AsyncBaseTransport):
    """Receives ranged GETs in place; everything else goes to ``inner``.

    Args:
        inner: the transport for all other requests (and the fallback).
        ssl_context: TLS settings for ``https`` origins (the same trust as ``inner``).
        limits: ``max_keepalive_connections`` and ``keepalive_expiry`` (seconds) of the
            idle connections kept for reuse.
    """

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        *,
        ssl_context: ssl.SSLContext,
        limits: httpx.Limits,
    ) -> None:
        self._inner = inner
        self._ssl = ssl_context
        self._pool = _Pool(
            max_idle=limits.max_keepalive_connections or 32,
            expiry=limits.keepalive_expiry if limits.keepalive_expiry is not None else 5.0,
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Serve ``request``: in place if it carries ``ghga_into``, else through ``inner``.

        Raises:
            httpx.ConnectError, httpx.ConnectTimeout: the server could not be reached.
            httpx.ReadError, httpx.ReadTimeout, httpx.WriteError: the connection failed
                before the response head arrived.
            httpx.RemoteProtocolError: the response head is not valid HTTP/1.1.
        """
        into = request.extensions.get("ghga_into")
        if (
            not isinstance(into, memoryview)
            or request.method != "GET"
            or request.url.scheme not in ("http", "https")
        ):
            return await self._inner.handle_async_request(request)
        origin = (request.url.scheme, request.url.host, request.url.port or _default_port(request))
        timeouts = request.extensions.get("timeout", {})
        for reused in (True, False):
            connection = self._pool.take(origin) if reused else None
            if reused and connection is None:
                continue
            if connection is None:
                connection = await self._connect(origin, timeouts.get("connect"))
            progress = request.extensions.get("ghga_progress")
            connection.progress = progress if callable(progress) else _no_progress
            try:
                response = await self._exchange(connection, request, into, timeouts.get("read"))
            except httpx.ReadError as error:
                connection.close()
                # A kept-alive connection the server closed meanwhile: once more, afresh.
                if reused and "without sending a response" in str(error):
                    continue
                raise
            except BaseException:
                connection.close()
                raise
            if response is None:  # no Content-Length: the standard transport reads it
                return await self._inner.handle_async_request(request)
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    async def _connect(self, origin: tuple[str, str, int], timeout: float | None) -> _Connection:
        scheme, host, port = origin
        loop = asyncio.get_running_loop()
        tls = self._ssl if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                _, connection = await loop.create_connection(
                    _Connection, host, port, ssl=tls, server_hostname=host if tls else None
                )
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except (OSError, ssl.SSLError) as error:
            raise httpx.ConnectError(f"{type(error).__name__}: {error}") from None
        return connection

    async def _exchange(
        self,
        connection: _Connection,
        request: httpx.Request,
        into: memoryview,
        read_timeout: float | None,
    ) -> httpx.Response | None:
        protocol = h11.Connection(h11.CLIENT)
        head = protocol.send(
            h11.Request(
                method=b"GET", target=request.url.raw_path, headers=list(request.headers.raw)
            )
        )
        if connection.closed or connection.transport is None:
            raise httpx.ReadError("Server disconnected without sending a response.")
        try:
            connection.transport.write(head)
        except (OSError, RuntimeError) as error:
            raise httpx.WriteError(str(error)) from None
        interim = 0
        while True:
            raw_head = await connection.read_head(read_timeout)
            try:
                protocol.receive_data(raw_head)
                event = protocol.next_event()
            except h11.RemoteProtocolError as error:
                raise httpx.RemoteProtocolError(str(error)) from None
            if isinstance(event, h11.InformationalResponse):
                interim += 1
                if interim > MAX_INTERIM_HEADS:
                    raise httpx.RemoteProtocolError(
                        f"The server sent more than {MAX_INTERIM_HEADS} interim (1xx) heads."
                    )
                continue  # 1xx: the real answer follows
            if not isinstance(event, h11.Response):
                raise httpx.RemoteProtocolError("The server sent no valid response head.")
            break
        headers = httpx.Headers(event.headers)
        extensions: dict[str, object] = {
            "http_version": b"HTTP/" + event.http_version,
            "reason_phrase": event.reason,
            "ghga_received": 0,
        }
        length = headers.get("Content-Length")
        if event.status_code not in (200, 206):
            connection.close()  # its body is of no use; do not read it
            return _response(event.status_code, headers, request, extensions)
        if length is None or "Transfer-Encoding" in headers:
            connection.close()
            return None
        announced = int(length)
        wanted = min(announced, len(into))
        try:
            received = await connection.read_body(into[:wanted], read_timeout)
        except httpx.ReadTimeout:
            connection.close()
            extensions.update(ghga_received=connection.filled, ghga_body_error="ReadTimeout")
            return _response(event.status_code, headers, request, extensions)
        extensions["ghga_received"] = received
        if received < wanted:
            connection.close()
            extensions["ghga_body_error"] = "ReadError"
        elif announced > wanted or connection.pending or not _keep_alive(event, headers):
            extensions["ghga_excess"] = announced > wanted
            connection.close()
        else:
            self._pool.give(_origin(request), connection)
        return _response(event.status_code, headers, request, extensions)

    async def aclose(self) -> None:
        """Close the idle connections and the wrapped transport."""
        self._pool.close()
        await self._inner.aclose()


def _default_port(request: httpx.Request) -> int:
    return 443 if request.url.scheme == "https" else 80


def _origin(request: httpx.Request) -> tuple[str, str, int]:
    return (request.url.scheme, request.url.host, request.url.port or _default_port(request))


def _keep_alive(event: h11.Response, headers: httpx.Headers) -> bool:
    tokens = {t.strip().lower() for t in headers.get("Connection", "").split(",")}
    return event.http_version == b"1.1" and "close" not in tokens


def _response(
    status: int, headers: httpx.Headers, request: httpx.Request, extensions: dict[str, object]
) -> httpx.Response:
    response = httpx.Response(
        status, headers=headers, stream=httpx.ByteStream(b""), extensions=extensions
    )
    response.request = request
    return response
