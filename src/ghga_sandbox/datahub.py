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

Memory is bounded: one ciphertext segment plus one S3 part buffer (about 8 MiB).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ghga_sandbox.c4gh import (
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    body_size,
    decrypt_segment,
    encrypt_segment,
    open_envelope,
)
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import DrsObject, FileUpload, now_utc
from ghga_sandbox.storage import bucket_name
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


class _PartWriter:
    """Writes ciphertext as ~8 MiB multipart parts; tracks MD5/SHA-256 per part.

    The caller fills :attr:`buffer` (``SEGMENTS_PER_PART`` cipher segments) and calls
    :meth:`flush` with the number of bytes used.
    """

    def __init__(self, runtime: Runtime, bucket: str, key: str) -> None:
        self._storage = runtime.storage
        self.bucket, self.key = bucket, key
        self._upload_id = self._storage.create_multipart_upload(bucket, key)
        self.buffer = bytearray(SEGMENTS_PER_PART * CIPHER_SEGMENT_SIZE)
        self._etags: list[dict[str, Any]] = []
        self.parts_md5: list[str] = []
        self.parts_sha256: list[str] = []
        self.size = 0

    def flush(self, used: int) -> None:
        """Upload ``buffer[:used]`` as the next part."""
        if used == 0:
            return
        data = bytes(memoryview(self.buffer)[:used])
        number = len(self._etags) + 1
        etag = self._storage.upload_part(self.bucket, self.key, self._upload_id, number, data)
        self._etags.append({"PartNumber": number, "ETag": etag})
        self.parts_md5.append(hashlib.md5(data, usedforsecurity=False).hexdigest())
        self.parts_sha256.append(hashlib.sha256(data).hexdigest())
        self.size += used

    def close(self) -> None:
        """Complete the multipart upload."""
        self._storage.complete_multipart_upload(self.bucket, self.key, self._upload_id, self._etags)

    def abort(self) -> None:
        """Abort the multipart upload."""
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


class DataHub:
    """Interrogation, re-encryption and archival over the runtime's state and storage."""

    def __init__(self, runtime: Runtime, controller: UploadController) -> None:
        self._rt = runtime
        self._controller = controller

    # --- interrogation -------------------------------------------------------------------

    def interrogate(self, upload: FileUpload) -> FileUpload:
        """Check and re-encrypt one ``inbox`` upload; return it ``interrogated`` or ``failed``."""
        if upload.state != "inbox":
            return upload
        try:
            new_key, secret, writer = self._reencrypt(upload)
        except InterrogationError as error:
            failed = upload.with_state("failed", failure_reason=str(error))
            self._rt.state.put_upload(failed)
            self._rt.state.bump_box_version(upload.box_id)
            self._rt.storage.delete(upload.bucket_id, upload.object_id)
            return failed
        secret_id = self._rt.state.put_secret(secret)
        interrogated = upload.with_state(
            "interrogated",
            bucket_id=writer.bucket,
            object_id=new_key,
            encrypted_size=writer.size,
            encrypted_parts_md5=writer.parts_md5,
            encrypted_parts_sha256=writer.parts_sha256,
            secret_id=secret_id,
        )
        self._rt.state.put_upload(interrogated)
        self._rt.state.bump_box_version(upload.box_id)
        self._rt.storage.delete(upload.bucket_id, upload.object_id)
        return interrogated

    def _reencrypt(self, upload: FileUpload) -> tuple[str, bytes, _PartWriter]:
        storage = self._rt.storage
        hub_key = self._rt.state.datahub_key(upload.storage_alias)
        try:
            envelope = storage.read_range(upload.bucket_id, upload.object_id, 0, ENVELOPE_SIZE - 1)
            data_key = open_envelope(envelope, hub_key.secret)
        except (ValueError, ClientError, BotoCoreError) as error:
            raise InterrogationError(f"Cannot open the Crypt4GH envelope: {error}") from error
        new_secret = secrets.token_bytes(32)
        new_key = str(uuid.uuid4())
        writer = _PartWriter(self._rt, bucket_name(upload.storage_alias, "interrogation"), new_key)
        digest = hashlib.sha256()
        plain = bytearray(SEGMENT_SIZE)
        plain_view = memoryview(plain)
        out = memoryview(writer.buffer)
        decrypted = 0
        stream = storage.open_stream(upload.bucket_id, upload.object_id, ENVELOPE_SIZE)
        try:
            # one S3 read per part: SEGMENTS_PER_PART cipher segments in, the same out
            while chunk := _read_exact(stream, len(writer.buffer)):
                source = memoryview(chunk)
                used = 0
                for offset in range(0, len(chunk), CIPHER_SEGMENT_SIZE):
                    segment = source[offset : offset + CIPHER_SEGMENT_SIZE]
                    length = decrypt_segment(segment, data_key, plain)
                    digest.update(plain_view[:length])
                    decrypted += length
                    used += encrypt_segment(plain_view[:length], new_secret, out[used:])
                writer.flush(used)
            if decrypted != upload.decrypted_size:
                raise InterrogationError(
                    f"Decrypted size {decrypted} differs from the declared {upload.decrypted_size}"
                )
            if digest.hexdigest() != upload.decrypted_sha256:
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
            stream.close()
        return new_key, new_secret, writer

    # --- archival --------------------------------------------------------------------

    def archive_box(self, box_id: str) -> list[FileOutcome]:
        """``locked`` → ``archived``; register every ``interrogated`` upload as a DRS object."""
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
        outcomes = []
        for upload in waiting:
            permanent_key = str(uuid.uuid4())
            storage.copy(
                upload.bucket_id,
                upload.object_id,
                bucket_name(upload.storage_alias, "permanent"),
                permanent_key,
            )
            storage.delete(upload.bucket_id, upload.object_id)
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
            outcomes.append(_outcome(archived, accession))
        return outcomes

    def archive_everything(self, user_public_key: str | None) -> ArchiveReport:
        """The ``ghga-sandbox archive`` step for every box with work to do.

        For each ``open``/``locked`` box holding ``inbox`` or ``interrogated`` uploads:
        lock it (cancelling ``init`` uploads), interrogate its ``inbox`` uploads, archive
        it. Then, with ``user_public_key``, create a download work package over all
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
            for upload in self._rt.state.list_uploads(box.id):
                if upload.state == "inbox":
                    result = self.interrogate(upload)
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
