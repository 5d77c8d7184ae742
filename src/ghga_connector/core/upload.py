"""The uploader: one file through the GHGA upload path (contract §1.2, §3.3, §4).

create upload → encrypt parts in worker threads → per part: presigned URL, ``PUT``,
ETag check → complete with all checksums. Parts run through the engine's scheduler
(:func:`~ghga_connector.core.scheduler.run_parts`: an ``asyncio.TaskGroup`` of
``concurrency`` workers); each worker holds one *part buffer* of at most ``part_buffer``
bytes (the configured part size), so memory stays bounded by
``(concurrency + crypto threads) × part_buffer`` whatever the file size:

* a part that fits its buffer (every file up to ~168 GB with 16 MiB parts) is built
  whole in a thread, then sent from the buffer;
* a larger part (S3's 10,000-part limit makes parts grow with the file: ~210 MiB at
  2 TB) is *streamed* (:class:`_StreamedPart`): read, encrypted and checksummed one
  window (half the buffer) at a time while it is sent, and produced again from the
  file for a retry (the synthetic nonces make it byte-identical, which is checked).
  The whole-file plaintext SHA-256 is fed while streaming when the part's turn has come
  when it starts; otherwise the part's plaintext is read once more after its ``PUT``,
  in its turn, and checked against the segment digests taken while sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from pathlib import Path

from ghga_connector.c4gh.envelope import make_envelope, new_data_secret
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import SealedBoxError
from ghga_connector.c4gh.segments import (
    EncryptedPart,
    SegmentCipher,
    SourceChangedError,
    ThreadBuffers,
    build_upload_part,
    encrypt_range,
    hash_part_plaintext,
    part_fingerprint,
)
from ghga_connector.core.box_busy import BoxBusyBackoff
from ghga_connector.core.files import off_loop
from ghga_connector.core.journal import (
    FileIdentity,
    JournalStore,
    PartRecord,
    UploadJournal,
    seal_secret,
)
from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    ByteRange,
    byte_ranges,
    encrypted_size,
    plaintext_span,
    upload_part_size,
)
from ghga_connector.core.ports import (
    ObjectStoragePort,
    PartBody,
    ProgressReporter,
    UcsPort,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.core.scheduler import BufferPool, OrderedDigest, run_bounded, run_parts
from ghga_connector.errors import (
    ConnectorError,
    InputFileError,
    IntegrityError,
    KeyFileError,
    PresignedUrlExpired,
    ServerResponseError,
    UploadRejectedError,
    UserInputError,
)
from ghga_connector.models import (
    FileOutcome,
    FileUploadState,
    Outcome,
    UploadChecksums,
    WellKnownValues,
)

__all__ = ["Uploader", "multipart_etag"]

#: Attempts per part: a fresh presigned URL each time (expired URL, bad ETag).
PART_ATTEMPTS = 3


#: The plaintext SHA-256 of each segment of a streamed part, as first read.
_SegmentDigests = list[bytes]

#: Completion errors after which the server marked the upload failed: no resume.
_FATAL_AT_COMPLETION = {"checksumMismatch", "uploadSizeMismatch", "fileUploadStateError"}


@dataclass
class _UploadSession:
    """One upload in progress: server ids, sizes, the data secret and the journal."""

    file_id: str
    storage_alias: str
    part_size: int
    enc_size: int
    secret: bytes = field(repr=False)
    envelope: bytes
    journal: UploadJournal | None = None
    #: Stored parts skipped in this run (resume).
    resumed_parts: int = 0
    #: Plaintext bytes whose parts were sent in this run.
    sent_bytes: int = 0


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
        journals: where resume journals are kept (``None``: no resume).
        buffers: part buffers shared by all files of the run (default: ``concurrency``).
        part_buffer: bytes of one part buffer (default: ``part_size`` rounded as for an
            upload); larger parts are streamed through it in two windows.
        open_uploads: files between create and complete at once (each is in state
            ``init`` on the server, which allows 5 per box, contract §3.3(b)); a file
            waiting for its turn has already fetched its create WOT. ``None``: no limit
            here (the caller bounds the files).
        sleep: injected ``asyncio.sleep`` (tests).
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        ucs: UcsPort,
        storage: ObjectStoragePort,
        values: WellKnownValues,
        keys: KeyPair,
        reporter: ProgressReporter,
        executor: Executor,
        part_size: int,
        concurrency: int,
        journals: JournalStore | None = None,
        buffers: BufferPool | None = None,
        open_uploads: int | None = None,
        part_buffer: int | None = None,
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
        self._journals = journals
        self._buffers = buffers or BufferPool(concurrency)
        self._thread_buffers = ThreadBuffers()
        self._part_buffer = part_buffer or upload_part_size(part_size, 0)
        #: Bytes of one window of a streamed part: half a part buffer, whole segments.
        self._window = max(self._part_buffer // 2 // CIPHER_SEGMENT_SIZE, 1) * CIPHER_SEGMENT_SIZE
        self._open_uploads = asyncio.Semaphore(open_uploads) if open_uploads is not None else None
        self._sleep = sleep

    def _token(self, work_type: str, *, alias: str | None = None, file_id: str | None = None):  # type: ignore[no-untyped-def]
        async def token(force_new: bool) -> str:
            return await self._accessor.upload_wot(
                work_type, alias=alias, file_id=file_id, force_new=force_new
            )

        return token

    async def _create(self, job: UploadJob, enc_size: int, part_size: int) -> tuple[str, str]:
        box_id = self._accessor.file_upload_box_id
        backoff = BoxBusyBackoff()
        while True:
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
                if error.exception_id != "tooManyOpenUploads":
                    raise
                # The box's limit is shared with other processes: wait while they progress.
                try:
                    open_now: frozenset[str] | None = frozenset(
                        item.id
                        for item in await self._accessor.list_uploads()
                        if item.state is FileUploadState.INIT
                    )
                except ConnectorError:
                    open_now = None
                wait = backoff.next_wait(open_now)
                if wait is None:
                    raise
                self._reporter.file_status(job.alias, f"box busy, retrying in {wait:.0f} s")
                await self._sleep(wait)  # type: ignore[operator]

    async def _part_url(self, file_id: str, part_no: int) -> str:
        """A presigned PUT URL for one part (``GET .../parts/{part_no}``)."""
        box_id = self._accessor.file_upload_box_id
        token = self._token("upload", file_id=file_id)
        return await self._ucs.get_part_url(box_id, file_id, part_no, token)

    async def _put_part(
        self,
        file_id: str,
        part_no: int,
        data: memoryview | PartBody,
        md5: Callable[[], str | None],
        url: str | None = None,
    ) -> str:
        """PUT a part (to ``url`` if given, else a fresh one); a new URL per retry.

        ``md5()`` is the MD5 (hex) of the bytes just sent (``None``: not all were sent);
        S3's ETag must equal it; an answer without an ETag counts as a mismatch (the part
        is sent again with a fresh URL). Returns it.

        Raises:
            IntegrityError: no attempt was stored intact.
        """
        for _attempt in range(PART_ATTEMPTS):
            if url is None:
                url = await self._part_url(file_id, part_no)
            try:
                etag = await self._storage.put_part(url, data)
            except PresignedUrlExpired:
                url = None
                continue
            sent = md5()
            # An answer without an ETag proves nothing about what S3 stored: sent again.
            if sent is not None and etag == sent:
                return sent
            url = None
        raise IntegrityError(
            f"Part {part_no} could not be stored intact after {PART_ATTEMPTS} attempts."
        )

    def forget(self, alias: str) -> None:
        """Remove the journal of ``alias`` in this box, if any."""
        if self._journals is not None:
            self._journals.remove(self._accessor.file_upload_box_id, alias)

    async def delete(self, file_id: str) -> None:
        """Remove an upload from the box: ``DELETE /boxes/{box}/uploads/{file_id}``.

        Raises:
            UploadRejectedError: the upload service refused.
            ServiceUnreachableError: the upload service cannot be reached.
        """
        await self._accessor.get_work_package()
        await self._delete(file_id)

    async def _delete(self, file_id: str) -> None:
        await self._ucs.delete_upload(
            self._accessor.file_upload_box_id, file_id, self._token("delete", file_id=file_id)
        )

    async def upload(self, job: UploadJob) -> FileOutcome:
        """Upload one file; failures become a ``FAILED`` outcome, interruptions propagate.

        An upload left unfinished by an earlier run continues from its journal. After a
        failure or an interruption the upload stays open on the server and its journal
        is kept, so that running the same command again continues with the missing
        parts (the server discards idle unfinished uploads after 72 hours).

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted (the upload
                and its journal stay for the next run).
        """
        if self._open_uploads is None:
            return await self._upload(job)
        if not job.unfinished_file_id:
            # Before waiting for a turn: the create WOT, so that the turn starts with
            # the create request itself (the WOT is cached, see WorkPackageAccessor).
            try:
                await self._accessor.upload_wot("create", alias=job.alias)
            except ConnectorError as error:
                self._reporter.file_started(job.alias, job.size)
                return self._failed(job, time.monotonic(), error)
        async with self._open_uploads:
            return await self._upload(job)

    async def _upload(self, job: UploadJob) -> FileOutcome:
        started = time.monotonic()
        self._reporter.file_started(job.alias, job.size)
        try:
            # The file's identity before the first read; compared again after the last.
            before = await off_loop(self._executor, FileIdentity.of, job.path)
        except OSError as error:
            return self._failed(
                job, started, InputFileError(f"Reading {str(job.path)!r} failed: {error.strerror}.")
            )
        if before.size != job.size:
            return self._failed(job, started, _changed_during_upload(job))
        try:
            session = await self._start(job, before)
        except ConnectorError as error:
            return self._failed(job, started, error)
        try:
            checksums = await self._send_parts(job, session)
            if await off_loop(self._executor, _identity_or_none, job.path) != before:
                raise SourceChangedError("the file changed while it was read")
            self._reporter.file_status(job.alias, "finalising")
            await self._ucs.complete_upload(
                self._accessor.file_upload_box_id,
                session.file_id,
                checksums,
                self._token("close", file_id=session.file_id),
            )
        except BaseException as error:
            return await self._after_failure(job, session, started, error)
        await self._forget(session)
        outcome = FileOutcome(
            name=job.alias,
            outcome=Outcome.DONE,
            size=job.size,
            seconds=time.monotonic() - started,
            path=job.path,
            transferred=session.sent_bytes,
            details={
                "file_id": session.file_id,
                "storage_alias": session.storage_alias,
                "decrypted_sha256": checksums.decrypted_sha256,
                "encrypted_size": session.enc_size,
                "encrypted_md5": checksums.encrypted_md5,
                "part_size": session.part_size,
                "parts": len(checksums.encrypted_parts_md5),
                "parts_resumed": session.resumed_parts,
                "bytes_sent": session.sent_bytes,
            },
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def _start(self, job: UploadJob, identity: FileIdentity) -> _UploadSession:
        """Resume the journaled upload of this alias, or create a new upload.

        Raises:
            InputFileError: the file differs from the one whose upload was interrupted.
            KeyFileError: the interrupted upload was started with another key pair.
            UploadRejectedError, ServerResponseError, ServiceUnreachableError: from UCS.
        """
        box_id = self._accessor.file_upload_box_id
        journals = self._journals
        journal = (
            await off_loop(self._executor, journals.load, box_id, job.alias) if journals else None
        )
        if (
            journals is not None
            and journal is not None
            and journal.file_id != job.unfinished_file_id
        ):
            # The server no longer has that upload open: the journal is stale.
            await off_loop(self._executor, journals.remove, box_id, job.alias)
            journal = None
        if journal is not None and not job.restart and not job.overwrite:
            if not await off_loop(self._executor, journal.matches_file, job.path):
                raise _changed_since_interrupted(job)
            try:
                secret = journal.secret(self._keys)
            except SealedBoxError:
                raise KeyFileError(
                    f"The interrupted upload of {job.alias!r} was started with another key pair.",
                    hint="Use that key pair, or pass --restart to upload from the start.",
                ) from None
            session = _UploadSession(
                file_id=journal.file_id,
                storage_alias=journal.storage_alias,
                part_size=journal.part_size,
                enc_size=encrypted_size(job.size),
                secret=secret,
                envelope=journal.envelope,
                journal=journal,
            )
            parts = len(byte_ranges(session.enc_size, session.part_size))
            self._reporter.message(
                f"{job.alias}: resuming: {len(journal.parts)} of {parts} parts already stored."
            )
            return session
        if job.unfinished_file_id and not job.overwrite:
            self._reporter.message(
                f"{job.alias}: replacing an unfinished upload from an earlier run."
            )
            job = replace(job, overwrite=True)
        enc_size = encrypted_size(job.size)
        part_size = upload_part_size(self._part_size, enc_size)
        file_id, storage_alias = await self._create(job, enc_size, part_size)
        # Both tokens the file needs next, in one round trip instead of two in a row
        # (they are cached; the close token is fetched again if it expires meanwhile).
        await asyncio.gather(
            self._accessor.upload_wot("upload", file_id=file_id),
            self._accessor.upload_wot("close", file_id=file_id),
        )
        try:
            recipient = self._values.data_hub_key(storage_alias)
        except KeyError:
            raise ServerResponseError(
                f"The server offers no Crypt4GH key for the storage {storage_alias!r}.",
                hint="Report this to the GHGA helpdesk.",
            ) from None
        secret = new_data_secret()
        envelope = make_envelope(secret, self._keys.secret, recipient)
        session = _UploadSession(
            file_id=file_id,
            storage_alias=storage_alias,
            part_size=part_size,
            enc_size=enc_size,
            secret=secret,
            envelope=envelope,
        )
        if self._journals is not None:
            session.journal = UploadJournal(
                box_id=box_id,
                alias=job.alias,
                file_id=file_id,
                storage_alias=storage_alias,
                path=str(await off_loop(self._executor, job.path.resolve)),
                identity=identity,
                part_size=part_size,
                envelope=envelope,
                sealed_secret=seal_secret(secret, self._keys),
            )
            await off_loop(self._executor, self._journals.create, session.journal)
        return session

    async def _forget(self, session: _UploadSession) -> None:
        if self._journals is not None and session.journal is not None:
            await off_loop(
                self._executor, self._journals.remove, session.journal.box_id, session.journal.alias
            )

    async def _after_failure(
        self, job: UploadJob, session: _UploadSession, started: float, error: BaseException
    ) -> FileOutcome:
        """Keep the upload resumable unless the server rejected its content.

        A file that changed while it was read is never completed: its upload is
        cancelled on the server (``DELETE``) and its journal removed. A file that
        differs from the one of an interrupted upload keeps its journal (the user
        decides: the original file back, or ``--restart``).
        """
        if isinstance(error, UploadRejectedError) and error.exception_id in _FATAL_AT_COMPLETION:
            await self._forget(session)
            return self._failed(job, started, error)
        if isinstance(error, SourceChangedError):
            await self._forget(session)
            with contextlib.suppress(ConnectorError):
                await self._delete(session.file_id)
            return self._failed(job, started, _changed_during_upload(job))
        if isinstance(error, ConnectorError | OSError):
            if isinstance(error, OSError):
                error = InputFileError(f"Reading {str(job.path)!r} failed: {error.strerror}.")
            assert isinstance(error, ConnectorError)
            if session.journal is not None and not isinstance(error, UserInputError):
                error.hint = "Run the same command again to continue where it stopped" + (
                    "; if it keeps failing, contact the GHGA helpdesk." if error.hint else "."
                )
            return self._failed(job, started, error)
        if isinstance(error, asyncio.CancelledError | KeyboardInterrupt) and session.journal:
            self._reporter.message(
                f"{job.alias}: upload paused; run the same command again within 72 hours to continue.",
                level="warning",
            )
        raise error

    def _failed(self, job: UploadJob, started: float, error: ConnectorError) -> FileOutcome:
        outcome = FileOutcome(
            name=job.alias,
            outcome=Outcome.FAILED,
            size=job.size,
            seconds=time.monotonic() - started,
            message=error.message + (f" {error.hint}" if error.hint else ""),
            path=job.path,
            error_code=error.error_code,
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def _verify_stored_parts(
        self,
        job: UploadJob,
        session: _UploadSession,
        ranges: list[ByteRange],
        digest: OrderedDigest,
    ) -> set[int]:
        """Check every part the journal says is stored against the file, before sending.

        Each stored part's plaintext is read again and its fingerprint compared with the
        journal's. The stored parts ``1..k`` without a gap are fed to ``digest`` on the
        way (they need not be read again); their numbers are returned.

        Raises:
            InputFileError: a stored part no longer matches the file (nothing was sent).
            OSError, SourceChangedError: the file cannot be read or became shorter.
        """
        assert session.journal is not None
        stored = session.journal.parts
        prefix: set[int] = set()
        while len(prefix) + 1 in stored:
            prefix.add(len(prefix) + 1)
        loop = asyncio.get_running_loop()
        path = str(job.path)

        async def check(part_range: ByteRange) -> None:
            fingerprint = await loop.run_in_executor(
                self._executor,
                hash_part_plaintext,
                path,
                job.size,
                part_range,
                digest if part_range.part_no in prefix else None,
                self._thread_buffers,
                self._part_buffer,
            )
            if fingerprint != stored[part_range.part_no].plaintext:
                raise _changed_since_interrupted(job)

        self._reporter.file_status(job.alias, "checking the stored parts against the file")
        await run_bounded([r for r in ranges if r.part_no in stored], self._concurrency, check)
        return prefix

    async def _send_parts(self, job: UploadJob, session: _UploadSession) -> UploadChecksums:
        """Build and PUT every part not stored yet; return the completion checksums.

        Raises:
            InputFileError: on resume, a stored part no longer matches the file.
            SourceChangedError: the file became shorter while it was read.
            IntegrityError: a part could not be stored intact (ETag mismatch).
            ServerResponseError, ServiceUnreachableError: from UCS or S3.
        """
        cipher = SegmentCipher(session.secret)
        digest = OrderedDigest()
        ranges = byte_ranges(session.enc_size, session.part_size)
        done = session.journal.parts if session.journal is not None else {}
        parts_md5 = [""] * len(ranges)
        parts_sha256 = [""] * len(ranges)
        try:
            verified = (
                await self._verify_stored_parts(job, session, ranges, digest) if done else set()
            )
        except BaseException:
            digest.abort()
            raise
        loop = asyncio.get_running_loop()
        path = str(job.path)
        file_id = session.file_id
        envelope = session.envelope

        async def rehash(part_range: ByteRange) -> str:
            # The part's plaintext read again, fed to the file's SHA-256 in its turn;
            # returns its fingerprint (to compare with the one journaled or sent).
            return await loop.run_in_executor(
                self._executor,
                hash_part_plaintext,
                path,
                job.size,
                part_range,
                digest,
                self._thread_buffers,
                self._part_buffer,
            )

        async def send(part_range: ByteRange, buffer: bytearray) -> None:
            # Parts reach the crypto threads in order (run_parts hands them out in order),
            # which the ordered plaintext digest relies on.
            lo, hi = plaintext_span(part_range, job.size)
            record = done.get(part_range.part_no)
            if record is not None:
                if part_range.part_no not in verified:
                    if streamed:
                        # Streamed parts never block a thread: a thread blocked on the
                        # turn could starve the part whose turn it is of the threads
                        # its windows need. Whole parts keep to submission order (a
                        # lower part's thread work is always submitted first).
                        await digest.wait_turn(part_range.part_no)
                    fingerprint = await rehash(part_range)
                    if fingerprint != record.plaintext:
                        raise SourceChangedError("a stored part no longer matches")
                parts_md5[record.part_no - 1] = record.md5
                parts_sha256[record.part_no - 1] = record.sha256
                session.resumed_parts += 1
                self._reporter.advance(job.alias, hi - lo)
                return
            hashed = True
            if streamed:
                part, hashed = await send_streamed(part_range, buffer)
            else:
                part = await send_whole(part_range, buffer)
            parts_md5[part.part_no - 1] = part.md5
            parts_sha256[part.part_no - 1] = part.sha256
            session.sent_bytes += hi - lo
            if self._journals is not None and session.journal is not None:
                await off_loop(
                    self._executor,
                    self._journals.add_part,
                    session.journal,
                    PartRecord(part.part_no, part.md5, part.sha256, part.plaintext_fingerprint),
                )
            self._reporter.advance(job.alias, hi - lo)
            if not hashed:
                # Stored and journaled; now its plaintext again, in its turn, for the
                # file's SHA-256 (checked against the segment digests taken while sent).
                await digest.wait_turn(part_range.part_no)
                fingerprint = await rehash(part_range)
                if fingerprint != part.plaintext_fingerprint:
                    raise SourceChangedError("the file changed while it was read")

        async def send_whole(part_range: ByteRange, buffer: bytearray) -> EncryptedPart:
            # The part is built in a thread while its URL is requested.
            built = loop.run_in_executor(
                self._executor,
                build_upload_part,
                path,
                job.size,
                part_range,
                envelope,
                cipher,
                digest,
                buffer,
                self._thread_buffers,
            )
            url_request = asyncio.ensure_future(self._part_url(file_id, part_range.part_no))
            try:
                part = await built
                url = await url_request
            finally:
                url_request.cancel()
                if url_request.done() and not url_request.cancelled():
                    url_request.exception()  # retrieved: reported by the await
            await self._put_part(file_id, part.part_no, part.data, lambda: part.md5, url)
            return part

        async def send_streamed(
            part_range: ByteRange, buffer: bytearray
        ) -> tuple[EncryptedPart, bool]:
            """Stream one part; also returns whether the file's SHA-256 got its plaintext."""
            # Fed to the ordered digest while streaming only if no earlier part is
            # missing from it now: a stream never waits for another part's turn.
            live = digest.is_turn(part_range.part_no)
            body = _StreamedPart(
                path=path,
                plain_size=job.size,
                part=part_range,
                envelope=envelope,
                cipher=cipher,
                buffer=buffer,
                window=self._window,
                executor=self._executor,
                buffers=self._thread_buffers,
                digest=digest if live else None,
            )
            try:
                md5 = await self._put_part(file_id, part_range.part_no, body, lambda: body.md5)
            finally:
                await body.settle()
            assert body.sha256 is not None  # set with md5 by the complete iteration
            part = EncryptedPart(
                part_no=part_range.part_no,
                data=memoryview(b""),
                md5=md5,
                sha256=body.sha256,
                plaintext_fingerprint=body.plaintext_fingerprint,
            )
            return part, live

        streamed = session.part_size > self._part_buffer
        await run_parts(
            ranges,
            send,
            workers=self._concurrency,
            buffers=self._buffers,
            buffer_size=2 * self._window if streamed else min(session.part_size, session.enc_size),
            on_error=digest.abort,
        )
        return UploadChecksums(
            decrypted_sha256=digest.hexdigest(),
            encrypted_md5=multipart_etag(parts_md5),
            encrypted_parts_md5=parts_md5,
            encrypted_parts_sha256=parts_sha256,
        )


