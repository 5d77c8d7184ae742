"""Thread plumbing of the Data Hub step: read-ahead of S3 parts and bounded part uploads.

A reader thread per file fetches the next ``PART_SIZE``-byte ciphertext part while the
calling thread works on the current one; the re-encrypted parts go to a shared pool of
``UPLOAD_THREADS`` threads with at most ``PARTS_IN_FLIGHT`` parts queued or uploading.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from types import TracebackType
from typing import Any

from ghga_sandbox.c4gh import CIPHER_SEGMENT_SIZE
from ghga_sandbox.storage import S3Storage

__all__ = ["PARTS_IN_FLIGHT", "PART_SIZE", "SEGMENTS_PER_PART", "UPLOAD_THREADS"]

SEGMENTS_PER_PART = 128
"""Re-encrypted segments per S3 part: 128 × 65 564 B ≈ 8 MiB (> S3's 5 MiB minimum)."""
PART_SIZE = SEGMENTS_PER_PART * CIPHER_SEGMENT_SIZE
"""Bytes per S3 part, read and written: 8 392 192 (the last part may be shorter)."""
UPLOAD_THREADS = 4
"""Threads sending ``UploadPart`` requests (shared by the files of one run)."""
PARTS_IN_FLIGHT = 4
"""Re-encrypted parts queued or uploading at once (shared by the files of one run)."""


class _PartUploads:
    """Upload threads with a bound on parts in flight, shared by the files of one run.

    ``threads`` threads run the submitted part uploads; :meth:`submit` blocks while
    ``in_flight`` submitted parts are still queued or uploading, so at most
    ``in_flight`` parts (each up to ``PART_SIZE`` bytes) wait in memory.
    """

    def __init__(self, threads: int = UPLOAD_THREADS, in_flight: int = PARTS_IN_FLIGHT) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="datahub-upload")
        self._slots = threading.Semaphore(in_flight)

    def submit(self, function: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``function(*args)`` in an upload thread once a slot is free."""
        self._slots.acquire()
        try:
            future = self._pool.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(lambda _: self._slots.release())
        return future

    def __enter__(self) -> _PartUploads:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._pool.shutdown(wait=True)


class _PartWriter:
    """Writes ciphertext as a multipart upload, one ≤ ``PART_SIZE``-byte part per call.

    :meth:`write` hands the part to the shared upload threads and returns (blocking
    only while ``PARTS_IN_FLIGHT`` parts are in flight); the part's MD5 and SHA-256 are
    computed in the upload thread. :meth:`close` waits for all parts and completes the
    upload; :meth:`abort` cancels queued parts, waits for running ones and aborts it.
    """

    def __init__(self, storage: S3Storage, uploads: _PartUploads, bucket: str, key: str) -> None:
        self._storage = storage
        self._uploads = uploads
        self.bucket, self.key = bucket, key
        self._upload_id = storage.create_multipart_upload(bucket, key)
        self._parts: list[Future[tuple[str, str, str]]] = []
        self._failure: BaseException | None = None
        self.parts_md5: list[str] = []
        self.parts_sha256: list[str] = []
        self.size = 0

    def write(self, data: bytes | bytearray) -> None:
        """Upload ``data`` as the next part (in the background)."""
        if not data:
            return
        if self._failure is not None:  # an earlier part failed: stop early
            raise self._failure
        number = len(self._parts) + 1
        part = self._uploads.submit(self._upload, number, data)
        part.add_done_callback(self._note_failure)
        self._parts.append(part)
        self.size += len(data)

    def _note_failure(self, part: Future[tuple[str, str, str]]) -> None:
        if not part.cancelled() and part.exception() is not None and self._failure is None:
            self._failure = part.exception()

    def _upload(self, number: int, data: bytes | bytearray) -> tuple[str, str, str]:
        md5 = hashlib.md5(data, usedforsecurity=False).digest()
        etag = self._storage.upload_part(
            self.bucket, self.key, self._upload_id, number, data, content_md5=md5
        )
        return etag, md5.hex(), hashlib.sha256(data).hexdigest()

    def close(self) -> None:
        """Wait for every part, record the checksums, complete the multipart upload."""
        results = [part.result() for part in self._parts]
        self.parts_md5 = [md5 for _, md5, _ in results]
        self.parts_sha256 = [sha256 for _, _, sha256 in results]
        etags = [{"PartNumber": n, "ETag": etag} for n, (etag, _, _) in enumerate(results, 1)]
        self._storage.complete_multipart_upload(self.bucket, self.key, self._upload_id, etags)

    def abort(self) -> None:
        """Cancel queued parts, wait for running ones, abort the multipart upload."""
        for part in self._parts:
            part.cancel()
        wait(self._parts)
        self._storage.abort_multipart_upload(self.bucket, self.key, self._upload_id)


def _read_exact(stream: Any, size: int) -> bytes:
    """Read up to ``size`` bytes, fewer only at the end of the stream."""
    first = stream.read(size)
    if len(first) == size or not first:
        return bytes(first)
    chunks = [first]
    remaining = size - len(first)
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _ReadAhead:
    """Chunks of ``size`` bytes of a stream, the next one read by a thread of its own.

    At most one chunk is read ahead. :meth:`close` waits for a pending read, then
    closes the stream.
    """

    def __init__(self, stream: Any, size: int) -> None:
        self._stream, self._size = stream, size
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="datahub-read")
        self._next = self._pool.submit(_read_exact, stream, size)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self._next.result():
            self._next = self._pool.submit(_read_exact, self._stream, self._size)
            yield chunk

    def close(self) -> None:
        """Wait for the read in progress (its error does not matter now) and close."""
        self._pool.shutdown(wait=True)
        self._stream.close()
