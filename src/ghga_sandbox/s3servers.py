"""The S3 servers of the sandbox: embedded moto and the presign guard that injects S3 faults.

* :class:`EmbeddedS3` runs moto's S3 Flask app on a free loopback port in a thread of
  this process (:class:`ThreadedWsgiServer` is the plumbing it shares with the
  forwarding proxy in :mod:`ghga_sandbox.s3proxy`).
* moto itself ignores presigned-URL expiry, so :class:`PresignGuard` answers an expired
  presigned request with S3's ``403 AccessDenied`` ("Request has expired"), and injects
  S3 faults from the fault plan (:class:`S3FaultSource`).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

__all__ = [
    "EmbeddedS3",
    "PresignGuard",
    "S3FaultSource",
    "ThreadedWsgiServer",
    "presigned_expiry",
]

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class S3FaultSource(Protocol):
    """Where :class:`PresignGuard` asks whether to fail an S3 request."""

    def take_s3_fault(self, method: str) -> tuple[int, int | None] | None:
        """Return ``(status, retry_after)`` to fail this request with, or ``None``."""
        ...

    def take_s3_drop(self, method: str) -> int | None:
        """Return after how many body bytes to cut this request's connection, or ``None``."""
        ...

    def take_s3_range_shift(self, method: str) -> int | None:
        """Return by how many bytes to move this ranged request's range, or ``None``."""
        ...

    def take_s3_etag_forgery(self, method: str) -> bool:
        """Return whether to answer this part ``PUT`` with a wrong ``ETag``."""
        ...


def presigned_expiry(query: dict[str, list[str]]) -> float | None:
    """Expiry (epoch seconds) of a presigned request's query, or ``None`` if unsigned.

    SigV4: ``X-Amz-Date`` (``%Y%m%dT%H%M%SZ``) + ``X-Amz-Expires``; SigV2: ``Expires``.
    """
    if "X-Amz-Date" in query and "X-Amz-Expires" in query:
        signed = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        return signed.timestamp() + int(query["X-Amz-Expires"][0])
    if "Expires" in query and "Signature" in query:
        return float(query["Expires"][0])
    return None


def _s3_error(code: str, message: str) -> bytes:
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<RequestId>{request_id}</RequestId><HostId></HostId></Error>"
    ).encode()


