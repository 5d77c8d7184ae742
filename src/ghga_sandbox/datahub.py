"""The Data Hub and archival step (contract §6.4), as one sandbox worker.

Upstream this is the Data Hub file service plus FIS, EKSS and IFRS; here:

1. :meth:`DataHub.interrogate` — for an ``inbox`` upload: read the 124-byte envelope,
   open it with the storage alias's Data Hub secret key, stream-decrypt the segments
   and compare SHA-256 and size with the upload (mismatch or decryption error →
   ``failed`` with a reason); re-encrypt every segment with a **new** random secret
   into ``<alias>-interrogation`` under a new uuid4 key **without** header; store the
   secret; state ``interrogated``; delete the inbox object.
2. :meth:`DataHub.archive_box` — ``locked`` box without ``init``/``inbox`` uploads:
   ``interrogated`` → ``awaiting_archival`` → copy to ``<alias>-permanent`` under a new
   uuid4 → ``archived``; register a DRS object with a new accession.

What runs concurrently, and the bounds (sizes in bytes):

* **Within one file** (:meth:`DataHub.interrogate`): a reader thread fetches the next
  ciphertext part of ``PART_SIZE`` (128 cipher segments = 8 392 192 bytes) from S3
  while the calling thread decrypts, hashes (SHA-256) and re-encrypts the current one;
  each re-encrypted part goes to a pool of ``UPLOAD_THREADS`` (4) threads that compute
  its MD5 and SHA-256 and send it with ``UploadPart`` (with ``Content-MD5`` instead of
  a SigV4 payload hash, see :meth:`~ghga_sandbox.storage.S3Storage.upload_part`). At
  most ``PARTS_IN_FLIGHT`` (4) parts are queued or uploading at once; the calling
  thread waits for a free slot. Part numbers and the per-part MD5/SHA-256 lists follow
  the file order. On any error the parts in flight finish (or are cancelled), then the
  multipart upload is aborted.
* **Across files** (:meth:`DataHub.interrogate_many`, used by
  :meth:`DataHub.archive_everything`): up to ``FILES_IN_FLIGHT`` (3) uploads are
  interrogated at once, each with its own reader thread; they share the upload threads
  and the ``PARTS_IN_FLIGHT`` bound. State writes (secret, upload, box version) of one
  file happen together under :attr:`~ghga_sandbox.state.SandboxState.lock`.
* **Archival** (:meth:`DataHub.archive_box`): up to ``COPIES_IN_FLIGHT`` (4)
  server-side copies to permanent storage run at once; deleting the interrogation
  objects, allocating accessions and registering DRS objects then happen in upload
  (alias) order, so every file gets the accession it got when this was sequential.

Segment crypto uses ``cryptography``'s ChaCha20-Poly1305 (IETF, the Crypt4GH cipher:
12-byte nonce ‖ ciphertext ‖ 16-byte MAC per 65 536-byte plaintext segment), which,
like ``hashlib`` and socket I/O, releases the GIL, so these threads run in parallel.

Memory is bounded: per file being interrogated up to three parts (one being read,
one being decrypted, its re-encryption) plus ``PARTS_IN_FLIGHT`` parts in flight in
all, i.e. at most (3 × 3 + 4) × 8 392 192 bytes ≈ 109 MB (≈ 59 MB for a single file),
plus one 65 536-byte plaintext segment per file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ghga_sandbox.c4gh import (
    CIPHER_DIFF,
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    body_size,
    open_envelope,
)
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import DrsObject, FileUpload, now_utc
from ghga_sandbox.storage import S3Storage, bucket_name
from ghga_sandbox.uploads import (
    UploadController,
    box_not_found,
    box_state_error,
    incomplete_uploads,
)
from ghga_sandbox.workpackages import IssuedWorkPackage, WorkPackageService

__all__ = ["ArchiveReport", "DataHub", "FileOutcome", "file_extension"]

log = logging.getLogger(__name__)

SEGMENTS_PER_PART = 128
"""Re-encrypted segments per S3 part: 128 × 65 564 B ≈ 8 MiB (> S3's 5 MiB minimum)."""
PART_SIZE = SEGMENTS_PER_PART * CIPHER_SEGMENT_SIZE
"""Bytes per S3 part, read and written: 8 392 192 (the last part may be shorter)."""
UPLOAD_THREADS = 4
"""Threads sending ``UploadPart`` requests (shared by the files of one run)."""
PARTS_IN_FLIGHT = 4
"""Re-encrypted parts queued or uploading at once (shared by the files of one run)."""
FILES_IN_FLIGHT = 3
"""Uploads interrogated at once by :meth:`DataHub.interrogate_many`."""
COPIES_IN_FLIGHT = 4
"""Server-side copies to permanent storage at once in :meth:`DataHub.archive_box`."""
NONCE_SIZE = 12
"""ChaCha20-Poly1305 (IETF) nonce bytes at the start of every cipher segment."""

COMPRESSION_SUFFIXES = frozenset({".gz", ".bgz", ".bz2", ".xz", ".zst", ".zip"})


def file_extension(alias: str) -> str:
    """The extension WPS lists for a file: ``.bam``, or ``.vcf.gz`` for compressed files."""
    suffixes = PurePosixPath(alias).suffixes
    if not suffixes:
        return ""
    if suffixes[-1].lower() in COMPRESSION_SUFFIXES and len(suffixes) >= 2:
        return "".join(suffixes[-2:])
    return suffixes[-1]


class InterrogationError(Exception):
    """The upload does not decrypt, or its content does not match what was declared."""


@dataclass(frozen=True)
class FileOutcome:
    """One upload after the step: its final state and, if archived, its accession."""

    file_id: str
    box_id: str
    alias: str
    state: str
    decrypted_size: int
    accession: str | None = None
    failure_reason: str | None = None


@dataclass
class ArchiveReport:
    """Result of :meth:`DataHub.archive_everything`."""

    files: list[FileOutcome] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    download: IssuedWorkPackage | None = None

    @property
    def failed(self) -> bool:
        """Whether any upload failed in this run."""
        return any(f.state == "failed" for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """JSON body of ``POST /admin/archive``."""
        return {
            "boxes": self.boxes,
            "files": [f.__dict__ for f in self.files],
            "failed": self.failed,
            "download_work_package_id": None if self.download is None else self.download.package.id,
            "download_access_token": None if self.download is None else self.download.access_token,
        }


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


class _Reencryptor:
    """Decrypts Crypt4GH cipher segments with one key and encrypts them with another.

    Standard Crypt4GH segments (12-byte nonce ‖ ciphertext ‖ 16-byte MAC; a fresh
    random nonce per output segment) through ``cryptography``'s ChaCha20-Poly1305,
    which releases the GIL. Feeds the plaintext to :attr:`digest` (SHA-256) and counts
    it in :attr:`decrypted`. One 65 536-byte plaintext buffer per instance.
    """

    def __init__(self, data_key: bytes, new_secret: bytes) -> None:
        self._open = ChaCha20Poly1305(data_key)
        self._seal = ChaCha20Poly1305(new_secret)
        self._into = hasattr(self._open, "decrypt_into")  # cryptography >= 45
        self._plain = bytearray(SEGMENT_SIZE)
        self.digest = hashlib.sha256()
        self.decrypted = 0

    def part(self, chunk: bytes) -> bytearray:
        """Re-encrypt whole cipher segments (the last one may be short), same size out.

        Raises :class:`ValueError` if a segment is too short or its MAC does not verify.
        """
        source = memoryview(chunk)
        out = bytearray(len(chunk))
        target = memoryview(out)
        nonces = os.urandom(NONCE_SIZE * -(-len(chunk) // CIPHER_SEGMENT_SIZE))
        for index, offset in enumerate(range(0, len(chunk), CIPHER_SEGMENT_SIZE)):
            segment = source[offset : offset + CIPHER_SEGMENT_SIZE]
            length = len(segment) - CIPHER_DIFF
            plain = self._decrypt(segment, length)
            self.digest.update(plain)
            self.decrypted += length
            nonce = nonces[index * NONCE_SIZE : (index + 1) * NONCE_SIZE]
            sealed = target[offset : offset + len(segment)]
            sealed[:NONCE_SIZE] = nonce
            if self._into:
                self._seal.encrypt_into(nonce, plain, None, sealed[NONCE_SIZE:])
            else:  # pragma: no cover - older cryptography
                sealed[NONCE_SIZE:] = self._seal.encrypt(nonce, plain, None)
        return out

    def _decrypt(self, segment: memoryview, length: int) -> memoryview | bytes:
        try:
            if length <= 0:  # as libsodium: a segment needs at least one plaintext byte
                raise ValueError("segment too short")
            nonce, sealed = segment[:NONCE_SIZE], segment[NONCE_SIZE:]
            if self._into:
                plain = memoryview(self._plain)[:length]
                self._open.decrypt_into(nonce, sealed, None, plain)
                return plain
            return self._open.decrypt(nonce, sealed, None)  # pragma: no cover - older cryptography
        except Exception as error:
            raise ValueError("segment does not decrypt with this data key") from error


class DataHub:
    """Interrogation, re-encryption and archival over the runtime's state and storage."""

    def __init__(self, runtime: Runtime, controller: UploadController) -> None:
        self._rt = runtime
        self._controller = controller

    # --- interrogation -------------------------------------------------------------------

    def interrogate(self, upload: FileUpload) -> FileUpload:
        """Check and re-encrypt one ``inbox`` upload; return it ``interrogated`` or ``failed``.

        Pipelined within the file (see the module docstring): one reader thread, up to
        ``UPLOAD_THREADS`` upload threads and ``PARTS_IN_FLIGHT`` parts in flight.
        """
        if upload.state != "inbox":
            return upload
        with _PartUploads() as uploads:
            return self._interrogate(upload, uploads)

    def interrogate_many(self, uploads: Sequence[FileUpload]) -> list[FileUpload]:
        """:meth:`interrogate` for several uploads, ``FILES_IN_FLIGHT`` at a time.

        The files share ``UPLOAD_THREADS`` upload threads and the ``PARTS_IN_FLIGHT``
        bound. Returns the results in the order of ``uploads`` (non-``inbox`` uploads
        unchanged). If one raises (anything but a failed check, e.g. an S3 error),
        uploads not started yet stay as they are, the running ones finish, and the
        error of the first such upload in ``uploads`` order is raised.
        """
        todo = [u for u in uploads if u.state == "inbox"]
        if len(todo) <= 1:
            return [self.interrogate(u) for u in uploads]
        with (
            _PartUploads() as parts,
            ThreadPoolExecutor(
                max_workers=min(FILES_IN_FLIGHT, len(todo)), thread_name_prefix="datahub-file"
            ) as files,
        ):
            running = {u.id: files.submit(self._interrogate, u, parts) for u in todo}
            wait(running.values(), return_when=FIRST_EXCEPTION)
            if any(f.done() and not f.cancelled() and f.exception() for f in running.values()):
                for future in running.values():
                    future.cancel()
                wait(running.values())
                for future in running.values():
                    if not future.cancelled() and future.exception() is not None:
                        future.result()  # raises
            return [running[u.id].result() if u.id in running else u for u in uploads]

    def _interrogate(self, upload: FileUpload, uploads: _PartUploads) -> FileUpload:
        started = time.monotonic()
        state = self._rt.state
        try:
            new_key, secret, writer = self._reencrypt(upload, uploads)
        except InterrogationError as error:
            failed = upload.with_state("failed", failure_reason=str(error))
            with state.lock:
                state.put_upload(failed)
                state.bump_box_version(upload.box_id)
            self._rt.storage.delete(upload.bucket_id, upload.object_id)
            log.debug("upload %s failed the Data Hub check: %s", upload.id, error)
            return failed
        with state.lock:
            secret_id = state.put_secret(secret)
            interrogated = upload.with_state(
                "interrogated",
                bucket_id=writer.bucket,
                object_id=new_key,
                encrypted_size=writer.size,
                encrypted_parts_md5=writer.parts_md5,
                encrypted_parts_sha256=writer.parts_sha256,
                secret_id=secret_id,
            )
            state.put_upload(interrogated)
            state.bump_box_version(upload.box_id)
        self._rt.storage.delete(upload.bucket_id, upload.object_id)
        log.debug(
            "interrogated upload %s (%d bytes) in %.2f s",
            upload.id,
            upload.decrypted_size,
            time.monotonic() - started,
        )
        return interrogated

    def _reencrypt(
        self, upload: FileUpload, uploads: _PartUploads
    ) -> tuple[str, bytes, _PartWriter]:
        storage = self._rt.storage
        hub_key = self._rt.state.datahub_key(upload.storage_alias)
        try:
            envelope = storage.read_range(upload.bucket_id, upload.object_id, 0, ENVELOPE_SIZE - 1)
            data_key = open_envelope(envelope, hub_key.secret)
        except (ValueError, ClientError, BotoCoreError) as error:
            raise InterrogationError(f"Cannot open the Crypt4GH envelope: {error}") from error
        new_secret = secrets.token_bytes(32)
        new_key = str(uuid.uuid4())
        bucket = bucket_name(upload.storage_alias, "interrogation")
        writer = _PartWriter(storage, uploads, bucket, new_key)
        crypto = _Reencryptor(data_key, new_secret)
        try:
            stream = storage.open_stream(upload.bucket_id, upload.object_id, ENVELOPE_SIZE)
        except BaseException:
            writer.abort()
            raise
        chunks = _ReadAhead(stream, PART_SIZE)
        try:
            # one S3 read per part: SEGMENTS_PER_PART cipher segments in, the same out
            for chunk in chunks:
                writer.write(crypto.part(chunk))
            decrypted = crypto.decrypted
            if decrypted != upload.decrypted_size:
                raise InterrogationError(
                    f"Decrypted size {decrypted} differs from the declared {upload.decrypted_size}"
                )
            if crypto.digest.hexdigest() != upload.decrypted_sha256:
                raise InterrogationError("Decrypted content checksum mismatch (SHA-256)")
            if writer.size != body_size(decrypted):  # pragma: no cover - format invariant
                raise InterrogationError("Re-encrypted size is inconsistent")
            writer.close()
        except ValueError as error:
            writer.abort()
            raise InterrogationError(f"Decryption failed: {error}") from error
        except BaseException:
            writer.abort()
            raise
        finally:
            chunks.close()
        return new_key, new_secret, writer

    # --- archival --------------------------------------------------------------------

    def archive_box(self, box_id: str) -> list[FileOutcome]:
        """``locked`` → ``archived``; register every ``interrogated`` upload as a DRS object.

        Up to ``COPIES_IN_FLIGHT`` server-side copies run at once; each file's source is
        deleted and its accession allocated in upload (alias) order once its copy is
        done. If a copy or delete fails, the files before it stay archived, the error
        is raised, and copies of the files after it are removed again (they stay
        ``awaiting_archival``, as when the copies ran one by one).
        """
        state, storage = self._rt.state, self._rt.storage
        with state.lock:
            box = state.get_box(box_id)
            if box is None:
                raise box_not_found(box_id)
            if box.state != "locked":
                raise box_state_error(box)
            uploads = state.list_uploads(box_id)
            blocking = [u for u in uploads if u.state in {"init", "inbox"}]
            if blocking:
                raise incomplete_uploads(box_id, blocking)
            waiting = [
                u.with_state("awaiting_archival") for u in uploads if u.state == "interrogated"
            ]
            for upload in waiting:
                state.put_upload(upload)
            state.set_box_state(box_id, "archived")
        outcomes: list[FileOutcome] = []
        if not waiting:
            return outcomes
        permanent_keys = [str(uuid.uuid4()) for _ in waiting]
        with ThreadPoolExecutor(
            max_workers=min(COPIES_IN_FLIGHT, len(waiting)), thread_name_prefix="datahub-copy"
        ) as pool:
            copies = [
                pool.submit(
                    storage.copy,
                    upload.bucket_id,
                    upload.object_id,
                    bucket_name(upload.storage_alias, "permanent"),
                    key,
                )
                for upload, key in zip(waiting, permanent_keys, strict=True)
            ]
            moved = 0  # files whose source is deleted: their copy is the only one left
            try:
                for upload, permanent_key, copy in zip(
                    waiting, permanent_keys, copies, strict=True
                ):
                    copy.result()
                    storage.delete(upload.bucket_id, upload.object_id)
                    moved += 1
                    outcomes.append(self._register(upload, permanent_key))
            except BaseException:
                _discard_unregistered(storage, waiting, permanent_keys, copies, keep=moved)
                raise
        return outcomes

    def _register(self, upload: FileUpload, permanent_key: str) -> FileOutcome:
        """Allocate an accession, register the DRS object, set the upload ``archived``."""
        state = self._rt.state
        with state.lock:
            accession = state.next_accession()
            assert upload.secret_id is not None and upload.decrypted_sha256 is not None
            state.put_drs_object(
                DrsObject(
                    accession=accession,
                    file_id=upload.id,
                    secret_id=upload.secret_id,
                    decrypted_sha256=upload.decrypted_sha256,
                    decrypted_size=upload.decrypted_size,
                    encrypted_size=upload.encrypted_size,
                    creation_date=now_utc(),
                    storage_alias=upload.storage_alias,
                    object_id=permanent_key,
                    extension=file_extension(upload.alias),
                )
            )
            archived = upload.with_state(
                "archived",
                bucket_id=bucket_name(upload.storage_alias, "permanent"),
                object_id=permanent_key,
            )
            state.put_upload(archived)
        return _outcome(archived, accession)

    def archive_everything(self, user_public_key: str | None) -> ArchiveReport:
        """The ``ghga-sandbox archive`` step for every box with work to do.

        For each ``open``/``locked`` box holding ``inbox`` or ``interrogated`` uploads:
        lock it (cancelling ``init`` uploads), interrogate its ``inbox`` uploads (up to
        ``FILES_IN_FLIGHT`` at once, see :meth:`interrogate_many`), archive it. Then, with ``user_public_key``, create a download work package over all
        archived accessions.
        """
        report = ArchiveReport()
        for box in self._rt.state.list_boxes():
            if box.state == "archived":
                continue
            uploads = self._rt.state.list_uploads(box.id)
            if not any(u.state in {"inbox", "interrogated"} for u in uploads):
                continue
            for upload in uploads:
                if upload.state == "init":
                    report.files.append(_outcome(self._controller.cancel(upload)))
            self._controller.lock_box(box.id, force=True)
            inbox = [u for u in self._rt.state.list_uploads(box.id) if u.state == "inbox"]
            for result in self.interrogate_many(inbox):
                if result.state == "failed":
                    report.files.append(_outcome(result))
            report.files.extend(self.archive_box(box.id))
            report.boxes.append(box.id)
        if user_public_key is not None:
            report.download = self.download_package(user_public_key)
        return report

    def download_package(
        self, user_public_key: str, accessions: list[str] | None = None
    ) -> IssuedWorkPackage | None:
        """A download work package over ``accessions`` (default: all archived files).

        Returns ``None`` if there is nothing to download. Unknown accessions are listed
        anyway (their WOT requests then get 403 "File not available for download").
        """
        objects = {o.accession: o for o in self._rt.state.list_drs_objects()}
        chosen = list(objects) if accessions is None else accessions
        if not chosen:
            return None
        files = {a: objects[a].extension if a in objects else "" for a in chosen}
        return WorkPackageService(self._rt).create(
            type_="download", user_public_key=user_public_key, files=files
        )


def _outcome(upload: FileUpload, accession: str | None = None) -> FileOutcome:
    return FileOutcome(
        file_id=upload.id,
        box_id=upload.box_id,
        alias=upload.alias,
        state=upload.state,
        decrypted_size=upload.decrypted_size,
        accession=accession,
        failure_reason=upload.failure_reason,
    )


def _discard_unregistered(
    storage: S3Storage,
    waiting: Sequence[FileUpload],
    permanent_keys: Sequence[str],
    copies: Sequence[Future[None]],
    *,
    keep: int,
) -> None:
    """After a failed archival: cancel pending copies, delete finished unneeded ones.

    The first ``keep`` copies stay (their sources are deleted already); the copies of
    the files after them are removed again (best effort).
    """
    for copy in copies:
        copy.cancel()
    wait(copies)
    for upload, key, copy in list(zip(waiting, permanent_keys, copies, strict=True))[keep:]:
        if not copy.cancelled() and copy.exception() is None:
            with suppress(ClientError, BotoCoreError):
                storage.delete(bucket_name(upload.storage_alias, "permanent"), key)
