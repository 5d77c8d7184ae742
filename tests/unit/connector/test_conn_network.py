"""adapters/network.py: large socket reads under httpx's connection pool."""

from __future__ import annotations

import ssl
from typing import Any

import httpcore
import httpx

from ghga_connector.adapters.network import (
    READ_SIZE,
    LargeReadBackend,
    LargeReadStream,
    pooled_transport,
    proxied_transport,
)


class RecordingStream(httpcore.AsyncNetworkStream):
    def __init__(self) -> None:
        self.asked: list[int] = []
        self.written: list[bytes] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self.asked.append(max_bytes)
        return b"x"

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        self.written.append(buffer)

    async def aclose(self) -> None:
        pass

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        return RecordingStream()

    def get_extra_info(self, info: str) -> Any:
        return f"info:{info}"


async def test_reads_ask_for_at_least_the_read_size() -> None:
    inner = RecordingStream()
    stream = LargeReadStream(inner, read_size=READ_SIZE)
    assert await stream.read(65_536) == b"x"
    assert await stream.read(4 * READ_SIZE) == b"x"
    await stream.write(b"abc")
    assert inner.asked == [READ_SIZE, 4 * READ_SIZE]
    assert inner.written == [b"abc"]
    assert stream.get_extra_info("server_addr") == "info:server_addr"


async def test_tls_streams_are_wrapped_too() -> None:
    stream = LargeReadStream(RecordingStream(), read_size=1000)
    tls = await stream.start_tls(ssl.create_default_context(), "example.org")
    assert isinstance(tls, LargeReadStream)
    await tls.read(10)


async def test_backend_wraps_new_connections() -> None:
    class InnerBackend(httpcore.AsyncNetworkBackend):
        async def connect_tcp(self, *args: Any, **kwargs: Any) -> httpcore.AsyncNetworkStream:
            return RecordingStream()

        async def connect_unix_socket(
            self, *args: Any, **kwargs: Any
        ) -> httpcore.AsyncNetworkStream:
            return RecordingStream()

        async def sleep(self, seconds: float) -> None:
            pass

    backend = LargeReadBackend(InnerBackend())
    assert isinstance(await backend.connect_tcp("127.0.0.1", 80), LargeReadStream)
    assert isinstance(await backend.connect_unix_socket("/tmp/sock"), LargeReadStream)


def test_pooled_transport_uses_the_large_read_backend() -> None:
    limits = httpx.Limits(max_connections=7, max_keepalive_connections=7)
    transport = pooled_transport(verify=True, limits=limits)
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncConnectionPool)
    assert isinstance(pool._network_backend, LargeReadBackend)
    assert pool._max_connections == 7
    assert pool._ssl_context is not None


def test_proxied_transport_keeps_large_reads_and_proxy_credentials() -> None:
    limits = httpx.Limits(max_connections=5, max_keepalive_connections=5)
    transport = proxied_transport(
        "http://me:secret@proxy.example.org:3128", verify=True, limits=limits
    )
    pool = transport._pool
    assert isinstance(pool, httpcore.AsyncHTTPProxy)
    assert isinstance(pool._network_backend, LargeReadBackend)
    assert pool._max_connections == 5
    assert pool._proxy_url.host == b"proxy.example.org" and pool._proxy_url.port == 3128
    assert any(name.lower() == b"proxy-authorization" for name, _ in pool._proxy_headers)


class SocketStream(RecordingStream):
    """A stream over a real socket that counts what it is asked for."""

    def __init__(self, sock: Any) -> None:
        super().__init__()
        self.sock = sock
        self.extra: list[str] = []

    def get_extra_info(self, info: str) -> Any:
        self.extra.append(info)
        if info == "socket":
            return self.sock
        if info == "is_readable":
            return httpcore._utils.is_socket_readable(self.sock)
        return None


def test_is_readable_polls_the_socket_it_asked_for_once() -> None:
    import socket

    left, right = socket.socketpair()
    try:
        inner = SocketStream(left)
        stream = LargeReadStream(inner)
        assert stream.get_extra_info("is_readable") is False  # idle, nothing waiting
        assert stream.get_extra_info("is_readable") is False
        right.sendall(b"x")
        assert stream.get_extra_info("is_readable") is True  # data waiting
        left.recv(1)
        assert stream.get_extra_info("is_readable") is False
        right.close()
        assert stream.get_extra_info("is_readable") is True  # the server closed it
        # the raw socket was asked for once; httpcore's per-call check was never used
        assert inner.extra == ["socket"]
        fd = left.fileno()
        left.close()
        again, peer = socket.socketpair()  # the kernel hands out the lowest free number
        try:
            assert fd in (again.fileno(), peer.fileno())
            # closed here: readable (httpcore drops it), never a poll of the reused number
            assert stream.get_extra_info("is_readable") is True
        finally:
            again.close()
            peer.close()
    finally:
        left.close()
        right.close()


def test_is_readable_falls_back_without_a_raw_socket() -> None:
    inner = RecordingStream()  # answers "info:<name>" for every key
    stream = LargeReadStream(inner)
    stream._inner = type(  # a stream without a raw socket
        "NoSocket", (RecordingStream,), {"get_extra_info": lambda self, info: None}
    )()
    assert stream.get_extra_info("is_readable") is False
