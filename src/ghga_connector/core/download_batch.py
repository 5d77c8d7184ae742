"""What a download batch does with each file: skip, verify, replace, download or only plan.

:class:`DownloadBatch` turns the work package's files into jobs (output names from
:mod:`~ghga_connector.core.naming`), judges targets that exist already (their checksum
sidecar, else a full read), asks the archive to stage a larger batch ahead, runs several
files at once, and guards each target with a lock against other processes
(:mod:`~ghga_connector.core.locks`). One file can also be streamed to a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from pathlib import Path
from typing import BinaryIO

from ghga_connector.core.browse import package_files
from ghga_connector.core.decrypt import sidecar_path, vouched_checksum
from ghga_connector.core.locks import (
    WAIT_POLL_SECONDS,
    TransferLock,
    TransferLockBusy,
    acquire_waiting,
    clear_download_leftovers,
    download_lock_path,
    release_off_loop,
)
from ghga_connector.core.naming import invalid_name_placeholder, safe_file_name
from ghga_connector.core.outcomes import file_outcome
from ghga_connector.core.planning import plaintext_size
from ghga_connector.core.ports import (
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ProgressReporter,
    WorkPackageAccessorBase,
)
from ghga_connector.core.scheduler import run_bounded
from ghga_connector.core.stream import StreamDownloader
from ghga_connector.errors import (
    ConnectorError,
    ServerResponseError,
    ServiceUnreachableError,
    StagingTimeoutError,
    UserInputError,
)
from ghga_connector.models import FileOutcome, Outcome

__all__ = ["STAGING_REQUESTS_IN_FLIGHT", "DownloadBatch"]

#: DRS requests in flight while asking the archive to stage a batch.
STAGING_REQUESTS_IN_FLIGHT = 8

#: Errors of getting a staged DRS object that fail one file, not the batch.
_STAGING_ERRORS = (ServerResponseError, ServiceUnreachableError, StagingTimeoutError)


class DownloadBatch:
    """Downloads batches of files of a download work package (see the module docstring).

    Args:
        accessor: the work package accessor.
        stager: waits for staged files.
        downloader: downloads one file.
        reporter: progress events.
        in_flight: files handled at once.
        lock_targets: lock each target (``.<name>.lock`` beside it) against other
            processes writing the same file.
        streamer: writes one file's plaintext to a pipe (``download --output -``).
        wait_poll: seconds between attempts to take a busy file's lock (``wait``).
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        stager: FileStagerBase,
        downloader: DownloaderBase,
        reporter: ProgressReporter,
        in_flight: int,
        lock_targets: bool = False,
        streamer: StreamDownloader | None = None,
        wait_poll: float = WAIT_POLL_SECONDS,
    ) -> None:
        self._accessor = accessor
        self._stager = stager
        self._downloader = downloader
        self._reporter = reporter
        self._in_flight = in_flight
        self._lock_targets = lock_targets
        self._streamer = streamer
        self._wait_poll = wait_poll

    async def plan(
        self, output_dir: Path, *, accessions: list[str] | None, decrypt: bool
    ) -> list[DownloadJob]:
        """The jobs for the work package's files (see :meth:`TransferHandler.download_plan`).

        Raises:
            UserInputError: an accession is not part of the work package.
        """
        files = await package_files(self._accessor, "download")
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
                target = invalid_name_placeholder(output_dir, accession, extension)
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
        """Download ``jobs`` (see :meth:`TransferHandler.download`); one outcome per job.

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted.
        """
        jobs = [replace(job, allow_unverified=allow_unverified) for job in jobs]
        outcomes: dict[Path, FileOutcome] = {}
        planned = []
        for job in jobs:
            if job.name_error is not None:
                outcomes[job.target] = file_outcome(
                    ascii(job.accession + (job.extension or ""))[1:-1],
                    Outcome.FAILED,
                    job.name_error,
                    details={"accession": job.accession},
                    report=self._reporter,
                )
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
            if self._lock_targets:
                await asyncio.to_thread(clear_download_leftovers, job.target)
        if dry_run:
            for job in planned:
                outcomes[job.target] = await self._planned_download(job)
        else:
            # Targets there already are planned only to be replaced (--overwrite, or
            # --verify found them damaged); others may appear meanwhile from another process.
            present = {job.target for job in planned if job.target.exists()}

            async def download_one(job: DownloadJob) -> FileOutcome:
                return await self.download_locked(job, replacing=job.target in present, wait=wait)

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
        return file_outcome(
            job.target.name,
            Outcome.SKIPPED if vouched else Outcome.PLANNED,
            "exists already, verified when it was downloaded"
            if vouched
            else "exists already; would read it and compare it with the archive's checksum",
            path=job.target,
            size=job.target.stat().st_size,
            details={"accession": job.accession},
        )

    async def _judge_existing(self, job: DownloadJob, *, verify: bool) -> FileOutcome | None:
        """The outcome of a target that exists (no ``--overwrite``), or None: download it.

        Skipped if its sidecar vouches for it (cheap) and ``verify`` is not set; else the
        whole file is read and compared with the checksum (sidecar, else DRS).
        """

        def result(outcome: Outcome, message: str) -> FileOutcome:
            return file_outcome(
                job.target.name,
                outcome,
                message,
                path=job.target,
                size=job.target.stat().st_size,
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
        """Write the decrypted bytes of ``accession`` to ``sink`` (see :meth:`TransferHandler.stream`).

        Raises:
            UserInputError: ``accession`` is not part of the download work package.
        """
        if self._streamer is None:
            raise UserInputError("Streaming to standard output is not available here.")
        files = await package_files(self._accessor, "download")
        if accession not in files:
            raise UserInputError(
                f"Not in this work package: {accession}.",
                hint="Run 'ghga-connector ls' to see the files you may download.",
            )
        try:
            drs = await self._stager.staged_object(accession)
        except _STAGING_ERRORS as error:
            return file_outcome(
                accession,
                Outcome.FAILED,
                error=error,
                details={"accession": accession},
                report=self._reporter,
            )
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
        return file_outcome(
            job.target.name,
            Outcome.PLANNED,
            message,
            path=job.target,
            size=size,
            details={"accession": job.accession, "staged": staged},
        )

    async def _request_staging(self, job: DownloadJob) -> None:
        """One DRS request for ``job``; errors are reported later, when it downloads."""
        with contextlib.suppress(ConnectorError):
            await self._stager.request_staging(job.accession)

    async def download_locked(
        self, job: DownloadJob, *, replacing: bool, wait: bool = False
    ) -> FileOutcome:
        """Download ``job`` holding the lock of its target.

        If another process holds it, the file is ``busy`` (``wait``: waited for).
        ``replacing``: the target existed when the batch was planned and is to be replaced;
        otherwise a target that exists once the lock is held was written meanwhile by
        another process and is judged like any existing target.
        """
        if not self._lock_targets:
            return await self._download_one(job)
        lock = TransferLock(download_lock_path(job.target))
        name = job.target.name
        try:
            await acquire_waiting(lock, name, self._reporter, wait=wait, poll=self._wait_poll)
        except TransferLockBusy as busy:
            message = (
                f"{name} is being downloaded by another process ({busy.holder}); "
                "not checked yet: run again later, or with --wait"
            )
            return self._finished(job, Outcome.BUSY, message)
        except OSError as error:
            message = f"Cannot lock {name} in the output folder: {error.strerror}."
            return self._finished(job, Outcome.FAILED, message)
        try:
            if not replacing and await asyncio.to_thread(job.target.exists):
                outcome = await self._judge_existing(job, verify=False)
                if outcome is not None:
                    outcome.message = f"downloaded meanwhile by another process; {outcome.message}"
                    self._reporter.file_finished(outcome)
                    return outcome
            return await self._download_one(job)
        finally:
            await release_off_loop(lock)

    def _finished(
        self,
        job: DownloadJob,
        outcome: Outcome,
        message: str = "",
        *,
        error: ConnectorError | None = None,
    ) -> FileOutcome:
        """A reported outcome of ``job`` that did not reach the downloader."""
        return file_outcome(
            job.target.name,
            outcome,
            message,
            error=error,
            path=job.target,
            details={"accession": job.accession},
            report=self._reporter,
        )

    async def _download_one(self, job: DownloadJob) -> FileOutcome:
        try:
            drs = await self._stager.staged_object(job.accession)
        except _STAGING_ERRORS as error:
            return self._finished(job, Outcome.FAILED, error=error)
        return await self._downloader.download(job, drs)
