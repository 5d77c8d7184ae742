"""adapters/receive.py: ranged GETs received straight into the caller's buffer.

A scripted HTTP/1.1 server on 127.0.0.1 answers each request with the bytes a test
gives it, so every path (keep-alive, broken bodies, timeouts, odd heads) is exercised
on a real socket.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ghga_connector.adapters.http import make_http_client
from ghga_connector.adapters.receive import HEAD_LIMIT, MAX_INTERIM_HEADS, DirectRangeTransport
from ghga_connector.adapters.storage import ObjectStorageClient, RateFloor
from ghga_connector.config import Config
from ghga_connector.errors import BodyBrokenError, ServerResponseError, ServiceUnreachableError

BODY = bytes(range(256)) * 1024  # 256 KiB

#: An answer: the bytes to send, then what to do with the connection.
Answer = tuple[bytes, str]  # action: "keep", "close" or "hang"


def ok(body: bytes, status: str = "206 Partial Content", extra: str = "") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n"
        f"Content-Range: bytes 0-{len(body) - 1}/{len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


@dataclass
class ScriptedServer:
    """Answers the n-th request (over all connections) with ``answers[n]``."""

    answers: list[Answer]
    heads: list[bytes] = field(default_factory=list)
    connections: int = 0
    port: int = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                data, action = self.answers[len(self.heads) - 1]
                writer.write(data)
                await writer.drain()
                if action == "close":
                    break
                if action == "hang":
                    await asyncio.sleep(3600)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/bucket/object?X-Amz-Signature=s3cr3t"


Serve = Callable[[list[Answer]], Awaitable[ScriptedServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Starts scripted servers on 127.0.0.1; closes them after the test."""
    started: list[asyncio.Server] = []

    async def start(answers: list[Answer]) -> ScriptedServer:
        scripted = ScriptedServer(answers)
        server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0)
        scripted.port = server.sockets[0].getsockname()[1]
        started.append(server)
        return scripted

    yield start
    for server in started:
        server.close()


class Inner(httpx.AsyncBaseTransport):
    """The wrapped transport: records what it was asked."""

    def __init__(self) -> None:
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(299, content=b"inner")


def transport(inner: httpx.AsyncBaseTransport | None = None) -> DirectRangeTransport:
    return DirectRangeTransport(
        inner or Inner(),
        ssl_context=ssl.create_default_context(),
        limits=httpx.Limits(max_keepalive_connections=4),
    )


async def get(
    direct: DirectRangeTransport, url: str, into: memoryview, read: float | None = 5.0
) -> httpx.Response:
    request = httpx.Request(
        "GET",
        url,
        headers={"Range": "bytes=0-9"},
        extensions={
            "ghga_into": into,
            "timeout": {"connect": 5.0, "read": read, "write": 5.0, "pool": 5.0},
        },
    )
    return await direct.handle_async_request(request)


