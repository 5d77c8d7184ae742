"""Archival (contract §6.4): copy interrogated uploads to permanent storage, register DRS objects."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import suppress
from dataclasses import dataclass
from pathlib import PurePosixPath

from botocore.exceptions import BotoCoreError, ClientError

from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import DrsObject, FileUpload, now_utc
from ghga_sandbox.storage import S3Storage, bucket_name
from ghga_sandbox.uploads import box_not_found, box_state_error, incomplete_uploads

__all__ = ["COPIES_IN_FLIGHT", "Archiver", "FileOutcome", "file_extension"]

COPIES_IN_FLIGHT = 4
"""Server-side copies to permanent storage at once in :meth:`DataHub.archive_box`."""

COMPRESSION_SUFFIXES = frozenset({".gz", ".bgz", ".bz2", ".xz", ".zst", ".zip"})


def file_extension(alias: str) -> str:
    """The extension WPS lists for a file: ``.bam``, or ``.vcf.gz`` for compressed files."""
    suffixes = PurePosixPath(alias).suffixes
    if not suffixes:
        return ""
    if suffixes[-1].lower() in COMPRESSION_SUFFIXES and len(suffixes) >= 2:
        return "".join(suffixes[-2:])
    return suffixes[-1]


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


class Archiver:
    """Archival of ``locked`` boxes over the runtime's state and storage."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

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