class _StreamedPart:
    """One upload part produced window by window while it is sent (a :class:`PartBody`).

    Holds nothing but ``buffer`` (two windows of ``window`` bytes): window ``j + 1`` is
    read and encrypted in a thread while window ``j`` is sent. Each iteration (a retried
    ``PUT``, a retry of the HTTP layer) produces the part again from the file; the
    synthetic nonces make it byte-identical, and the plaintext SHA-256 of every segment
    is compared with the first read's, so a file that changed in between raises
    :class:`SourceChangedError` instead of sending other bytes. :attr:`md5` and
    :attr:`sha256` (hex) are those of the last complete iteration (``None`` before).
    With ``digest``, whose turn must be this part's, the plaintext is fed to it the
    first time each window is read.
    """

    def __init__(
        self,
        *,
        path: str,
        plain_size: int,
        part: ByteRange,
        envelope: bytes,
        cipher: SegmentCipher,
        buffer: bytearray,
        window: int,
        executor: Executor,
        buffers: ThreadBuffers,
        digest: OrderedDigest | None,
    ) -> None:
        self._path = path
        self._plain_size = plain_size
        self._part = part
        self._envelope = envelope
        self._cipher = cipher
        self._executor = executor
        self._buffers = buffers
        self._digest = digest
        self._windows = [
            ByteRange(part.part_no, lo, min(lo + window, part.stop))
            for lo in range(part.start, part.stop, window)
        ]
        whole = memoryview(buffer)
        self._halves = (whole[:window], whole[window : 2 * window])
        #: Plaintext SHA-256 of each segment beginning in the part, as first read.
        self._segments: _SegmentDigests = []
        #: Per window read so far: where its segments start in ``_segments``.
        self._window_segments: list[int] = []
        self._pending: Future[memoryview] | None = None
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self.md5: str | None = None
        self.sha256: str | None = None
        #: Windows read and encrypted so far, over all iterations.
        self.windows_built = 0

    @property
    def size(self) -> int:
        """Bytes in the part."""
        return self._part.length

    @property
    def plaintext_fingerprint(self) -> str:
        """:func:`part_fingerprint` of the part (once an iteration completed)."""
        return part_fingerprint(self._segments)

    def _build(self, index: int, out: memoryview) -> memoryview:
        """Read and encrypt window ``index`` into ``out`` (blocking; in a thread).

        Raises:
            SourceChangedError: the window's plaintext differs from its first read.
            OSError: the file cannot be read.
        """
        window = self._windows[index]
        first_read = index == len(self._window_segments)
        feed: Callable[[memoryview], None] | None = None
        if first_read and self._digest is not None:
            digest, final = self._digest, index == len(self._windows) - 1

            def feed(plaintext: memoryview) -> None:
                digest.update(window.part_no, plaintext, final=final)

        owned = encrypt_range(
            self._path,
            self._plain_size,
            window,
            self._envelope,
            self._cipher,
            out,
            self._buffers,
            feed,
        )
        if first_read:
            self._window_segments.append(len(self._segments))
            self._segments.extend(owned)
        else:
            start = self._window_segments[index]
            if owned != self._segments[start : start + len(owned)]:
                raise SourceChangedError("the file changed while it was read")
        view = out[: window.length]
        self._md5.update(view)
        self._sha256.update(view)
        self.windows_built += 1
        return view

    def __aiter__(self) -> AsyncIterator[memoryview]:
        """The part from the start, one window (a view of the buffer) at a time."""
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[memoryview]:
        await self.settle()
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256()
        self.md5 = self.sha256 = None
        count = len(self._windows)
        pending = self._pending = self._executor.submit(self._build, 0, self._halves[0])
        for index in range(count):
            view = await asyncio.wrap_future(pending)
            self._pending = None
            if index + 1 < count:
                pending = self._pending = self._executor.submit(
                    self._build, index + 1, self._halves[(index + 1) % 2]
                )
            yield view
        self.md5 = self._md5.hexdigest()
        self.sha256 = self._sha256.hexdigest()

    async def settle(self) -> None:
        """Wait until no thread writes into the buffer any more (an abandoned iteration)."""
        pending, self._pending = self._pending, None
        if pending is None or pending.cancel():
            return
        waiter = asyncio.wrap_future(pending)
        await asyncio.wait([waiter])
        if not waiter.cancelled():
            waiter.exception()  # retrieved: the iteration that started it is gone


def _changed_during_upload(job: UploadJob) -> InputFileError:
    return InputFileError(
        f"{job.path} changed while it was being uploaded; upload it again when it is complete."
    )


def _changed_since_interrupted(job: UploadJob) -> InputFileError:
    return InputFileError(
        f"{job.path} has changed since the interrupted upload; run again with --restart."
    )


def _identity_or_none(path: Path) -> FileIdentity | None:
    try:
        return FileIdentity.of(path)
    except OSError:
        return None
