"""Upload Controller Service logic (contract §3.3, §5.1, §5.2), free of routing.

Methods raise :class:`~ghga_sandbox.errors.DomainError` with the UCS ``exception_id``,
status and ``data`` keys; the routes only verify tokens and compare claims with paths.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ghga_sandbox.errors import DomainError
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import Box, FileUpload, now_utc
from ghga_sandbox.storage import bucket_name

__all__ = [
    "MAX_PART_NUMBER",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "UploadController",
    "box_not_found",
    "box_state_error",
    "internal_error",
]

MIN_PART_SIZE = 5 * 1024 * 1024
"""5 MiB: smallest allowed ``part_size`` (and S3's minimum non-final part)."""
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
"""5 GiB: largest allowed ``part_size``."""
MAX_PART_NUMBER = 10_000
"""S3's part number limit; ``ceil(encrypted_size / part_size)`` must not exceed it."""

log = logging.getLogger(__name__)


def box_not_found(box_id: str) -> DomainError:
    """404 ``boxNotFound``."""
    return DomainError(
        404, "boxNotFound", f"FileUploadBox with ID {box_id} not found.", {"box_id": box_id}
    )


def box_state_error(box: Box) -> DomainError:
    """409 ``boxStateError``."""
    return DomainError(
        409,
        "boxStateError",
        f"Can't perform this action because the box with ID {box.id} is {box.state}.",
        {"box_id": box.id, "box_state": box.state},
    )


def file_upload_not_found(file_id: str) -> DomainError:
    """404 ``fileUploadNotFound``."""
    return DomainError(
        404, "fileUploadNotFound", f"FileUpload with ID {file_id} not found.", {"file_id": file_id}
    )


def no_such_storage() -> DomainError:
    """400 ``noSuchStorage``."""
    return DomainError(400, "noSuchStorage", "There was a problem identifying the storage alias.")


def internal_error() -> DomainError:
    """500 ``internalError`` (unexpected errors in UCS routes)."""
    return DomainError(500, "internalError", "An internal server error has occurred.")


def part_count(encrypted_size: int, part_size: int) -> int:
    """Number of parts: ``ceil(encrypted_size / part_size)``."""
    return -(-encrypted_size // part_size)


def valid_part_size(encrypted_size: int, part_size: int) -> bool:
    """Whether ``part_size`` is within 5 MiB–5 GiB and gives at most 10 000 parts."""
    return (
        MIN_PART_SIZE <= part_size <= MAX_PART_SIZE
        and part_count(encrypted_size, part_size) <= MAX_PART_NUMBER
    )


def parts_are_uniform(sizes: list[int]) -> bool:
    """At least one part; all but the last equal to the first; the last no larger."""
    if not sizes:
        return False
    first = sizes[0]
    return all(size == first for size in sizes[:-1]) and sizes[-1] <= first


class UploadController:
    """UCS operations over the runtime's state and storage."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._file_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)

    # --- helpers -------------------------------------------------------------------

    def _open_box(self, box_id: str) -> Box:
        box = self._rt.state.get_box(box_id)
        if box is None:
            raise box_not_found(box_id)
        if box.state != "open":
            raise box_state_error(box)
        return box

    def _discard_s3(self, upload: FileUpload) -> None:
        """Abort the multipart upload(s) and delete the object of an upload."""
        storage = self._rt.storage
        storage.abort_all(upload.bucket_id, upload.object_id)
        storage.delete(upload.bucket_id, upload.object_id)

    def cancel(self, upload: FileUpload) -> FileUpload:
        """Drop the S3 data of an upload and set it ``cancelled``."""
        self._discard_s3(upload)
        cancelled = upload.with_state("cancelled")
        self._rt.state.put_upload(cancelled)
        self._rt.state.bump_box_version(upload.box_id)
        return cancelled

    # --- (a) listing ---------------------------------------------------------------

    def list_uploads(
        self, box_id: str, *, skip: int, limit: int, sort: str, with_checksums: bool
    ) -> tuple[list[FileUpload], int]:
        """One page of a box's uploads and the total count (contract §3.3(a))."""
        if self._rt.state.get_box(box_id) is None:
            raise box_not_found(box_id)
        if skip < 0 or not 0 <= limit <= 1000:
            raise DomainError(422, "paginationError", "Invalid pagination parameters.")
        uploads = self._rt.state.list_uploads(box_id)
        keys = [key.strip() for key in sort.split(",") if key.strip()] or ["alias"]
        if "alias" not in {key.lstrip("-") for key in keys}:
            keys.append("alias")
        for key in reversed(keys):
            name = key.lstrip("-")
            if name not in FileUpload.__dataclass_fields__:
                raise DomainError(422, "paginationError", f"Cannot sort by {name!r}.")
            uploads.sort(key=_attribute_key(name), reverse=key.startswith("-"))
        page = uploads[skip : skip + limit]
        if not with_checksums:
            page = [replace(u, encrypted_parts_md5=None, encrypted_parts_sha256=None) for u in page]
        return page, len(uploads)

    # --- (b) create ----------------------------------------------------------------

    def create(
        self,
        box_id: str,
        *,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        overwrite: bool,
    ) -> FileUpload:
        """Create an upload after the §3.3(b) checks, in that order."""
        state, storage, settings = self._rt.state, self._rt.storage, self._rt.settings
        with state.lock:
            box = self._open_box(box_id)  # 1, 2
            if box.storage_alias not in settings.storage_labels:  # 3
                raise no_such_storage()
            if overwrite:  # 4
                for upload in state.list_uploads(box_id):
                    if upload.alias == alias and upload.state in {"init", "inbox"}:
                        self.cancel(upload)
            uploads = state.list_uploads(box_id)
            open_uploads = [u for u in uploads if u.state == "init"]
            if len(open_uploads) >= settings.max_concurrent_uploads:  # 5
                raise DomainError(
                    429,
                    "tooManyOpenUploads",
                    f"The box {box_id} already has the maximum number of open uploads.",
                    {"box_id": box_id, "max_concurrent": settings.max_concurrent_uploads},
                )
            current = state.box_size(box_id) + sum(u.decrypted_size for u in open_uploads)
            if current + decrypted_size > box.max_size:  # 6
                raise DomainError(
                    507,
                    "boxMaxSizeExceeded",
                    f"Cannot add the file {alias} because it would exceed the maximum"
                    " total size limit allowed for the box.",
                    {
                        "box_id": box_id,
                        "max_size": box.max_size,
                        "current_size": current,
                        "file_alias": alias,
                    },
                )
            if not valid_part_size(encrypted_size, part_size):  # 7
                raise DomainError(
                    400,
                    "invalidPartSize",
                    f"The part size {part_size} is invalid for file {alias}.",
                    {"file_alias": alias, "part_size": part_size},
                )
            bucket = bucket_name(box.storage_alias, "inbox")
            object_id = str(uuid.uuid4())
            s3_upload_id = storage.create_multipart_upload(bucket, object_id)  # 8
            if any(u.alias == alias and u.state not in {"failed", "cancelled"} for u in uploads):
                storage.abort_multipart_upload(bucket, object_id, s3_upload_id)  # 9
                raise DomainError(
                    409,
                    "fileUploadAlreadyExists",
                    f"Failed to create a FileUpload for the alias {alias} because another"
                    " one with the same alias already exists.",
                    {"alias": alias},
                )
            for predecessor in uploads:
                if predecessor.alias == alias:  # failed or cancelled: replaced
                    state.delete_upload(predecessor.id)
            now = now_utc()
            upload = FileUpload(
                id=str(uuid.uuid4()),
                box_id=box_id,
                alias=alias,
                state="init",
                state_updated=now,
                storage_alias=box.storage_alias,
                bucket_id=bucket,
                object_id=object_id,
                decrypted_size=decrypted_size,
                encrypted_size=encrypted_size,
                part_size=part_size,
                initiated=now,
                s3_upload_id=s3_upload_id,
                last_activity=now,
            )
            state.put_upload(upload)
            state.bump_box_version(box_id)
            return upload

    # --- (c) part URL --------------------------------------------------------------

    def part_url(self, file_id: str, part_no: int) -> str:
        """Presigned ``UploadPart`` URL (contract §3.3(c)); ignores box and file state."""
        state, storage = self._rt.state, self._rt.storage
        upload = state.get_upload(file_id)
        if upload is None:
            raise file_upload_not_found(file_id)
        if upload.storage_alias not in self._rt.settings.storage_labels:
            raise no_such_storage()
        active = storage.active_uploads(upload.bucket_id, upload.object_id)
        if len(active) != 1 or upload.s3_upload_id not in active:
            raise DomainError(404, "s3UploadNotFound", "S3 multipart upload not found.")
        if not 1 <= part_no <= MAX_PART_NUMBER:
            raise internal_error()
        state.put_upload(replace(upload, last_activity=now_utc()))
        expires = self._rt.faults.url_expiry("upload", self._rt.settings.upload_url_expiry)
        assert upload.s3_upload_id is not None
        return storage.presign_upload_part(
            upload.bucket_id, upload.object_id, upload.s3_upload_id, part_no, expires
        )

    # --- (d) complete --------------------------------------------------------------

    def complete(
        self,
        box_id: str,
        file_id: str,
        *,
        decrypted_sha256: str,
        encrypted_md5: str,
        encrypted_parts_md5: list[str],
        encrypted_parts_sha256: list[str],
    ) -> None:
        """Complete the multipart upload and check ETag and size (contract §3.3(d))."""
        state, storage, faults = self._rt.state, self._rt.storage, self._rt.faults
        self._open_box(box_id)
        with self._file_locks[file_id]:
            upload = state.get_upload(file_id)
            if upload is None:
                raise file_upload_not_found(file_id)
            if upload.state in {"failed", "cancelled"}:
                raise DomainError(
                    409,
                    "fileUploadStateError",
                    f"FileUpload {file_id} is {upload.state}.",
                    {"file_id": file_id},
                )
            if upload.state != "init":
                return
            completion_error = DomainError(
                500,
                "uploadCompletionError",
                "An error occurred while completing the file upload. Delete the file from"
                " the file upload box and retry.",
                {"box_id": box_id, "file_id": file_id},
            )
            try:
                self._complete_s3(upload)
            except (ClientError, BotoCoreError, ValueError) as error:
                log.warning("completing %s failed: %s", file_id, error)
                raise completion_error from error
            head = storage.head(upload.bucket_id, upload.object_id)
            if head is None:
                raise completion_error
            etag = str(head["ETag"]).strip('"')
            if faults.take("etag_mismatch"):
                etag = "0" * 32 + etag[32:]
            if etag != encrypted_md5:
                self._fail(upload, "Upload integrity checksum mismatch")
                raise DomainError(
                    400,
                    "checksumMismatch",
                    f"The checksum supplied for file {file_id} doesn't match the value"
                    " calculated by S3.",
                    {"file_id": file_id},
                )
            size = int(head["ContentLength"]) + (1 if faults.take("size_mismatch") else 0)
            if size != upload.encrypted_size:
                self._fail(upload, "Upload size mismatch")
                raise DomainError(
                    400,
                    "uploadSizeMismatch",
                    f"The size of the uploaded file {file_id} ({size} bytes) doesn't match"
                    f" the declared encrypted size ({upload.encrypted_size} bytes).",
                    {"file_id": file_id},
                )
            state.put_upload(
                upload.with_state(
                    "inbox",
                    decrypted_sha256=decrypted_sha256,
                    encrypted_parts_md5=list(encrypted_parts_md5),
                    encrypted_parts_sha256=list(encrypted_parts_sha256),
                    completed=now_utc(),
                )
            )
            state.bump_box_version(box_id)

    def _complete_s3(self, upload: FileUpload) -> None:
        """``ListParts`` + checks + ``CompleteMultipartUpload``; done if already done."""
        storage = self._rt.storage
        assert upload.s3_upload_id is not None
        try:
            parts = storage.list_parts(upload.bucket_id, upload.object_id, upload.s3_upload_id)
        except ClientError:
            if storage.head(upload.bucket_id, upload.object_id) is not None:
                return  # upload gone but object present: counts as done
            raise
        if not parts_are_uniform([int(p["Size"]) for p in parts]):
            raise ValueError("parts are missing, unequal or larger than the first")
        try:
            storage.complete_multipart_upload(
                upload.bucket_id, upload.object_id, upload.s3_upload_id, parts
            )
        except ClientError:
            if storage.head(upload.bucket_id, upload.object_id) is not None:
                return
            raise

    def _fail(self, upload: FileUpload, reason: str) -> None:
        self._rt.storage.delete(upload.bucket_id, upload.object_id)
        self._rt.state.put_upload(upload.with_state("failed", failure_reason=reason))
        self._rt.state.bump_box_version(upload.box_id)

    # --- (e) delete ----------------------------------------------------------------

    def delete(self, box_id: str, file_id: str) -> None:
        """Abort/delete S3 data and set ``cancelled`` from any state (contract §3.3(e))."""
        self._open_box(box_id)
        with self._file_locks[file_id]:
            upload = self._rt.state.get_upload(file_id)
            if upload is None:
                raise file_upload_not_found(file_id)
            try:
                self._discard_s3(upload)
            except (ClientError, BotoCoreError) as error:
                raise DomainError(
                    500, "uploadAbortError", "An error occurred while canceling the file upload."
                ) from error
            if upload.state != "cancelled":
                self._rt.state.put_upload(upload.with_state("cancelled"))
                self._rt.state.bump_box_version(box_id)

    # --- box state (admin; replaces UCS PATCH /boxes/{box_id}) ----------------------

    def lock_box(self, box_id: str, *, force: bool = False) -> Box:
        """``open`` → ``locked``; ``init`` uploads block it unless ``force`` cancels them."""
        state = self._rt.state
        with state.lock:
            box = state.get_box(box_id)
            if box is None:
                raise box_not_found(box_id)
            if box.state == "locked":
                return box
            if box.state != "open":
                raise box_state_error(box)
            pending = [u for u in state.list_uploads(box_id) if u.state == "init"]
            if pending and not force:
                raise incomplete_uploads(box_id, pending)
            for upload in pending:
                self.cancel(upload)
            return state.set_box_state(box_id, "locked")

    def unlock_box(self, box_id: str) -> Box:
        """``locked`` → ``open``."""
        state = self._rt.state
        with state.lock:
            box = state.get_box(box_id)
            if box is None:
                raise box_not_found(box_id)
            if box.state == "open":
                return box
            if box.state != "locked":
                raise box_state_error(box)
            return state.set_box_state(box_id, "open")


def incomplete_uploads(box_id: str, uploads: Iterable[FileUpload]) -> DomainError:
    """409 ``incompleteUploads`` with ``[[file_id, alias], …]``."""
    return DomainError(
        409,
        "incompleteUploads",
        f"The box {box_id} still has incomplete uploads.",
        {"box_id": box_id, "file_ids": [[u.id, u.alias] for u in uploads]},
    )


def _attribute_key(name: str) -> Callable[[FileUpload], tuple[int, Any]]:
    """A sort key over one attribute of a file upload."""

    def key(upload: FileUpload) -> tuple[int, Any]:
        return _sort_key(getattr(upload, name))

    return key


def _sort_key(value: Any) -> tuple[int, Any]:
    """Sort ``None`` first, then values of one type."""
    return (0, "") if value is None else (1, value if not isinstance(value, list) else str(value))
