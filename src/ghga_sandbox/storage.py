"""Object storage client: the bucket layout and the boto3 calls the sandbox services make.

* Buckets per storage alias ``A`` (lower-cased): ``a-inbox``, ``a-interrogation``,
  ``a-permanent``, ``a-outbox`` (contract §6.1).
* Presigned URLs are SigV4, path-style (``endpoint/bucket/key``), on the S3 endpoint the
  client reaches (contract §3.5).

The S3 servers (embedded moto, the presign guard with the S3 faults) live in
:mod:`ghga_sandbox.s3servers`; their names are re-exported here for older imports.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable
from typing import Any, Literal

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import ClientError

from ghga_sandbox.s3servers import (
    EmbeddedS3,
    PresignGuard,
    S3FaultSource,
    ThreadedWsgiServer,
    presigned_expiry,
)

__all__ = [
    "BUCKET_KINDS",
    "BucketKind",
    "EmbeddedS3",
    "PresignGuard",
    "S3FaultSource",
    "S3Storage",
    "ThreadedWsgiServer",
    "bucket_name",
    "presigned_expiry",
]

BucketKind = Literal["inbox", "interrogation", "permanent", "outbox"]
BUCKET_KINDS: tuple[BucketKind, ...] = ("inbox", "interrogation", "permanent", "outbox")

SINGLE_COPY_LIMIT = 5 * 1024**3
"""S3's limit for a single ``CopyObject`` in bytes (5 GiB)."""
MIN_PART_SIZE = 5 * 1024**2
"""S3's smallest part of a multipart upload or copy, except the last, in bytes (5 MiB)."""
COPY_THRESHOLD = 256 * 1024**2
"""Objects of at least this many bytes are copied in parts (``UploadPartCopy``).

A single ``CopyObject`` of several GiB outlasts botocore's 60 s read timeout on
SeaweedFS, which answers only when the whole copy is done.
"""
COPY_PART_SIZE = 128 * 1024**2
"""Bytes per ``UploadPartCopy`` request (s3transfer enlarges it above 10 000 parts)."""
COPY_CONCURRENCY = 4
"""``UploadPartCopy`` requests at once per copied object."""
COPY_READ_TIMEOUT = 300
"""Seconds the copy client waits for an answer to one copy request (botocore: 60)."""


def bucket_name(storage_alias: str, kind: BucketKind) -> str:
    """The bucket of one kind for a storage alias, e.g. ``hd01-inbox``."""
    return f"{storage_alias.lower()}-{kind}"


class S3Storage:
    """The S3 operations the services use, over thread-safe boto3 clients.

    ``endpoint_url`` is where the sandbox itself talks to S3; ``public_url`` (default:
    the same) is the endpoint clients reach, e.g. the fault proxy in front of it:
    presigned URLs are signed for that host and :attr:`endpoint_url` reports it.
    :meth:`copy` copies objects of at least ``copy_threshold`` bytes in parts of
    ``copy_part_size`` bytes.

    Raises:
        ValueError: ``copy_threshold`` is above 5 GiB (S3's single-copy limit) or
            ``copy_part_size`` is below 5 MiB (S3's smallest part).
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        public_url: str | None = None,
        copy_threshold: int = COPY_THRESHOLD,
        copy_part_size: int = COPY_PART_SIZE,
    ) -> None:
        if copy_threshold > SINGLE_COPY_LIMIT:
            raise ValueError(f"copy_threshold must be at most {SINGLE_COPY_LIMIT} bytes")
        if copy_part_size < MIN_PART_SIZE:
            raise ValueError(f"copy_part_size must be at least {MIN_PART_SIZE} bytes")
        self.backend_url = endpoint_url
        self.endpoint_url = public_url or endpoint_url
        self.copy_config = TransferConfig(
            multipart_threshold=copy_threshold,
            multipart_chunksize=copy_part_size,
            max_concurrency=COPY_CONCURRENCY,
        )

        def client(url: str, *, bulk: bool = False, read_timeout: int | None = None) -> Any:
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
                    **({} if read_timeout is None else {"read_timeout": read_timeout}),
                ),
            )

        self._client: Any = client(endpoint_url)
        self._presigner: Any = (
            self._client if self.endpoint_url == endpoint_url else client(self.endpoint_url)
        )
        self._make_bulk_client: Callable[[], Any] = lambda: client(endpoint_url, bulk=True)
        self._bulk_client: Any = None
        self._bulk_lock = threading.Lock()
        self._make_copy_client: Callable[[], Any] = lambda: client(
            endpoint_url, read_timeout=COPY_READ_TIMEOUT
        )
        self._copy_client: Any = None

    def _bulk(self) -> Any:
        """The client for Data Hub part uploads, created on first use (thread-safe)."""
        with self._bulk_lock:
            if self._bulk_client is None:
                self._bulk_client = self._make_bulk_client()
            return self._bulk_client

    def _copier(self) -> Any:
        """The client for server-side copies (long read timeout), created on first use."""
        with self._bulk_lock:
            if self._copy_client is None:
                self._copy_client = self._make_copy_client()
            return self._copy_client

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
        """Server-side copy (boto3's managed copy, archival and staging), thread-safe.

        Below ``copy_threshold`` bytes one ``CopyObject``; from there a multipart copy,
        ``COPY_CONCURRENCY`` ``UploadPartCopy`` requests of ``copy_part_size`` bytes at
        once (each retried by botocore). The copy client waits ``COPY_READ_TIMEOUT``
        seconds per request, as S3 answers a copy only when it is done.

        Raises:
            botocore.exceptions.ClientError: S3 refused a request (e.g. no such source).
            botocore.exceptions.BotoCoreError: S3 was not reachable or did not answer.
        """
        source = {"Bucket": src_bucket, "Key": src_key}
        self._copier().copy(source, dst_bucket, dst_key, Config=self.copy_config)

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