def _cut_connection(environ: dict[str, Any]) -> None:
    """Shut the client socket down (both directions) without an HTTP answer."""
    sock = environ.get("werkzeug.socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    # werkzeug treats a ConnectionError as a dropped connection and writes nothing more
    raise ConnectionAbortedError("connection cut by the drop_connections fault")


def _drop_request_body(environ: dict[str, Any], after_bytes: int) -> Iterable[bytes]:
    """Read ``after_bytes`` of the request body, then cut the connection."""
    stream = environ["wsgi.input"]
    remaining = after_bytes
    while remaining > 0:
        chunk = stream.read(min(65536, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
    _cut_connection(environ)
    return []  # pragma: no cover - _cut_connection always raises


def _truncated(environ: dict[str, Any], body: Iterable[bytes], after_bytes: int) -> Iterator[bytes]:
    """Yield the first ``after_bytes`` of a response body, then cut the connection."""
    remaining = after_bytes
    try:
        yield b""  # make the server send the status line and headers
        for chunk in body:
            if remaining <= 0:
                break
            piece = chunk[:remaining]
            remaining -= len(piece)
            yield piece
    finally:
        close = getattr(body, "close", None)
        if close is not None:
            close()
    _cut_connection(environ)


def _shift_range(environ: dict[str, Any], shift: int | None) -> None:
    """Ask S3 for the same-length range ``shift`` bytes away (backwards if possible).

    S3 then answers 206 with a ``Content-Range`` of the bytes it really sends, which
    differs from what the client asked for (the ``wrong_content_range`` fault).
    """
    if not shift:
        return
    unit, _, spec = str(environ["HTTP_RANGE"]).partition("=")
    first, _, last = spec.partition("-")
    if unit.strip() != "bytes" or not first.isdigit() or not last.isdigit():
        return
    start, stop = int(first), int(last)
    moved = -shift if start >= shift else shift
    environ["HTTP_RANGE"] = f"bytes={start + moved}-{stop + moved}"


class PresignGuard:
    """WSGI middleware in front of S3: presigned-URL expiry and injected S3 faults.

    Only presigned requests (the ones clients send) are affected by faults; the
    sandbox's own boto3 calls pass through. Used in front of embedded moto and in
    front of the forwarding proxy (:mod:`ghga_sandbox.s3proxy`) for other back ends.
    """

    def __init__(
        self,
        app: WSGIApp,
        faults: S3FaultSource | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._app = app
        self._faults = faults
        self._clock = clock

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """Answer 403 for an expired presigned request, else pass it to moto."""
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            expiry = presigned_expiry(query)
        except ValueError:
            expiry = None
        if expiry is not None and self._clock() > expiry:
            body = _s3_error("AccessDenied", "Request has expired")
            start_response(
                "403 Forbidden",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if self._faults is not None and expiry is not None:
            fault = self._faults.take_s3_fault(environ.get("REQUEST_METHOD", "GET"))
            if fault is not None:
                status, retry_after = fault
                body = _s3_error("InternalError" if status >= 500 else "SlowDown", "Injected fault")
                headers = [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))]
                if retry_after is not None:
                    headers.append(("Retry-After", str(retry_after)))
                start_response(f"{status} Injected", headers)
                return [body]
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        if self._faults is not None and expiry is not None and environ.get("HTTP_RANGE"):
            _shift_range(environ, self._faults.take_s3_range_shift(method))
        if self._faults is not None and expiry is not None and method in {"GET", "PUT"}:
            after_bytes = self._faults.take_s3_drop(method)
            if after_bytes is not None:
                if method == "PUT":
                    return _drop_request_body(environ, after_bytes)
                return _truncated(environ, self._app(environ, start_response), after_bytes)
        if (
            self._faults is not None
            and expiry is not None
            and self._faults.take_s3_etag_forgery(method)
        ):
            return self._app(environ, _forging_etag(start_response))
        return self._app(environ, start_response)


#: The ``ETag`` the ``put_wrong_etag`` fault answers instead of the stored part's MD5.
FORGED_ETAG = '"00000000000000000000000000000000"'


def _forging_etag(start_response: Callable[..., Any]) -> Callable[..., Any]:
    """A ``start_response`` that replaces the answer's ``ETag`` (the part is stored intact)."""

    def forge(status: str, headers: list[tuple[str, str]], *args: Any) -> Any:
        headers = [(k, FORGED_ETAG if k.lower() == "etag" else v) for k, v in headers]
        return start_response(status, headers, *args)

    return forge


class ThreadedWsgiServer:
    """A WSGI app on ``host:<free port>``, served by werkzeug in a daemon thread.

    Subclasses give the app (:meth:`_make_app`), the request handler and a label. Use
    :meth:`start` and :meth:`stop`; :attr:`url` is the endpoint after start.
    """

    label = "server"

    def __init__(self, host: str = "127.0.0.1", faults: S3FaultSource | None = None) -> None:
        self._host = host
        self._faults = faults
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError(f"the {self.label} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def _make_app(self) -> Any:
        raise NotImplementedError

    def _request_handler(self) -> Any:
        from werkzeug.serving import WSGIRequestHandler

        return WSGIRequestHandler

    def start(self) -> None:
        """Bind a free port and serve in a daemon thread."""
        from werkzeug.serving import make_server

        self._server = make_server(
            self._host,
            0,
            self._make_app(),
            threaded=True,
            request_handler=self._request_handler(),
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=self.label, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Shut the server down and wait for its thread."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)


class EmbeddedS3(ThreadedWsgiServer):
    """moto's S3 server on ``127.0.0.1:<free port>`` in a daemon thread.

    Memory: moto keeps objects in spooled temporary files but assembles completed
    multipart objects in memory, so very large files need ``--s3 URL`` (e.g. MinIO).
    """

    label = "embedded S3 server"

    def _make_app(self) -> Any:
        from moto.moto_server.werkzeug_app import create_backend_app

        return PresignGuard(create_backend_app("s3"), self._faults)

    def _request_handler(self) -> Any:
        from moto.moto_server.werkzeug_app import MotoRequestHandler

        return MotoRequestHandler