async def test_body_lands_in_the_buffer_and_the_head_is_sent_as_given(serve: Serve) -> None:
    server = await serve([(ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    response = await get(direct, server.url, memoryview(buffer))
    assert response.status_code == 206
    assert response.extensions["ghga_received"] == len(BODY)
    assert "ghga_body_error" not in response.extensions
    assert bytes(buffer) == BODY
    assert response.headers["Content-Range"] == f"bytes 0-{len(BODY) - 1}/{len(BODY)}"
    head = server.heads[0].decode()
    assert head.startswith("GET /bucket/object?X-Amz-Signature=s3cr3t HTTP/1.1\r\n")
    assert f"host: 127.0.0.1:{server.port}\r\n" in head.lower()
    assert "range: bytes=0-9\r\n" in head.lower()
    await direct.aclose()


async def test_a_kept_alive_connection_serves_the_next_range(serve: Serve) -> None:
    server = await serve([(ok(BODY), "keep"), (ok(BODY[::-1]), "keep")])
    direct = transport()
    first, second = bytearray(len(BODY)), bytearray(len(BODY))
    await get(direct, server.url, memoryview(first))
    await get(direct, server.url, memoryview(second))
    assert bytes(second) == BODY[::-1]
    assert server.connections == 1
    await direct.aclose()


async def test_a_body_that_breaks_off_is_reported_with_what_arrived(serve: Serve) -> None:
    whole = ok(BODY)
    server = await serve([(whole[: len(whole) - 1000], "close"), (ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    response = await get(direct, server.url, memoryview(buffer))
    assert response.extensions["ghga_body_error"] == "ReadError"
    assert response.extensions["ghga_received"] == len(BODY) - 1000
    # the broken connection is not reused
    await get(direct, server.url, memoryview(buffer))
    assert server.connections == 2
    await direct.aclose()


async def test_a_silent_server_mid_body_is_a_read_timeout(serve: Serve) -> None:
    whole = ok(BODY)
    server = await serve([(whole[:5000], "hang")])
    direct = transport()
    response = await get(direct, server.url, memoryview(bytearray(len(BODY))), read=0.2)
    assert response.extensions["ghga_body_error"] == "ReadTimeout"
    await direct.aclose()


async def test_a_silent_server_before_the_head_is_a_read_timeout(serve: Serve) -> None:
    server = await serve([(b"", "hang")])
    direct = transport()
    with pytest.raises(httpx.ReadTimeout):
        await get(direct, server.url, memoryview(bytearray(10)), read=0.2)
    await direct.aclose()


async def test_a_kept_alive_connection_closed_by_the_server_is_replaced_once(serve: Serve) -> None:
    # The server takes the second request on the old connection and closes it unanswered.
    server = await serve([(ok(BODY), "keep"), (b"", "close"), (ok(BODY[::-1]), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    await get(direct, server.url, memoryview(buffer))
    response = await get(direct, server.url, memoryview(buffer))
    assert response.status_code == 206
    assert bytes(buffer) == BODY[::-1]
    assert server.connections == 2
    await direct.aclose()


async def test_a_new_connection_closed_without_an_answer_is_a_read_error(serve: Serve) -> None:
    server = await serve([(b"", "close")])
    direct = transport()
    with pytest.raises(httpx.ReadError):
        await get(direct, server.url, memoryview(bytearray(10)))
    await direct.aclose()


async def test_an_error_status_is_answered_without_reading_its_body(serve: Serve) -> None:
    error = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 5\r\n\r\nnope!"
    server = await serve([(error, "keep"), (ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    response = await get(direct, server.url, memoryview(buffer))
    assert response.status_code == 403
    assert response.extensions["ghga_received"] == 0
    assert bytes(buffer[:5]) == b"\0" * 5
    await get(direct, server.url, memoryview(buffer))
    assert server.connections == 2
    await direct.aclose()


async def test_a_longer_body_fills_the_buffer_and_is_flagged(serve: Serve) -> None:
    server = await serve([(ok(BODY), "keep"), (ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(1000)
    response = await get(direct, server.url, memoryview(buffer))
    assert response.extensions["ghga_received"] == 1000
    assert response.extensions["ghga_excess"] is True
    assert bytes(buffer) == BODY[:1000]
    await get(direct, server.url, memoryview(bytearray(len(BODY))))
    assert server.connections == 2  # the rest was not read: the connection was closed
    await direct.aclose()


async def test_bytes_after_the_body_make_the_connection_unusable(serve: Serve) -> None:
    server = await serve([(ok(BODY) + b"garbage", "keep"), (ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    await get(direct, server.url, memoryview(buffer))
    assert bytes(buffer) == BODY
    await asyncio.sleep(0)
    await get(direct, server.url, memoryview(buffer))
    assert server.connections == 2
    await direct.aclose()


async def test_connection_close_is_honoured(serve: Serve) -> None:
    server = await serve([(ok(BODY, extra="Connection: close\r\n"), "keep"), (ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    await get(direct, server.url, memoryview(buffer))
    await get(direct, server.url, memoryview(buffer))
    assert server.connections == 2
    await direct.aclose()


async def test_an_informational_head_before_the_answer_is_skipped(serve: Serve) -> None:
    server = await serve([(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(BODY), "keep")])
    direct = transport()
    buffer = bytearray(len(BODY))
    response = await get(direct, server.url, memoryview(buffer))
    assert response.status_code == 206
    assert bytes(buffer) == BODY
    await direct.aclose()


async def test_a_body_without_content_length_is_read_by_the_standard_transport(
    serve: Serve,
) -> None:
    chunked = (
        b"HTTP/1.1 206 Partial Content\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    )
    server = await serve([(chunked, "keep")])
    inner = Inner()
    direct = transport(inner)
    response = await get(direct, server.url, memoryview(bytearray(5)))
    assert response.status_code == 299
    assert len(inner.requests) == 1
    await direct.aclose()


async def test_an_endless_head_is_refused(serve: Serve) -> None:
    endless = b"HTTP/1.1 206 Partial Content\r\n" + b"X-Filler: " + b"a" * (HEAD_LIMIT + 10)
    server = await serve([(endless, "hang")])
    direct = transport()
    with pytest.raises(httpx.RemoteProtocolError):
        await get(direct, server.url, memoryview(bytearray(10)))
    await direct.aclose()


async def test_an_invalid_head_is_a_protocol_error(serve: Serve) -> None:
    server = await serve([(b"SPDY/9 what\r\n\r\n", "keep")])
    direct = transport()
    with pytest.raises(httpx.RemoteProtocolError):
        await get(direct, server.url, memoryview(bytearray(10)))
    await direct.aclose()


async def test_other_requests_go_to_the_wrapped_transport() -> None:
    inner = Inner()
    direct = transport(inner)
    request = httpx.Request("GET", "http://127.0.0.1:1/api")
    response = await direct.handle_async_request(request)
    assert response.status_code == 299
    assert inner.requests == [request]


async def test_a_refused_connection_is_a_connect_error(serve: Serve) -> None:
    server = await serve([])
    port = server.port
    direct = transport()
    with pytest.raises(httpx.ConnectError):
        await get(
            direct,
            f"http://127.0.0.1:{port + 1 if port < 65535 else 1}/x",
            memoryview(bytearray(1)),
        )
    await direct.aclose()


# --- through the S3 adapter --------------------------------------------------------


def client_over(direct: DirectRangeTransport) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=direct, timeout=5.0)


async def test_get_range_takes_the_in_place_body(serve: Serve) -> None:
    head = (
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n"
        b"Content-Range: bytes 1000-1099/5000\r\n\r\n"
    )
    server = await serve([(head + BODY[:100], "keep")])
    async with client_over(transport()) as client:
        buffer = bytearray(100)
        await ObjectStorageClient(client).get_range(server.url, 1000, 1100, memoryview(buffer))
    assert bytes(buffer) == BODY[:100]


async def test_get_range_reports_a_broken_in_place_body(serve: Serve) -> None:
    head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\nContent-Range: bytes 0-99/500\r\n\r\n"
    server = await serve([(head + BODY[:60], "close")])
    async with client_over(transport()) as client:
        with pytest.raises(BodyBrokenError, match="after 60 of 100 bytes") as caught:
            await ObjectStorageClient(client).get_range(
                server.url, 0, 100, memoryview(bytearray(100))
            )
    # the object storage answered: the service URL setting is not the thing to check
    assert "wkvs_api_url" not in caught.value.hint
    assert "continues where it stopped" in caught.value.hint


async def test_get_range_refuses_a_206_with_more_bytes(serve: Serve) -> None:
    head = b"HTTP/1.1 206 Partial Content\r\nContent-Length: 200\r\nContent-Range: bytes 0-99/500\r\n\r\n"
    server = await serve([(head + BODY[:200], "keep")])
    async with client_over(transport()) as client:
        with pytest.raises(ServerResponseError, match="too many bytes"):
            await ObjectStorageClient(client).get_range(
                server.url, 0, 100, memoryview(bytearray(100))
            )


async def test_get_range_takes_the_start_of_a_whole_object_for_range_zero(serve: Serve) -> None:
    server = await serve([(ok(BODY, status="200 OK"), "keep")])
    async with client_over(transport()) as client:
        buffer = bytearray(100)
        await ObjectStorageClient(client).get_range(server.url, 0, 100, memoryview(buffer))
    assert bytes(buffer) == BODY[:100]


async def test_the_run_client_receives_ranges_in_place() -> None:
    """The client of a run has the direct transport under its direct (unproxied) route."""
    client = make_http_client(Config(), user_agent="test")
    chain = [client._transport]
    while True:
        node = chain[-1]
        nxt = getattr(node, "_inner", None) or getattr(node, "_direct", None)
        if nxt is None:
            break
        chain.append(nxt)
    assert any(isinstance(node, DirectRangeTransport) for node in chain)
    await client.aclose()


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    """A certificate and key for 127.0.0.1, valid for an hour."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_https_ranges_are_received_in_place_and_verified(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    scripted = ScriptedServer([(ok(BODY), "keep"), (ok(BODY[::-1]), "keep")])
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/bucket/object"
    trusting = ssl.create_default_context(cafile=str(cert))
    direct = DirectRangeTransport(Inner(), ssl_context=trusting, limits=httpx.Limits())
    buffer = bytearray(len(BODY))
    await get(direct, url, memoryview(buffer))
    assert bytes(buffer) == BODY
    await get(direct, url, memoryview(buffer))
    assert bytes(buffer) == BODY[::-1]
    assert scripted.connections == 1
    await direct.aclose()
    # A client that does not trust the certificate refuses the connection.
    strict = DirectRangeTransport(
        Inner(), ssl_context=ssl.create_default_context(), limits=httpx.Limits()
    )
    with pytest.raises(httpx.ConnectError):
        await get(strict, url, memoryview(buffer))
    server.close()


@pytest.mark.parametrize("direct", [True, False], ids=["in-place", "httpx"])
async def test_an_untrusted_certificate_is_named_as_such(tmp_path: Path, direct: bool) -> None:
    """Not "Could not reach ... (ConnectError)": the certificate, and what to do."""
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    scripted = ScriptedServer([(ok(BODY), "keep")])
    server = await asyncio.start_server(scripted.serve, "127.0.0.1", 0, ssl=server_tls)
    port = server.sockets[0].getsockname()[1]
    url = f"https://127.0.0.1:{port}/bucket/object"
    strict = ssl.create_default_context()
    standard = httpx.AsyncHTTPTransport(verify=strict)
    chosen: httpx.AsyncBaseTransport = (
        DirectRangeTransport(standard, ssl_context=strict, limits=httpx.Limits())
        if direct
        else standard
    )
    async with httpx.AsyncClient(transport=chosen, timeout=5.0) as client:
        with pytest.raises(ServiceUnreachableError, match="TLS certificate of") as caught:
            await ObjectStorageClient(client).get_range(url, 0, 10, memoryview(bytearray(10)))
    assert "ca_bundle" in caught.value.hint
    server.close()


async def test_bytes_after_a_small_body_in_the_same_read_make_the_connection_unusable(
    serve: Serve,
) -> None:
    server = await serve([(ok(BODY[:100]) + b"garbage", "keep"), (ok(BODY[:100]), "keep")])
    direct = transport()
    buffer = bytearray(100)
    response = await get(direct, server.url, memoryview(buffer))
    assert bytes(buffer) == BODY[:100]
    assert response.extensions["ghga_received"] == 100
    response = await get(direct, server.url, memoryview(buffer))
    assert response.status_code == 206
    assert server.connections == 2
    await direct.aclose()


# --- the progress deadline (RateFloor) ---------------------------------------------


def _trickle(
    total: int = 1000, count: int = 200, delay: float = 0.02
) -> Callable[..., Awaitable[None]]:
    """A handler: a 206 head for ``total`` bytes, then one byte every ``delay`` s (``count`` bytes)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(
                f"HTTP/1.1 206 Partial Content\r\nContent-Length: {total}\r\n"
                f"Content-Range: bytes 0-{total - 1}/{total}\r\n\r\n".encode()
            )
            for _ in range(count):
                writer.write(b"x")
                await writer.drain()
                await asyncio.sleep(delay)
            await asyncio.sleep(5)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return handle


async def _endless_interim(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answers with ``100 Continue`` heads every 20 ms (at most 200 of them)."""
    try:
        await reader.readuntil(b"\r\n\r\n")
        for _ in range(200):
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await asyncio.sleep(0.02)
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def local_server() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    """Starts a handler on 127.0.0.1; yields a starter returning the object URL."""
    started: list[asyncio.Server] = []

    async def start(handler: Callable[..., Awaitable[None]]) -> str:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        started.append(server)
        return f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/bucket/object"

    yield start
    for server in started:
        server.close()


# 1000 bytes/s over 0.3 s: the trickle (50 bytes/s) falls short in its first window,
# while the read timeout (5 s) never fires; a loaded machine only makes it slower.
FLOOR = RateFloor(rate=1000, window=0.3)


@pytest.mark.parametrize("direct", [True, False], ids=["in-place", "httpx"])
async def test_a_trickling_range_is_abandoned_by_the_progress_deadline(
    local_server: Callable[..., Awaitable[str]], direct: bool
) -> None:
    url = await local_server(_trickle())
    standard = httpx.AsyncHTTPTransport()
    chosen: httpx.AsyncBaseTransport = transport(standard) if direct else standard
    async with httpx.AsyncClient(transport=chosen, timeout=5.0) as client:
        with pytest.raises(BodyBrokenError, match=r"less progress than 1000 bytes/s over 0\.3 s"):
            await ObjectStorageClient(client, FLOOR).get_range(
                url, 0, 1000, memoryview(bytearray(1000))
            )


@pytest.mark.parametrize(
    ("direct", "reason"),
    [(True, "RemoteProtocolError"), (False, "less progress")],
    ids=["in-place", "httpx"],
)
async def test_endless_interim_heads_abandon_the_range(
    local_server: Callable[..., Awaitable[str]], direct: bool, reason: str
) -> None:
    """In place: more than MAX_INTERIM_HEADS is a protocol error; through httpx the deadline."""
    url = await local_server(_endless_interim)
    standard = httpx.AsyncHTTPTransport()
    chosen: httpx.AsyncBaseTransport = transport(standard) if direct else standard
    async with httpx.AsyncClient(transport=chosen, timeout=5.0) as client:
        with pytest.raises(ServiceUnreachableError, match=reason):
            await ObjectStorageClient(client, FLOOR).get_range(
                url, 0, 1000, memoryview(bytearray(1000))
            )


async def test_more_interim_heads_than_allowed_are_a_protocol_error(serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n" * (MAX_INTERIM_HEADS + 1)
    server = await serve([(interim + ok(BODY[:10]), "keep")])
    with pytest.raises(httpx.RemoteProtocolError, match="interim"):
        await get(transport(), server.url, memoryview(bytearray(10)))


@pytest.mark.parametrize("direct", [True, False], ids=["in-place", "httpx"])
async def test_a_range_that_keeps_the_rate_is_not_abandoned(
    local_server: Callable[..., Awaitable[str]], direct: bool
) -> None:
    """Each full quota starts a new window: a range longer than one window completes."""
    url = await local_server(_trickle(total=30, count=30, delay=0.05))  # about 1.5 s
    floor = RateFloor(rate=1, window=1.0)  # a quota of 1 byte per second
    standard = httpx.AsyncHTTPTransport()
    chosen: httpx.AsyncBaseTransport = transport(standard) if direct else standard
    async with httpx.AsyncClient(transport=chosen, timeout=5.0) as client:
        buffer = bytearray(30)
        await ObjectStorageClient(client, floor).get_range(url, 0, 30, memoryview(buffer))
    assert bytes(buffer) == b"x" * 30
