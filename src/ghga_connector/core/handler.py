"""The transfer handler: the one place that runs upload and download batches.

It receives the injected :class:`WorkPackageAccessorBase`, :class:`FileStagerBase`,
:class:`UploaderBase` and :class:`DownloaderBase` and decides per file what to do:
skip, replace, transfer, or only plan (``dry_run``). Several files run at once, at
most ``max_parallel_files``; a failed file never stops the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from ghga_connector.core.decrypt import decrypt_file
from ghga_connector.core.journal import JournalStore
from ghga_connector.core.locks import (
    TransferLock,
    TransferLockBusy,
    download_lock_path,
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

#: Upload states that only an archived box holds (contract §5.1, §5.2).
_ARCHIVED = frozenset({FileUploadState.AWAITING_ARCHIVAL, FileUploadState.ARCHIVED})

#: Server-supplied accessions and extensions must match these to become file names.
_ACCESSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_EXTENSION = re.compile(r"^(\.[A-Za-z0-9_-]{1,32}){0,4}$")


def safe_file_name(accession: str, extension: str) -> str:
    """``{accession}{extension}``, refusing anything that could leave the output folder.

    Raises:
        ServerResponseError: if the server sent an unsafe accession or extension.
    """
    if not _ACCESSION.match(accession) or not _EXTENSION.match(extension or ""):
        raise ServerResponseError(
            f"The server sent an unsafe file name ({accession!r}, {extension!r}); refusing it."
        )
    return f"{accession}{extension or ''}"


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
) -> list[FileOutcome]:
    """Decrypt each ``X.c4gh`` of ``sources`` to ``target_dir/X`` with :func:`decrypt_file`.

    A file that fails is a ``FAILED`` outcome and does not stop the others; each outcome
    is reported as it is known.
    """
    outcomes = []
    for source in sources:
        target = target_dir / source.name.removesuffix(".c4gh")
        try:
            outcome = decrypt_file(source, target, secret_key, overwrite=overwrite)
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

    async def listing(self, *, show_all: bool = False) -> list[dict[str, str | int | bool | None]]:
        """For ``ls``: the rows of an upload box, or of a download package.

        Upload box: alias, state, plaintext size in bytes and file id, sorted by alias;
        removed (cancelled) uploads only with ``show_all``. Download package: see
        :meth:`download_listing`.

        Raises:
            ServerResponseError, ServiceUnreachableError: the services failed.
        """
        package = await self._accessor.get_work_package()
        if package.type != "upload":
            return await self.download_listing()
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

    async def upload(self, jobs: list[UploadJob], *, dry_run: bool = False) -> list[FileOutcome]:
        """Upload ``jobs`` into the file upload box.

        An alias already uploaded (any state but ``init``, ``failed``, ``cancelled``) is
        skipped if the box holds a file of the same size, and fails if it holds a
        different one (a pipeline must never take another file for its own); either
        way ``overwrite`` replaces it. An upload left in ``init`` by an
        interrupted run is replaced.

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
        for job in jobs:
            found = existing.get(job.alias)
            if found is not None and found.state.is_complete and not job.overwrite:
                self._uploader.forget(job.alias)
                outcomes[job.alias] = _already_in_box(job, found)
                self._reporter.file_finished(outcomes[job.alias])
                continue
            if found is not None and found.state is FileUploadState.INIT:
                job = replace(job, unfinished_file_id=found.id)
            planned.append(job)
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
                return await self._upload_locked(job, listed_at)

            results = await run_bounded(planned, self._in_flight, upload_one)
            outcomes.update({o.name: o for o in results})
        return [outcomes[job.alias] for job in jobs]

    async def _upload_locked(self, job: UploadJob, listed_at: float) -> FileOutcome:
        """Upload ``job`` holding the lock of its journal; skip it if another process does.

        If another process held the lock since the box was listed (``listed_at``, Unix
        seconds), the box is listed again: that process may have finished the file
        (skipped) or left it unfinished (continued from the shared journal).
        """
        if self._upload_lock_path is None:
            return await self._uploader.upload(job)
        box_id = self._accessor.file_upload_box_id
        try:
            lock = TransferLock(self._upload_lock_path(box_id, job.alias), keep_owner=True)
            previous = lock.acquire()
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
            return self._skipped(
                job.alias,
                job.size,
                job.path,
                f"{job.alias} is being uploaded by another process ({busy.holder}); skipped",
            )
        try:
            if previous is not None and previous.time >= listed_at - CLOCK_SLACK_SECONDS:
                found = {
                    item.alias: item
                    for item in await self._accessor.list_uploads()
                    if not item.state.is_absent
                }.get(job.alias)
                if found is not None and found.state.is_complete and not job.overwrite:
                    return self._skipped(
                        job.alias,
                        job.size,
                        job.path,
                        f"uploaded meanwhile by another process ({previous}); "
                        f"already in the upload box ({found.state.value})",
                    )
                unfinished = (
                    found.id if found is not None and found.state is FileUploadState.INIT else None
                )
                job = replace(job, unfinished_file_id=unfinished)
            return await self._uploader.upload(job)
        finally:
            lock.release()

    def _skipped(
        self, name: str, size: int, path: Path, message: str, **details: str
    ) -> FileOutcome:
        outcome = FileOutcome(
            name=name,
            outcome=Outcome.SKIPPED,
            size=size,
            path=path,
            message=message,
            details=dict(details),
        )
        self._reporter.file_finished(outcome)
        return outcome

    # --- download ------------------------------------------------------------------

    async def download_plan(
        self, output_dir: Path, *, accessions: list[str] | None, decrypt: bool
    ) -> list[DownloadJob]:
        """The download jobs for the work package's files (optionally only ``accessions``).

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
            name = safe_file_name(accession, extension)
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
    ) -> list[FileOutcome]:
        """Download ``jobs``. An existing target is skipped unless ``overwrite``.

        With ``verify``, an existing target is checked first (checksum, and every
        Crypt4GH segment of an encrypted file) and downloaded again if it fails.

        Raises:
            UserInputError: the access token is for an upload work package.
            ServiceUnreachableError, ServerResponseError: reading the work package failed
                (a failure of one file becomes its ``FAILED`` outcome instead).
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted.
        """
        outcomes: dict[Path, FileOutcome] = {}
        planned = []
        for job in jobs:
            if job.target.is_symlink():  # never "skipped": the downloader refuses it clearly
                planned.append(job)
                continue
            if (
                job.target.exists()
                and not overwrite
                and verify
                and not dry_run
                and not await self._downloader.verify_existing(job)
            ):
                self._reporter.message(
                    f"{job.target.name}: the existing file is incomplete or damaged; "
                    "downloading it again.",
                    level="warning",
                )
                planned.append(job)
                continue
            if job.target.exists() and not overwrite:
                outcomes[job.target] = FileOutcome(
                    name=job.target.name,
                    outcome=Outcome.SKIPPED,
                    path=job.target,
                    size=job.target.stat().st_size,
                    message="exists already and passed verification"
                    if verify
                    else "exists already; use --overwrite to replace it",
                    details={"accession": job.accession},
                )
                self._reporter.file_finished(outcomes[job.target])
                if self._lock_downloads and not dry_run:
                    _clear_leftovers(job.target)
            else:
                planned.append(job)
        if dry_run:
            for job in planned:
                outcomes[job.target] = await self._planned_download(job)
        else:
            # Targets there already are planned only to be replaced (--overwrite, or
            # --verify found them damaged); others may appear meanwhile from another process.
            present = {job.target for job in planned if job.target.exists()}

            async def download_one(job: DownloadJob) -> FileOutcome:
                return await self._download_locked(job, replacing=job.target in present)

            async with asyncio.TaskGroup() as group:
                # Ask for every file of a larger batch, beside the downloads, so that the
                # archive stages them in parallel while the first ones download.
                if len(planned) > self._in_flight:
                    group.create_task(
                        run_bounded(planned, STAGING_REQUESTS_IN_FLIGHT, self._request_staging)
                    )
                results = await run_bounded(planned, self._in_flight, download_one)
            outcomes.update({o.path: o for o in results if o.path is not None})
        return [outcomes[job.target] for job in jobs]

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

    async def _download_locked(self, job: DownloadJob, *, replacing: bool) -> FileOutcome:
        """Download ``job`` holding the lock of its target; skip it if another process does.

        ``replacing``: the target existed when the batch was planned and is to be replaced;
        otherwise a target that exists once the lock is held was written meanwhile by
        another process and is skipped.
        """
        if not self._lock_downloads:
            return await self._download_one(job)
        lock = TransferLock(download_lock_path(job.target))
        try:
            lock.acquire()
        except TransferLockBusy as busy:
            return self._skipped(
                job.target.name,
                0,
                job.target,
                f"{job.target.name} is being downloaded by another process ({busy.holder}); "
                "skipped",
                accession=job.accession,
            )
        except OSError as error:
            return self._failed_download(
                job, f"Cannot lock {job.target.name} in the output folder: {error.strerror}."
            )
        try:
            if job.target.exists() and not replacing:
                return self._skipped(
                    job.target.name,
                    job.target.stat().st_size,
                    job.target,
                    "downloaded meanwhile by another process",
                    accession=job.accession,
                )
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

    async def download_listing(self) -> list[dict[str, str | int | bool | None]]:
        """For ``ls``: each file of a download package with its size and staging state.

        Asking is also a request to stage the file (contract §3.4(a)).

        Raises:
            UserInputError: the access token is for an upload work package.
            ServiceUnreachableError: a GHGA service cannot be reached.
        """
        files = await self._require("download")
        rows: list[dict[str, str | int | bool | None]] = []
        for accession, extension in sorted(files.items()):
            try:
                drs = await self._stager.probe(accession)
            except ServerResponseError as error:
                rows.append(
                    {"accession": accession, "file": None, "size": None, "staged": error.message}
                )
                continue
            size = plaintext_size(drs.size) if drs is not None else None
            rows.append(
                {
                    "accession": accession,
                    "file": safe_file_name(accession, extension),
                    "size": size,
                    "staged": drs is not None,
                }
            )
        return rows


def _already_in_box(job: UploadJob, found: UploadListItem) -> FileOutcome:
    """The outcome of a job whose alias the box already holds (no ``--overwrite``).

    Same plaintext size: ``skipped``. A different size: ``failed``, since the file in
    the box is another file than the one the user meant to upload.
    """
    details: dict[str, str | int | float | None] = {
        "file_id": found.id,
        "state": found.state.value,
        "encrypted_size": found.encrypted_size,
    }
    if found.decrypted_size is not None and found.decrypted_size != job.size:
        return FileOutcome(
            name=job.alias,
            outcome=Outcome.FAILED,
            size=job.size,
            path=job.path,
            message=f"a different file named {job.alias} is already in the upload box "
            f"({found.decrypted_size} bytes, this one {job.size}); use --overwrite to "
            "replace it",
            details=details,
        )
    return FileOutcome(
        name=job.alias,
        outcome=Outcome.SKIPPED,
        size=job.size,
        path=job.path,
        message=f"already in the upload box ({found.state.value}); use --overwrite to replace it",
        details=details,
    )
