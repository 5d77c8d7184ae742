"""The transfer handler: the one place that runs upload and download batches.

It receives the injected :class:`WorkPackageAccessorBase`, :class:`FileStagerBase`,
:class:`UploaderBase` and :class:`DownloaderBase` and decides per file what to do:
skip, replace, transfer, or only plan (``dry_run``). Several files run at once, at
most ``max_parallel_files``; a failed file never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ghga_connector.core.decrypt import decrypt_file, sidecar_path, vouched_checksum
from ghga_connector.core.digests import DigestCache
from ghga_connector.core.journal import FileIdentity, JournalStore
from ghga_connector.core.locks import (
    LockOwner,
    TransferLock,
    TransferLockBusy,
    download_lock_path,
    prune_owner_records,
)
from ghga_connector.core.planning import encrypted_size, plaintext_size
from ghga_connector.core.ports import (
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
    unique_temp_path,
)
from ghga_connector.core.scheduler import run_bounded
from ghga_connector.core.stream import StreamDownloader
from ghga_connector.errors import (
    ARCHIVED_BOX_HINT,
    ConnectorError,
    InputFileError,
    OutputError,
    ServerResponseError,
    ServiceUnreachableError,
    StagingTimeoutError,
    UploadRejectedError,
    UserInputError,
)
from ghga_connector.models import FileOutcome, FileUploadState, Outcome, UploadListItem

__all__ = [
    "TransferHandler",
    "UnfinishedUpload",
    "decrypt_batch",
    "decrypt_sources",
    "safe_file_name",
    "unfinished_uploads",
]

#: DRS requests in flight while asking the archive to stage a batch.
STAGING_REQUESTS_IN_FLIGHT = 8

#: Seconds of clock difference between hosts sharing a state directory that the
#: "worked on by another process since the box was listed" test allows for.
CLOCK_SLACK_SECONDS = 120.0

#: Seconds between two attempts to take the lock of a file another process holds (``--wait``).
WAIT_POLL_SECONDS = 5.0

#: Upload states that only an archived box holds (contract §5.1, §5.2).
_ARCHIVED = frozenset({FileUploadState.AWAITING_ARCHIVAL, FileUploadState.ARCHIVED})

#: Server-supplied accessions and extensions must match these, whole (``fullmatch``:
#: ``$`` would let a trailing newline through), to become file names.
_ACCESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9_-]{1,32}){0,4}")
#: Longest ``{accession}{extension}`` in bytes: a file name may have 255 bytes, and the
#: longest name written for it (``.X.c4gh.part.json.<12 hex>.tmp``) adds 33.
MAX_NAME_BYTES = 200


def safe_file_name(accession: str, extension: str) -> str:
    """``{accession}{extension}``, refusing anything that could leave the output folder.

    Accessions are ASCII letters, digits, ``_`` and ``-`` (at most 128), extensions up
    to four ``.part`` pieces of the same characters; the whole name at most
    :data:`MAX_NAME_BYTES` bytes. Nothing else (``..``, ``/``, NUL, a newline) passes.

    Raises:
        ServerResponseError: if the server sent an unsafe accession or extension.
    """
    name = f"{accession}{extension or ''}"
    if (
        not _ACCESSION.fullmatch(accession)
        or not _EXTENSION.fullmatch(extension or "")
        or len(name.encode("utf-8")) > MAX_NAME_BYTES
    ):
        shown = ascii(accession)[1:-1], ascii(extension)[1:-1]
        raise ServerResponseError(
            f"The server sent an unsafe file name ('{shown[0]}', '{shown[1]}'); refusing it."
        )
    return name


def _placeholder(output_dir: Path, accession: str, extension: str) -> Path:
    """A path standing in for the target of a file whose server name is unsafe (never written)."""
    digest = hashlib.sha256(f"{accession}\0{extension}".encode("utf-8", "replace")).hexdigest()
    return output_dir / f".invalid-name-{digest[:16]}"


def _clear_leftovers(target: Path) -> None:
    """Remove what a process killed right after finishing ``target`` left beside it.

    That is its lock (and owner file), and the downloader's range journal
    (``<name>.part.json``) if no ``.part`` file belongs to it any more. Only done while
    holding the lock, so never under a process that is still writing.
    """
    lock_path = download_lock_path(target)
    temp = unique_temp_path(target)
    journal = temp.with_name(temp.name + ".json")
    orphan = journal.exists() and not temp.exists()
    if not lock_path.exists() and not orphan:
        return
    lock = TransferLock(lock_path)
    with contextlib.suppress(TransferLockBusy, OSError):
        lock.acquire()
        try:
            if journal.exists() and not temp.exists():
                journal.unlink()
        finally:
            lock.release()


@dataclass(frozen=True)
class UnfinishedUpload:
    """An upload journal in the state folder: what ``ghga-connector status`` lists.

    ``bytes`` is the plaintext size of the file; ``parts_total`` counts the parts of its
    encrypted form (Crypt4GH envelope and segments) at the journal's part size.
    """

    alias: str
    path: str
    bytes: int
    parts_stored: int
    parts_total: int
    file_id: str


def unfinished_uploads(state_dir: Path) -> list[UnfinishedUpload]:
    """The unfinished uploads recorded in ``state_dir`` (no network).

    The next ``upload`` of the same file continues them. Unreadable journals are left out.
    """
    return [
        UnfinishedUpload(
            alias=journal.alias,
            path=journal.path,
            bytes=journal.size,
            parts_stored=len(journal.parts),
            parts_total=-(-encrypted_size(journal.size) // journal.part_size),
            file_id=journal.file_id,
        )
        for journal in JournalStore(state_dir).all()
    ]


def decrypt_sources(input_dir: Path, target_dir: Path) -> list[Path]:
    """The ``.c4gh`` files in ``input_dir`` (sorted by name), for ``ghga-connector decrypt``.

    Raises:
        InputFileError: ``input_dir`` is not a folder, or holds no ``.c4gh`` file.
        OutputError: ``target_dir`` is not a folder.
    """
    if not input_dir.is_dir():
        raise InputFileError(f"The input folder {str(input_dir)!r} does not exist.")
    if not target_dir.is_dir():
        raise OutputError(
            f"The output folder {str(target_dir)!r} does not exist.",
            hint=f"Create it first: mkdir {target_dir}",
        )
    sources = sorted(p for p in input_dir.glob("*.c4gh") if p.is_file())
    if not sources:
        raise InputFileError(f"There are no .c4gh files in {str(input_dir)!r}.")
    return sources


def decrypt_batch(
    sources: list[Path],
    target_dir: Path,
    secret_key: bytes,
    reporter: ProgressReporter,
    *,
    overwrite: bool = False,
    allow_unverified: bool = False,
) -> list[FileOutcome]:
    """Decrypt each ``X.c4gh`` of ``sources`` to ``target_dir/X`` with :func:`decrypt_file`.

    A file that fails is a ``FAILED`` outcome and does not stop the others; each outcome
    is reported as it is known.
    """
    outcomes = []
    for source in sources:
        target = target_dir / source.name.removesuffix(".c4gh")
        try:
            outcome = decrypt_file(
                source,
                target,
                secret_key,
                overwrite=overwrite,
                allow_unverified=allow_unverified,
            )
        except ConnectorError as error:
            outcome = FileOutcome(
                name=source.name,
                outcome=Outcome.FAILED,
                path=target,
                message=error.message,
                error_code=error.error_code,
            )
        reporter.file_finished(outcome)
        outcomes.append(outcome)
    return outcomes


class TransferHandler:
    """Runs upload and download batches over the injected components.

    Args:
        accessor: the work package accessor.
        stager: waits for staged files (downloads).
        uploader: uploads one file.
        downloader: downloads one file.
        reporter: progress events.
        max_parallel_files: files transferred at once.
        prepare_ahead: further files that get ready meanwhile: their API round trips
            (WOTs, DRS object and staging, Crypt4GH envelope) run while earlier files
            transfer, so that small files do not wait on each other's round trips.
            The uploader and the downloader bound the transfers themselves.
        upload_lock_path: ``(box id, alias) -> lock file`` guarding each upload journal
            against other processes (``None``: no locking).
        lock_downloads: lock each download target (``.<name>.lock`` beside it) against
            other processes writing the same file.
        streamer: writes one file's plaintext to a pipe (``download --output -``).
        digests: the local files' SHA-256, remembered in the state folder, compared with
            the box's ``decrypted_sha256`` before an upload is skipped (default: not
            remembered).
        wait_poll: seconds between attempts to take a busy file's lock (``wait``).
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        stager: FileStagerBase,
        uploader: UploaderBase,
        downloader: DownloaderBase,
        reporter: ProgressReporter,
        max_parallel_files: int,
        prepare_ahead: int = 0,
        upload_lock_path: Callable[[str, str], Path] | None = None,
        lock_downloads: bool = False,
        streamer: StreamDownloader | None = None,
        digests: DigestCache | None = None,
        wait_poll: float = WAIT_POLL_SECONDS,
    ) -> None:
        self._accessor = accessor
        self._stager = stager
        self._uploader = uploader
        self._downloader = downloader
        self._reporter = reporter
        self._in_flight = max_parallel_files + prepare_ahead
        self._upload_lock_path = upload_lock_path
        self._lock_downloads = lock_downloads
        self._streamer = streamer
        self._digests = digests or DigestCache(None)
        self._wait_poll = wait_poll
        self._pruned = False

    async def _require(self, kind: str) -> dict[str, str]:
        package = await self._accessor.get_work_package()
        if package.type != kind:
            article = "an" if package.type[:1] in "aeiou" else "a"
            raise UserInputError(
                f"This access token is for {article} {package.type} work package, not for {kind}s.",
                hint=f"Use {'an' if kind[:1] in 'aeiou' else 'a'} {kind} access token from "
                "the GHGA Data Portal.",
            )
        return dict(package.files or {})

    # --- upload ------------------------------------------------------------------

    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads in the file upload box of an upload work package.

        Raises:
            UserInputError: the access token is for a download work package.
            ServiceUnreachableError, ServerResponseError: a GHGA service failed.
        """
        await self._require("upload")
        return await self._accessor.list_uploads()

    async def delete_upload(self, file_id: str) -> None:
        """Remove an upload from the file upload box.

        Raises:
            UserInputError: the access token is for a download work package.
            UploadRejectedError: the upload service refused.
            ServiceUnreachableError: a GHGA service cannot be reached.
        """
        await self._require("upload")
        await self._uploader.delete(file_id)

    async def find_upload(
        self, *, alias: str | None = None, file_id: str | None = None
    ) -> UploadListItem:
        """The upload in the box with this ``alias`` or ``file_id`` (removed ones excluded).

        Raises:
            UserInputError: the box holds no such upload, or this is not an upload package.
        """
        items = [i for i in await self.list_uploads() if not i.state.is_absent]
        for item in items:
            if item.alias == alias or item.id == file_id:
                return item
        raise UserInputError(
            f"No upload {alias or file_id!r} in the upload box.",
            hint="Run 'ghga-connector ls' to see the uploads.",
        )

    async def remove_upload(self, item: UploadListItem) -> None:
        """Remove ``item`` from the box and forget the local journal of its alias.

        UCS ``DELETE /boxes/{box}/uploads/{file_id}``; without the journal no later run
        tries to continue the removed upload.

        Raises:
            UserInputError: not an upload work package.
            ServerResponseError, ServiceUnreachableError: the service refused or failed.
        """
        await self.delete_upload(item.id)
        self._uploader.forget(item.alias)

    async def listing(
        self, *, show_all: bool = False, details: bool = False
    ) -> list[dict[str, str | int | bool | None]]:
        """For ``ls``: the rows of an upload box, or of a download package.

        Upload box: alias, state, plaintext size in bytes and file id, sorted by alias;
        removed (cancelled) uploads only with ``show_all``. Download package: see
        :meth:`download_listing` (``details`` only matters there).

        Raises:
            ServerResponseError, ServiceUnreachableError: the services failed.
        """
        package = await self._accessor.get_work_package()
        if package.type != "upload":
            return await self.download_listing(details=details)
        return [
            {
                "alias": item.alias,
                "state": item.state.value,
                "size": item.decrypted_size,
                "file_id": item.id,
            }
            for item in sorted(await self.list_uploads(), key=lambda i: i.alias)
            if show_all or item.state is not FileUploadState.CANCELLED
        ]

    async def upload(
        self, jobs: list[UploadJob], *, dry_run: bool = False, wait: bool = False
    ) -> list[FileOutcome]:
        """Upload ``jobs`` into the file upload box.

        An alias already uploaded (any state but ``init``, ``failed``, ``cancelled``) is
        ``skipped`` only when it is proven to be the same file: same plaintext size and
        the local file's SHA-256 equal to the box's ``decrypted_sha256``. Another size or
        checksum is ``failed`` (a pipeline must never take another file for its own); a
        box without a checksum for it gives ``unverified``. ``overwrite`` replaces it.
        An upload left in ``init`` by an interrupted run is continued or replaced. A file
        another process is uploading is ``busy``, or with ``wait`` waited for.

        Raises:
            AccessDeniedError, UserInputError: problems that concern the whole batch.
        """
        await self._require("upload")
        listed_at = time.time()
        existing: dict[str, UploadListItem] = {}
        for item in await self._accessor.list_uploads():
            if not item.state.is_absent:
                existing[item.alias] = item
        if dry_run and any(item.state in _ARCHIVED for item in existing.values()):
            # No client API shows the box state; archived uploads in it show it is archived.
            raise UploadRejectedError(
                "The upload box is archived and does not accept changes.",
                hint=ARCHIVED_BOX_HINT,
            )
        planned: list[UploadJob] = []
        outcomes: dict[str, FileOutcome] = {}
        in_box: list[tuple[UploadJob, UploadListItem]] = []
        for job in jobs:
            found = existing.get(job.alias)
            if found is not None and found.state.is_complete and not job.overwrite:
                in_box.append((job, found))
                continue
            if found is not None and found.state is FileUploadState.INIT:
                job = replace(job, unfinished_file_id=found.id)
            planned.append(job)

        async def judge(pair: tuple[UploadJob, UploadListItem]) -> FileOutcome:
            job, found = pair
            self._uploader.forget(job.alias)
            outcome = await self._already_in_box(job, found)
            self._reporter.file_finished(outcome)
            return outcome

        outcomes.update({o.name: o for o in await run_bounded(in_box, self._in_flight, judge)})
        if dry_run:
            for job in planned:
                outcomes[job.alias] = FileOutcome(
                    name=job.alias,
                    outcome=Outcome.PLANNED,
                    size=job.size,
                    path=job.path,
                    message="would replace the existing upload"
                    if job.overwrite
                    else "would upload",
                )
        else:

            async def upload_one(job: UploadJob) -> FileOutcome:
                return await self._upload_locked(job, listed_at, wait=wait)

            results = await run_bounded(planned, self._in_flight, upload_one)
            outcomes.update({o.name: o for o in results})
        return [outcomes[job.alias] for job in jobs]

    async def _already_in_box(self, job: UploadJob, found: UploadListItem) -> FileOutcome:
        """The outcome of a job whose alias the box already holds (no ``--overwrite``).

        ``skipped`` only if the box's file is proven to be this one: the same plaintext
        size and ``decrypted_sha256`` equal to the local file's SHA-256 (read once, then
        remembered in the state folder, see :mod:`~ghga_connector.core.digests`).
        Another size or checksum: ``failed``; no checksum in the listing: ``unverified``.
        """
        details: dict[str, str | int | float | None] = {
            "file_id": found.id,
            "state": found.state.value,
            "encrypted_size": found.encrypted_size,
        }

        def result(outcome: Outcome, message: str) -> FileOutcome:
            return FileOutcome(
                name=job.alias,
                outcome=outcome,
                size=job.size,
                path=job.path,
                message=message,
                details=details,
            )

        other = (
            f"a different file named {job.alias} is already in the upload box ({{}}); use "
            "--overwrite to replace it"
        )
        if found.decrypted_size is not None and found.decrypted_size != job.size:
            return result(
                Outcome.FAILED, other.format(f"{found.decrypted_size} bytes, this one {job.size}")
            )
        if not found.decrypted_sha256:
            return result(
                Outcome.UNVERIFIED,
                f"{job.alias} is in the upload box ({found.state.value}), but the box gives "
                "no checksum to compare this file with; check it, or use --overwrite to "
                "replace it",
            )
        self._reporter.file_status(job.alias, "comparing with the upload box (SHA-256)")
        try:
            local = await asyncio.to_thread(self._digests.sha256, job.path)
        except ConnectorError as error:
            return result(Outcome.FAILED, error.message)
        details["decrypted_sha256"] = local
        if local != found.decrypted_sha256.lower():
            return result(Outcome.FAILED, other.format("same size, another SHA-256"))
        return result(
            Outcome.SKIPPED,
            f"already in the upload box ({found.state.value}), same SHA-256; use --overwrite "
            "to replace it",
        )

    async def _upload_locked(
        self, job: UploadJob, listed_at: float, *, wait: bool = False
    ) -> FileOutcome:
        """Upload ``job`` holding the lock of its journal.

        If another process holds it, the file is ``busy``; with ``wait`` the lock is
        tried again every ``wait_poll`` seconds until it is free. If another process
        held the lock since the box was listed (``listed_at``, Unix seconds), the box is
        listed again: that process may have finished the file (judged as in
        :meth:`_already_in_box`) or left it unfinished (continued from the shared journal).
        """
        if self._upload_lock_path is None:
            return await self._upload_remembering(job)
        box_id = self._accessor.file_upload_box_id
        try:
            path = self._upload_lock_path(box_id, job.alias)
            if not self._pruned:
                self._pruned = True
                prune_owner_records(path.parent)
            lock = TransferLock(path, keep_owner=True)
            previous = await self._acquire(lock, job.alias, wait=wait)
        except OSError as error:
            outcome = FileOutcome(
                name=job.alias,
                outcome=Outcome.FAILED,
                size=job.size,
                path=job.path,
                message=f"Cannot lock the upload journal of {job.alias} in the state "
                f"directory: {error.strerror}. Check GHGA_CONNECTOR_STATE_DIR.",
            )
            self._reporter.file_finished(outcome)
            return outcome
        except TransferLockBusy as busy:
            return self._busy(
                job.alias,
                job.size,
                job.path,
                f"{job.alias} is being uploaded by another process ({busy.holder}); "
                "not checked yet: run again later, or with --wait",
            )
        try:
            if previous is not None and previous.time >= listed_at - CLOCK_SLACK_SECONDS:
                found = {
                    item.alias: item
                    for item in await self._accessor.list_uploads()
                    if not item.state.is_absent
                }.get(job.alias)
                if found is not None and found.state.is_complete and not job.overwrite:
                    outcome = await self._already_in_box(job, found)
                    outcome.message = (
                        f"uploaded meanwhile by another process ({previous}); {outcome.message}"
                    )
                    self._reporter.file_finished(outcome)
                    return outcome
                unfinished = (
                    found.id if found is not None and found.state is FileUploadState.INIT else None
                )
                job = replace(job, unfinished_file_id=unfinished)
            return await self._upload_remembering(job)
        finally:
            lock.release()

    async def _upload_remembering(self, job: UploadJob) -> FileOutcome:
        """Upload ``job``; remember the SHA-256 it computed if the file stayed the same.

        The uploader compares the file's identity before its first and after its last
        read; the same identity before the upload and after it makes its
        ``decrypted_sha256`` the digest of the file as it is now.
        """
        try:
            before: FileIdentity | None = FileIdentity.of(job.path)
        except OSError:
            before = None
        started = time.time()
        outcome = await self._uploader.upload(job)
        sha256 = outcome.details.get("decrypted_sha256")
        if outcome.outcome is Outcome.DONE and before is not None and isinstance(sha256, str):
            with contextlib.suppress(OSError):
                if FileIdentity.of(job.path) == before:
                    self._digests.remember(job.path, before, sha256, read_at=started)
        return outcome

    async def _acquire(self, lock: TransferLock, name: str, *, wait: bool) -> LockOwner | None:
        """Take ``lock``; with ``wait`` poll every ``wait_poll`` seconds while it is busy.

        Returns the previous owner record (:meth:`TransferLock.acquire`). A soft lock of a
        process without heartbeat for too long is taken over, with a warning.

        Raises:
            TransferLockBusy: busy, and not ``wait``.
            OSError: the lock file cannot be created.
        """
        while True:
            try:
                previous = lock.acquire()
            except TransferLockBusy as busy:
                if not wait:
                    raise
                self._reporter.file_status(
                    name, f"waiting for another process ({busy.holder}) to finish it"
                )
                await asyncio.sleep(self._wait_poll)
                continue
            if lock.taken_over is not None:
                self._reporter.message(
                    f"{name}: took over the lock of {lock.taken_over}, whose last sign of "
                    f"life is {lock.taken_over.age():.0f} s old (the process is gone).",
                    level="warning",
                )
            return previous

    def _busy(self, name: str, size: int, path: Path, message: str, **details: str) -> FileOutcome:
        return self._skipped(name, size, path, message, outcome=Outcome.BUSY, **details)

    def _skipped(
        self,
        name: str,
        size: int,
        path: Path,
        message: str,
        outcome: Outcome = Outcome.SKIPPED,
        **details: str,
    ) -> FileOutcome:
        result = FileOutcome(
            name=name,
            outcome=outcome,
            size=size,
            path=path,
            message=message,
            details=dict(details),
        )
        self._reporter.file_finished(result)
        return result

    # --- download ------------------------------------------------------------------

    async def download_plan(
        self, output_dir: Path, *, accessions: list[str] | None, decrypt: bool
    ) -> list[DownloadJob]:
        """The download jobs for the work package's files (optionally only ``accessions``).

        A file whose accession or extension is unsafe as a file name gets a job with
        ``name_error`` set, which :meth:`download` fails on its own.

        Raises:
            UserInputError: an accession is not part of the work package.
        """
        files = await self._require("download")
        if accessions:
            unknown = [a for a in accessions if a not in files]
            if unknown:
                raise UserInputError(
                    f"Not in this work package: {', '.join(unknown)}.",
                    hint="Run 'ghga-connector ls' to see the files you may download.",
                )
            files = {a: files[a] for a in accessions}
        jobs = []
        for accession, extension in sorted(files.items()):
            try:
                name = safe_file_name(accession, extension)
            except ServerResponseError as error:  # this file fails; the others go on
                target = _placeholder(output_dir, accession, extension)
                jobs.append(DownloadJob(accession, extension, target, decrypt, error.message))
                continue
            target = output_dir / (name if decrypt else name + ".c4gh")
            jobs.append(DownloadJob(accession, extension, target, decrypt))
        return jobs

    async def download(
        self,
        jobs: list[DownloadJob],
        *,
        overwrite: bool = False,
        dry_run: bool = False,
        verify: bool = False,
        allow_unverified: bool = False,
        wait: bool = False,
    ) -> list[FileOutcome]:
        """Download ``jobs``. An existing target is replaced only with ``overwrite``.

        An existing target is ``skipped`` only when proven to be the archive's file: its
        sidecar (``X.sha256``, written by the connector after the file passed the
        archive's checksum) vouches for it as it is now (one ``lstat`` and a 4 KiB read,
        no DRS request), or, without such a sidecar, once all of it was read and matched
        (then the sidecar is written). One that does not match is ``failed`` (with
        ``verify``: downloaded again); one GHGA has no checksum for is ``unverified``.
        ``verify`` reads every existing file. Content without a GHGA checksum gets its
        final name only with ``allow_unverified`` (else ``X.unverified``). A target
        another process is downloading is ``busy``, or with ``wait`` waited for. A job
        with a ``name_error`` (unsafe server name) is a ``FAILED`` outcome; the others go on.

        Raises:
            UserInputError: the access token is for an upload work package.
            ServiceUnreachableError, ServerResponseError: reading the work package failed
                (a failure of one file becomes its ``FAILED`` outcome instead).
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted.
        """
        jobs = [replace(job, allow_unverified=allow_unverified) for job in jobs]
        outcomes: dict[Path, FileOutcome] = {}
        planned = []
        for job in jobs:
            if job.name_error is not None:
                outcomes[job.target] = FileOutcome(
                    name=ascii(job.accession + (job.extension or ""))[1:-1],
                    outcome=Outcome.FAILED,
                    message=job.name_error,
                    details={"accession": job.accession},
                )
                self._reporter.file_finished(outcomes[job.target])
                continue
            if job.target.is_symlink():  # never "skipped": the downloader refuses it clearly
                planned.append(job)
                continue
            if not job.target.exists() or overwrite:
                planned.append(job)
                continue
            if dry_run:
                outcomes[job.target] = self._existing_in_dry_run(job)
                continue
            outcome = await self._judge_existing(job, verify=verify)
            if outcome is None:
                planned.append(job)
                continue
            outcomes[job.target] = outcome
            self._reporter.file_finished(outcome)
            if self._lock_downloads:
                _clear_leftovers(job.target)
        if dry_run:
            for job in planned:
                outcomes[job.target] = await self._planned_download(job)
        else:
            # Targets there already are planned only to be replaced (--overwrite, or
            # --verify found them damaged); others may appear meanwhile from another process.
            present = {job.target for job in planned if job.target.exists()}

            async def download_one(job: DownloadJob) -> FileOutcome:
                return await self._download_locked(job, replacing=job.target in present, wait=wait)

            async with asyncio.TaskGroup() as group:
                # Ask for every file of a larger batch, beside the downloads, so that the
                # archive stages them in parallel while the first ones download.
                if len(planned) > self._in_flight:
                    group.create_task(
                        run_bounded(planned, STAGING_REQUESTS_IN_FLIGHT, self._request_staging)
                    )
                results = await run_bounded(planned, self._in_flight, download_one)
            outcomes.update({job.target: o for job, o in zip(planned, results, strict=True)})
        return [outcomes[job.target] for job in jobs]

    def _existing_in_dry_run(self, job: DownloadJob) -> FileOutcome:
        """A dry run's row for a target that exists: skipped if its sidecar vouches for it."""
        vouched = vouched_checksum(job.target) is not None
        return FileOutcome(
            name=job.target.name,
            outcome=Outcome.SKIPPED if vouched else Outcome.PLANNED,
            path=job.target,
            size=job.target.stat().st_size,
            message="exists already, verified when it was downloaded"
            if vouched
            else "exists already; would read it and compare it with the archive's checksum",
            details={"accession": job.accession},
        )

    async def _judge_existing(self, job: DownloadJob, *, verify: bool) -> FileOutcome | None:
        """The outcome of a target that exists (no ``--overwrite``), or None: download it.

        Skipped if its sidecar vouches for it (cheap) and ``verify`` is not set; else the
        whole file is read and compared with the checksum (sidecar, else DRS).
        """

        def result(outcome: Outcome, message: str) -> FileOutcome:
            return FileOutcome(
                name=job.target.name,
                outcome=outcome,
                path=job.target,
                size=job.target.stat().st_size,
                message=message,
                details={"accession": job.accession},
            )

        if not verify and vouched_checksum(job.target) is not None:
            return result(
                Outcome.SKIPPED,
                f"exists already, verified when it was downloaded ({sidecar_path(job.target).name});"
                " --verify reads it again, --overwrite replaces it",
            )
        try:
            good = await self._downloader.verify_existing(job)
        except ConnectorError as error:
            return result(Outcome.FAILED, f"checking the existing file failed: {error.message}")
        if good is None:
            return result(
                Outcome.UNVERIFIED,
                "exists already, but GHGA has no checksum to verify it with",
            )
        if good:
            return result(Outcome.SKIPPED, "exists already and passed verification")
        if verify:
            self._reporter.message(
                f"{job.target.name}: the existing file is incomplete or damaged; "
                "downloading it again.",
                level="warning",
            )
            return None
        return result(
            Outcome.FAILED,
            "exists already but does not match the archive's checksum; --verify downloads "
            "it again, --overwrite replaces it",
        )

    async def stream(self, accession: str, sink: BinaryIO) -> FileOutcome:
        """Write the decrypted bytes of ``accession`` to ``sink`` in order, then verify them.

        Waits while the file is staged (DCS ``GET /objects/{accession}``), then streams
        it (see :mod:`ghga_connector.core.stream`). A failure is a ``FAILED`` outcome.

        Raises:
            UserInputError: ``accession`` is not part of the download work package.
        """
        if self._streamer is None:
            raise UserInputError("Streaming to standard output is not available here.")
        files = await self._require("download")
        if accession not in files:
            raise UserInputError(
                f"Not in this work package: {accession}.",
                hint="Run 'ghga-connector ls' to see the files you may download.",
            )
        try:
            drs = await self._stager.staged_object(accession)
        except (ServerResponseError, ServiceUnreachableError, StagingTimeoutError) as error:
            outcome = FileOutcome(
                name=accession,
                outcome=Outcome.FAILED,
                message=error.message + (f" {error.hint}" if error.hint else ""),
                details={"accession": accession},
                error_code=error.error_code,
            )
            self._reporter.file_finished(outcome)
            return outcome
        return await self._streamer.stream(accession, drs, sink)

    async def _planned_download(self, job: DownloadJob) -> FileOutcome:
        """A dry run's row: the plaintext size and whether the file is staged.

        Asking is also a request to stage the file (contract §3.4(a)); the size of a
        file still being staged is not known yet (the service sends it once staged).
        """
        size, staged = 0, False
        try:
            drs = await self._stager.probe(job.accession)
        except ConnectorError as error:
            message = f"would download; {error.message}"
        else:
            staged = drs is not None
            if drs is not None:
                size = plaintext_size(drs.size)
                message = "would download (staged)"
            else:
                message = "would download (being staged; size known once staged)"
        return FileOutcome(
            name=job.target.name,
            outcome=Outcome.PLANNED,
            path=job.target,
            size=size,
            message=message,
            details={"accession": job.accession, "staged": staged},
        )

    async def _request_staging(self, job: DownloadJob) -> None:
        """One DRS request for ``job``; errors are reported later, when it downloads."""
        with contextlib.suppress(ConnectorError):
            await self._stager.request_staging(job.accession)

    async def _download_locked(
        self, job: DownloadJob, *, replacing: bool, wait: bool = False
    ) -> FileOutcome:
        """Download ``job`` holding the lock of its target.

        If another process holds it, the file is ``busy`` (``wait``: waited for).
        ``replacing``: the target existed when the batch was planned and is to be replaced;
        otherwise a target that exists once the lock is held was written meanwhile by
        another process and is judged like any existing target.
        """
        if not self._lock_downloads:
            return await self._download_one(job)
        lock = TransferLock(download_lock_path(job.target))
        try:
            await self._acquire(lock, job.target.name, wait=wait)
        except TransferLockBusy as busy:
            return self._busy(
                job.target.name,
                0,
                job.target,
                f"{job.target.name} is being downloaded by another process ({busy.holder}); "
                "not checked yet: run again later, or with --wait",
                accession=job.accession,
            )
        except OSError as error:
            return self._failed_download(
                job, f"Cannot lock {job.target.name} in the output folder: {error.strerror}."
            )
        try:
            if job.target.exists() and not replacing:
                outcome = await self._judge_existing(job, verify=False)
                if outcome is not None:
                    outcome.message = f"downloaded meanwhile by another process; {outcome.message}"
                    self._reporter.file_finished(outcome)
                    return outcome
            return await self._download_one(job)
        finally:
            lock.release()

    def _failed_download(self, job: DownloadJob, message: str) -> FileOutcome:
        outcome = FileOutcome(
            name=job.target.name,
            outcome=Outcome.FAILED,
            path=job.target,
            message=message,
            details={"accession": job.accession},
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def _download_one(self, job: DownloadJob) -> FileOutcome:
        try:
            drs = await self._stager.staged_object(job.accession)
        except (ServerResponseError, ServiceUnreachableError, StagingTimeoutError) as error:
            outcome = FileOutcome(
                name=job.target.name,
                outcome=Outcome.FAILED,
                path=job.target,
                message=error.message + (f" {error.hint}" if error.hint else ""),
                details={"accession": job.accession},
                error_code=error.error_code,
            )
            self._reporter.file_finished(outcome)
            return outcome
        return await self._downloader.download(job, drs)

    async def download_listing(
        self, *, details: bool = False
    ) -> list[dict[str, str | int | bool | None]]:
        """For ``ls``: each file of a download package, from the work package alone.

        Rows (sorted by accession): ``accession``, ``file`` (the name a download writes,
        ``None`` if the server sent an unsafe name) and ``note`` (``"invalid: ..."`` and
        why for such a name, else ``None``). No request reaches the download service:
        at GHGA each ``GET /objects/{accession}`` stages the file from permanent storage
        and is recorded as a download served (contract §3.4(a)).

        With ``details`` the rows also hold ``size`` (plaintext bytes, ``None`` while
        the file is being staged), ``sha256`` (the DRS checksum, hex, if sent) and
        ``staged``; this asks the download service for every listed file, which stages
        each of them.

        Raises:
            UserInputError: the access token is for an upload work package.
            ServiceUnreachableError: a GHGA service cannot be reached.
        """
        files = await self._require("download")
        rows: list[dict[str, str | int | bool | None]] = []
        for accession, extension in sorted(files.items()):
            row: dict[str, str | int | bool | None] = {"accession": accession, "file": None}
            if details:
                row |= {"size": None, "sha256": None, "staged": None}
            row["note"] = None
            try:
                row["file"] = safe_file_name(accession, extension)
            except ServerResponseError as error:
                row["note"] = f"invalid: {error.message}"
                rows.append(row)
                continue
            if details:
                try:
                    drs = await self._stager.probe(accession)
                except ServerResponseError as error:
                    row["note"] = error.message
                else:
                    row["staged"] = drs is not None
                    if drs is not None:
                        row["size"] = plaintext_size(drs.size)
                        row["sha256"] = drs.sha256
            rows.append(row)
        return rows
