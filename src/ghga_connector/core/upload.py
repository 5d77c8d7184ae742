"""The uploader: one file through the GHGA upload path (contract §1.2, §3.3, §4).

create upload → encrypt parts in worker threads → per part: presigned URL, ``PUT``,
ETag check → complete with all checksums. Parts run in an ``asyncio.TaskGroup`` of
``concurrency`` workers; each worker holds one part, so memory stays bounded by
``(concurrency + crypto threads) × part size`` whatever the file size.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from concurrent.futures import Executor

from ghga_connector.adapters.services import (
    ObjectStorageClient,
    PresignedUrlExpired,
    UcsClient,
)
from ghga_connector.c4gh.envelope import make_envelope, new_data_secret
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.segments import (
    EncryptedPart,
    OrderedDigest,
    SegmentCipher,
    build_upload_part,
)
from ghga_connector.core.planning import (
    byte_ranges,
    encrypted_size,
    plaintext_span,
    upload_part_size,
)
from ghga_connector.core.ports import (
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.core.tasks import first_cause
from ghga_connector.errors import (
    ConnectorError,
    InputFileError,
    IntegrityError,
    ServerResponseError,
    UploadRejectedError,
)
from ghga_connector.models import FileOutcome, Outcome, UploadChecksums, WellKnownValues

__all__ = ["Uploader", "multipart_etag"]

#: Waits in seconds between creates refused with 429 tooManyOpenUploads.
CREATE_BACKOFF = (5.0, 10.0, 20.0, 40.0, 80.0)
#: Attempts per part: a fresh presigned URL each time (expired URL, bad ETag).
PART_ATTEMPTS = 3


def multipart_etag(parts_md5: list[str]) -> str:
    """The S3 multipart ETag: MD5 of the concatenated binary part MD5s, ``-N`` (contract §4.3)."""
    joined = b"".join(bytes.fromhex(md5) for md5 in parts_md5)
    return f"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(parts_md5)}"


class Uploader(UploaderBase):
    """Uploads files into the work package's file upload box.

    Args:
        accessor: work package and WOTs.
        ucs: upload controller client.
        storage: S3 client for presigned URLs.
        values: well-known values (Data Hub public keys by storage alias).
        keys: the user's key pair (writer of the Crypt4GH envelope).
        reporter: progress events.
        executor: threads for reading, encryption and hashing.
        part_size: configured part size in bytes (see :func:`upload_part_size`).
        concurrency: parts in flight per file.
        sleep: injected ``asyncio.sleep`` (tests).
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        ucs: UcsClient,
        storage: ObjectStorageClient,
        values: WellKnownValues,
        keys: KeyPair,
        reporter: ProgressReporter,
        executor: Executor,
        part_size: int,
        concurrency: int,
        sleep: object = asyncio.sleep,
    ) -> None:
        self._accessor = accessor
        self._ucs = ucs
        self._storage = storage
        self._values = values
        self._keys = keys
        self._reporter = reporter
        self._executor = executor
        self._part_size = part_size
        self._concurrency = concurrency
        self._sleep = sleep

    def _token(self, work_type: str, *, alias: str | None = None, file_id: str | None = None):  # type: ignore[no-untyped-def]
        async def token(force_new: bool) -> str:
            return await self._accessor.upload_wot(
                work_type, alias=alias, file_id=file_id, force_new=force_new
            )

        return token

    async def _create(self, job: UploadJob, enc_size: int, part_size: int) -> tuple[str, str]:
        box_id = self._accessor.file_upload_box_id
        for wait in (*CREATE_BACKOFF, None):
            try:
                return await self._ucs.create_upload(
                    box_id,
                    self._token("create", alias=job.alias),
                    alias=job.alias,
                    decrypted_size=job.size,
                    encrypted_size=enc_size,
                    part_size=part_size,
                    overwrite=job.overwrite,
                )
            except UploadRejectedError as error:
                if error.exception_id != "tooManyOpenUploads" or wait is None:
                    raise
                self._reporter.file_status(job.alias, f"box busy, retrying in {wait:.0f} s")
                await self._sleep(wait)  # type: ignore[operator]
        raise AssertionError("unreachable")  # pragma: no cover

    async def _put_part(self, file_id: str, part: EncryptedPart) -> None:
        box_id = self._accessor.file_upload_box_id
        token = self._token("upload", file_id=file_id)
        for _attempt in range(PART_ATTEMPTS):
            url = await self._ucs.get_part_url(box_id, file_id, part.part_no, token)
            try:
                etag = await self._storage.put_part(url, part.data)
            except PresignedUrlExpired:
                continue
            if etag is None or etag == part.md5:
                return
        raise IntegrityError(
            f"Part {part.part_no} could not be stored intact after {PART_ATTEMPTS} attempts."
        )

    async def delete(self, file_id: str) -> None:
        """Remove an upload from the box: ``DELETE /boxes/{box}/uploads/{file_id}``."""
        await self._accessor.get_work_package()
        await self._delete(file_id)

    async def _delete(self, file_id: str) -> None:
        await self._ucs.delete_upload(
            self._accessor.file_upload_box_id, file_id, self._token("delete", file_id=file_id)
        )

    async def upload(self, job: UploadJob) -> FileOutcome:
        """Upload one file; failures become a ``FAILED`` outcome, interruptions propagate.

        On failure or interruption the unfinished upload is removed from the box.
        """
        started = time.monotonic()
        reporter = self._reporter
        reporter.file_started(job.alias, job.size)
        enc_size = encrypted_size(job.size)
        part_size = upload_part_size(self._part_size, enc_size)
        try:
            file_id, storage_alias = await self._create(job, enc_size, part_size)
        except ConnectorError as error:
            return self._failed(job, started, error)
        try:
            checksums = await self._send_parts(job, file_id, storage_alias, enc_size, part_size)
            reporter.file_status(job.alias, "finalising")
            await self._ucs.complete_upload(
                self._accessor.file_upload_box_id,
                file_id,
                checksums,
                self._token("close", file_id=file_id),
            )
        except BaseException as error:
            await self._cleanup(file_id)
            if isinstance(error, ConnectorError):
                return self._failed(job, started, error)
            if isinstance(error, OSError):
                return self._failed(
                    job,
                    started,
                    InputFileError(f"Reading {str(job.path)!r} failed: {error.strerror}"),
                )
            raise
        outcome = FileOutcome(
            name=job.alias,
            outcome=Outcome.DONE,
            size=job.size,
            seconds=time.monotonic() - started,
            path=job.path,
            details={
                "file_id": file_id,
                "storage_alias": storage_alias,
                "decrypted_sha256": checksums.decrypted_sha256,
                "encrypted_md5": checksums.encrypted_md5,
                "part_size": part_size,
                "parts": len(checksums.encrypted_parts_md5),
            },
        )
        reporter.file_finished(outcome)
        return outcome

    async def _cleanup(self, file_id: str) -> None:
        try:
            await asyncio.shield(self._delete(file_id))
        except (ConnectorError, asyncio.CancelledError):
            self._reporter.message(
                "The unfinished upload could not be removed; the server discards it after 72 hours.",
                level="warning",
            )

    def _failed(self, job: UploadJob, started: float, error: ConnectorError) -> FileOutcome:
        outcome = FileOutcome(
            name=job.alias,
            outcome=Outcome.FAILED,
            size=job.size,
            seconds=time.monotonic() - started,
            message=error.message + (f" {error.hint}" if error.hint else ""),
            path=job.path,
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def _send_parts(
        self, job: UploadJob, file_id: str, storage_alias: str, enc_size: int, part_size: int
    ) -> UploadChecksums:
        try:
            recipient = self._values.data_hub_key(storage_alias)
        except KeyError:
            raise ServerResponseError(
                f"The server offers no Crypt4GH key for the storage {storage_alias!r}.",
                hint="Report this to the GHGA helpdesk.",
            ) from None
        secret = new_data_secret()
        envelope = make_envelope(secret, self._keys.secret, recipient)
        cipher = SegmentCipher(secret)
        digest = OrderedDigest()
        ranges = byte_ranges(enc_size, part_size)
        parts_md5 = [""] * len(ranges)
        parts_sha256 = [""] * len(ranges)
        pending = iter(ranges)
        loop = asyncio.get_running_loop()
        path = str(job.path)

        async def worker() -> None:
            # Each worker owns one part buffer for its lifetime: memory is bounded by
            # concurrency × part size, and no buffer is allocated per part.
            buffer = bytearray(min(part_size, enc_size))
            for part_range in pending:
                part = await loop.run_in_executor(
                    self._executor,
                    build_upload_part,
                    path,
                    job.size,
                    part_range,
                    envelope,
                    cipher,
                    digest,
                    buffer,
                )
                await self._put_part(file_id, part)
                parts_md5[part.part_no - 1] = part.md5
                parts_sha256[part.part_no - 1] = part.sha256
                lo, hi = plaintext_span(part_range, job.size)
                self._reporter.advance(job.alias, hi - lo)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self._concurrency, len(ranges))):
                    group.create_task(worker())
        except BaseException as error:
            digest.abort()
            if isinstance(error, BaseExceptionGroup):
                raise first_cause(error) from None
            raise
        return UploadChecksums(
            decrypted_sha256=digest.hexdigest(),
            encrypted_md5=multipart_etag(parts_md5),
            encrypted_parts_md5=parts_md5,
            encrypted_parts_sha256=parts_sha256,
        )
