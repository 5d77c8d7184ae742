"""A forwarding proxy in front of an external S3 endpoint (SeaweedFS or ``--s3 URL``).

Clients get presigned URLs on the proxy's address; the proxy passes every request on
to the real S3 unchanged, including the ``Host`` header the URL was signed for, so the
back end's SigV4 check and expiry check stay real. In front of the forwarder sits the
same :class:`~ghga_sandbox.s3servers.PresignGuard` as in front of embedded moto, so the
S3 fault switches (status answers, dropped connections, expiry) apply to every back end.

Bodies are streamed in 1 MiB (request) and 256 KiB (response) chunks; one upstream connection per
request (loopback, so connection set-up is cheap).
"""

from __future__ import annotations

import http.client
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from ghga_sandbox.s3servers import PresignGuard, S3FaultSource, ThreadedWsgiServer

__all__ = ["ForwardingApp", "S3ProxyServer"]

REQUEST_CHUNK = 1 << 20
RESPONSE_CHUNK = 1 << 18
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
UPSTREAM_TIMEOUT = 300.0


class ForwardingApp:
    """WSGI app that forwards each request to ``upstream`` (``http://host:port``)."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {upstream!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)

    def _connection(self) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=UPSTREAM_TIMEOUT)
        return http.client.HTTPConnection(self._host, self._port, timeout=UPSTREAM_TIMEOUT)

    @staticmethod
    def _request_headers(environ: dict[str, Any]) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                name = key[5:].replace("_", "-").lower()
                if name not in HOP_BY_HOP and name != "content-length":
                    headers.append((name, str(value)))
        if environ.get("CONTENT_TYPE"):
            headers.append(("content-type", str(environ["CONTENT_TYPE"])))
        return headers

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Forward one request and stream the answer back."""
        method = str(environ["REQUEST_METHOD"])
        target = str(environ.get("RAW_URI") or environ.get("REQUEST_URI") or "")
        if not target:
            target = str(environ.get("PATH_INFO", "/"))
            if environ.get("QUERY_STRING"):
                target += "?" + str(environ["QUERY_STRING"])
        stream = environ["wsgi.input"]
        length_header = environ.get("CONTENT_LENGTH")
        body: bytes | None = None
        if length_header:
            length = int(length_header)
        elif environ.get("wsgi.input_terminated"):
            body = stream.read()  # a chunked request body, de-chunked by the server
            length = len(body)
        else:
            length = 0

        connection = self._connection()
        try:
            connection.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in self._request_headers(environ):
                connection.putheader(name, value)
            if length or method in {"PUT", "POST"}:
                connection.putheader("content-length", str(length))
            connection.endheaders()
            if body is not None:
                connection.send(body)
            else:
                remaining = length
                while remaining > 0:
                    chunk = stream.read(min(REQUEST_CHUNK, remaining))
                    if not chunk:
                        break
                    connection.send(chunk)
                    remaining -= len(chunk)
            response = connection.getresponse()
        except Exception:
            connection.close()
            raise
        headers = [
            (name, value) for name, value in response.getheaders() if name.lower() not in HOP_BY_HOP
        ]
        start_response(f"{response.status} {response.reason}", headers)
        return self._stream(connection, response)

    @staticmethod
    def _stream(
        connection: http.client.HTTPConnection, response: http.client.HTTPResponse
    ) -> Iterator[bytes]:
        try:
            while chunk := response.read(RESPONSE_CHUNK):
                yield chunk
        finally:
            response.close()
            connection.close()


class S3ProxyServer(ThreadedWsgiServer):
    """:class:`ForwardingApp` behind :class:`PresignGuard` on ``host:<free port>``."""

    label = "S3 proxy"

    def __init__(
        self, upstream: str, host: str = "127.0.0.1", faults: S3FaultSource | None = None
    ) -> None:
        super().__init__(host, faults)
        self.upstream = upstream

    def _make_app(self) -> Any:
        return PresignGuard(ForwardingApp(self.upstream), self._faults)

    def _request_handler(self) -> Any:
        from werkzeug.serving import WSGIRequestHandler

        class QuietHandler(WSGIRequestHandler):
            def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
                return

        return QuietHandler
