"""The sandbox's listening socket: Nagle's algorithm off on every accepted connection.

With Nagle on, uvicorn's answer body, written after its head, waited for the client's
delayed ACK: every API call on a kept-alive connection took 40 ms more than a real GHGA
deployment takes.
"""

from __future__ import annotations

import asyncio
import socket

import pytest

from ghga_sandbox.cli import SandboxCliError, listening_socket


def test_the_listening_socket_is_tcp_with_nagle_off() -> None:
    with listening_socket("127.0.0.1", 0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_accepted_connections_have_nagle_off() -> None:
    sock = listening_socket("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nodelay.set_result(
            writer.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(nodelay, timeout=30) != 0
        writer.close()


def test_an_address_in_use_is_a_clear_error() -> None:
    with listening_socket("127.0.0.1", 0) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(SandboxCliError, match="cannot listen"):
            listening_socket("127.0.0.1", port).close()
