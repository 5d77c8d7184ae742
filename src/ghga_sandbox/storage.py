"""Object storage: bucket layout, boto3 calls, and the embedded moto S3 server.

* Buckets per storage alias ``A`` (lower-cased): ``a-inbox``, ``a-interrogation``,
  ``a-permanent``, ``a-outbox`` (contract §6.1).
* Presigned URLs are SigV4, path-style (``endpoint/bucket/key``), on the S3 endpoint the
  client reaches (contract §3.5).
* :class:`EmbeddedS3` runs moto's S3 Flask app on a free loopback port in a thread of
  this process. moto itself ignores presigned-URL expiry, so :class:`PresignGuard`
  answers an expired presigned request with S3's ``403 AccessDenied`` ("Request has
  expired"), and injects S3 faults from the fault plan.
"""

from __future__ import annotations

import base64
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = [
    "BucketKind",
    "EmbeddedS3",
    "PresignGuard",
    "S3Storage",
    "bucket_name",
]

BucketKind = Literal["inbox", "interrogation", "permanent", "outbox"]
BUCKET_KINDS: tuple[BucketKind, ...] = ("inbox", "interrogation", "permanent", "outbox")

SINGLE_COPY_LIMIT = 5 * 1024**3
"""S3's limit for a single ``CopyObject`` in bytes (5 GiB)."""

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def bucket_name(storage_alias: str, kind: BucketKind) -> str:
    """The bucket of one kind for a storage alias, e.g. ``hd01-inbox``."""
    return f"{storage_alias.lower()}-{kind}"


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
        return self._app(environ, start_response)


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


class S3Storage:
    """The S3 operations the services use, over thread-safe boto3 clients.

    ``endpoint_url`` is where the sandbox itself talks to S3; ``public_url`` (default:
    the same) is the endpoint clients reach, e.g. the fault proxy in front of it:
    presigned URLs are signed for that host and :attr:`endpoint_url` reports it.
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        public_url: str | None = None,
    ) -> None:
        self.backend_url = endpoint_url
        self.endpoint_url = public_url or endpoint_url

        def client(url: str, *, bulk: bool = False) -> Any:
            s3: dict[str, Any] = {"addressing_style": "path"}
            checksums: dict[str, Any] = {}
            if bulk:
                # parts sent with Content-MD5: no SigV4 payload SHA-256, no extra CRC32
                s3["payload_signing_enabled"] = False
                if "request_checksum_calculation" in Config.OPTION_DEFAULTS:  # botocore 1.36+
                    checksums["request_checksum_calculation"] = "when_required"
            return boto3.client(
                "s3",
                endpoint_url=url,
                region_name=region,
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                config=Config(
                    signature_version="s3v4",
                    s3=s3,
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=32,
                    **checksums,
                ),
            )

        self._client: Any = client(endpoint_url)
        self._presigner: Any = (
            self._client if self.endpoint_url == endpoint_url else client(self.endpoint_url)
        )
        self._make_bulk_client: Callable[[], Any] = lambda: client(endpoint_url, bulk=True)
        self._bulk_client: Any = None
        self._bulk_lock = threading.Lock()

    def _bulk(self) -> Any:
        """The client for Data Hub part uploads, created on first use (thread-safe)."""
        with self._bulk_lock:
            if self._bulk_client is None:
                self._bulk_client = self._make_bulk_client()
            return self._bulk_client

    def ensure_buckets(self, storage_aliases: Iterable[str]) -> None:
        """Create the four buckets of every storage alias unless they exist."""
        for alias in storage_aliases:
            for kind in BUCKET_KINDS:
                name = bucket_name(alias, kind)
                try:
                    self._client.head_bucket(Bucket=name)
                except ClientError:
                    self._client.create_bucket(Bucket=name)

    # --- multipart uploads ---------------------------------------------------------

    def create_multipart_upload(self, bucket: str, key: str) -> str:
        """``CreateMultipartUpload``; return the upload id."""
        return str(self._client.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"])

    def active_uploads(self, bucket: str, key: str) -> list[str]:
        """Upload ids of unfinished multipart uploads of exactly ``key``."""
        response = self._client.list_multipart_uploads(Bucket=bucket, Prefix=key)
        return [u["UploadId"] for u in response.get("Uploads", []) if u["Key"] == key]

    def presign_upload_part(
        self, bucket: str, key: str, upload_id: str, part_no: int, expires_in: int
    ) -> str:
        """Presigned ``UploadPart`` URL valid ``expires_in`` seconds."""
        return str(
            self._presigner.generate_presigned_url(
                "upload_part",
                Params={"Bucket": bucket, "Key": key, "UploadId": upload_id, "PartNumber": part_no},
                ExpiresIn=expires_in,
            )
        )

    def upload_part(
        self,
        bucket: str,
        key: str,
        upload_id: str,
        part_no: int,
        data: bytes | bytearray,
        *,
        content_md5: bytes | None = None,
    ) -> str:
        """Upload one part directly (Data Hub step); return its ETag without quotes.

        With ``content_md5`` (the 16-byte MD5 digest of ``data``) the part is sent with
        a ``Content-MD5`` header, which S3 checks, instead of a SigV4 payload SHA-256
        and a CRC32 checksum: the same part for less client CPU. Thread-safe: the Data
        Hub sends several parts at once from its upload threads.
        """
        if content_md5 is None:
            client = self._client
            extra: dict[str, Any] = {}
        else:
            client = self._bulk()
            extra = {"ContentMD5": base64.b64encode(content_md5).decode()}
        response = client.upload_part(
            Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=part_no, Body=data, **extra
        )
        return str(response["ETag"]).strip('"')

    def list_parts(self, bucket: str, key: str, upload_id: str) -> list[dict[str, Any]]:
        """All parts of a multipart upload: ``PartNumber``, ``ETag``, ``Size``."""
        parts: list[dict[str, Any]] = []
        marker = 0
        while True:
            response = self._client.list_parts(
                Bucket=bucket, Key=key, UploadId=upload_id, PartNumberMarker=marker
            )
            parts.extend(response.get("Parts", []))
            if not response.get("IsTruncated"):
                return parts
            marker = int(response["NextPartNumberMarker"])

    def complete_multipart_upload(
        self, bucket: str, key: str, upload_id: str, parts: list[dict[str, Any]]
    ) -> None:
        """``CompleteMultipartUpload`` with the given ``PartNumber``/``ETag`` list."""
        self._client.complete_multipart_upload(
            Bucket=bucket,
            Key=key,
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in parts]
            },
        )

    def abort_multipart_upload(self, bucket: str, key: str, upload_id: str) -> None:
        """``AbortMultipartUpload``; a missing upload is not an error."""
        try:
            self._client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in {"NoSuchUpload", "404"}:
                raise

    def abort_all(self, bucket: str, key: str) -> None:
        """Abort every unfinished multipart upload of ``key``."""
        for upload_id in self.active_uploads(bucket, key):
            self.abort_multipart_upload(bucket, key, upload_id)

    # --- objects -------------------------------------------------------------------

    def head(self, bucket: str, key: str) -> dict[str, Any] | None:
        """``HeadObject`` result, or ``None`` if the object does not exist."""
        try:
            return dict(self._client.head_object(Bucket=bucket, Key=key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"404", "NoSuchKey", "NotFound"}:
                return None
            raise

    def delete(self, bucket: str, key: str) -> None:
        """Delete an object (idempotent)."""
        self._client.delete_object(Bucket=bucket, Key=key)

    def read_range(self, bucket: str, key: str, start: int, end: int) -> bytes:
        """Bytes ``start..end`` (inclusive) of an object."""
        response = self._client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")
        return bytes(response["Body"].read())

    def open_stream(self, bucket: str, key: str, start: int = 0) -> Any:
        """A streaming body of the object from byte ``start``; call ``.read(n)``/``.close()``."""
        kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
        if start:
            kwargs["Range"] = f"bytes={start}-"
        return self._client.get_object(**kwargs)["Body"]

    def copy(self, src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        """Server-side copy: one ``CopyObject`` up to 5 GiB, else a managed multipart copy."""
        source = {"Bucket": src_bucket, "Key": src_key}
        head = self._client.head_object(**source)
        if int(head["ContentLength"]) <= SINGLE_COPY_LIMIT:
            self._client.copy_object(CopySource=source, Bucket=dst_bucket, Key=dst_key)
        else:
            self._client.copy(source, dst_bucket, dst_key)

    def swap_segments(self, bucket: str, key: str, segment_size: int) -> bool:
        """Rewrite an object with its first two ``segment_size``-byte segments swapped.

        Returns False (object unchanged) if it has fewer than two whole segments.
        """
        body = bytes(self._client.get_object(Bucket=bucket, Key=key)["Body"].read())
        if len(body) < 2 * segment_size:
            return False
        swapped = (
            body[segment_size : 2 * segment_size] + body[:segment_size] + body[2 * segment_size :]
        )
        self._client.put_object(Bucket=bucket, Key=key, Body=swapped)
        return True

    def presign_get(self, bucket: str, key: str, expires_in: int) -> str:
        """Presigned ``GetObject`` URL valid ``expires_in`` seconds."""
        return str(
            self._presigner.generate_presigned_url(
                "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=expires_in
            )
        )
