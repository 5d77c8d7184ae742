"""What an upload batch does with each file: skip, replace, continue, upload or only plan.

:class:`UploadBatch` decides per file against the file upload box (UCS listing): an
alias already there is ``skipped`` only when proven to be the same file, another file
under that name ``failed``, one without a checksum ``unverified``. It runs several
files at once and guards each upload journal with a lock against other processes
(:mod:`~ghga_connector.core.locks`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ghga_connector.core.browse import package_files
from ghga_connector.core.digests import DigestCache
from ghga_connector.core.journal import FileIdentity
from ghga_connector.core.locks import (
    WAIT_POLL_SECONDS,
    TransferLock,
    TransferLockBusy,
    acquire_waiting,
    prune_owner_records,
    release_off_loop,
)
from ghga_connector.core.outcomes import file_outcome
from ghga_connector.core.ports import (
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.core.scheduler import run_bounded
from ghga_connector.errors import ARCHIVED_BOX_HINT, ConnectorError, UploadRejectedError
from ghga_connector.models import FileOutcome, FileUploadState, Outcome, UploadListItem

__all__ = ["CLOCK_SLACK_SECONDS", "UploadBatch"]

#: Seconds of clock difference between hosts sharing a state directory that the
#: "worked on by another process since the box was listed" test allows for.
CLOCK_SLACK_SECONDS = 120.0

#: Upload states that only an archived box holds (contract §5.1, §5.2).
_ARCHIVED = frozenset({FileUploadState.AWAITING_ARCHIVAL, FileUploadState.ARCHIVED})


class UploadBatch:
    """Uploads batches of files into the file upload box (see the module docstring).

    Args:
        accessor: the work package accessor.
        uploader: uploads one file.
        reporter: progress events.
        in_flight: files handled at once.
        lock_path: ``(box id, alias) -> lock file`` guarding each upload journal
            against other processes (``None``: no locking).
        digests: the local files' SHA-256, remembered in the state folder.
        wait_poll: seconds between attempts to take a busy file's lock (``wait``).
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        uploader: UploaderBase,
        reporter: ProgressReporter,
        in_flight: int,
        lock_path: Callable[[str, str], Path] | None = None,
        digests: DigestCache | None = None,
        wait_poll: float = WAIT_POLL_SECONDS,
    ) -> None:
        self._accessor = accessor
        self._uploader = uploader
        self._reporter = reporter
        self._in_flight = in_flight
        self._lock_path = lock_path
        self._digests = digests or DigestCache(None)
        self._wait_poll = wait_poll
        self._pruned = False

    async def upload(
        self, jobs: list[UploadJob], *, dry_run: bool = False, wait: bool = False
    ) -> list[FileOutcome]:
        """Upload ``jobs`` (see :meth:`TransferHandler.upload`); one outcome per job, in order.

        Raises:
            AccessDeniedError, UserInputError: problems that concern the whole batch.
            UploadRejectedError: a dry run into an archived box.
        """
        await package_files(self._accessor, "upload")
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
                outcomes[job.alias] = file_outcome(
                    job.alias,
                    Outcome.PLANNED,
                    "would replace the existing upload" if job.overwrite else "would upload",
                    size=job.size,
                    path=job.path,
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
            return file_outcome(
                job.alias, outcome, message, size=job.size, path=job.path, details=details
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
        if self._lock_path is None:
            return await self._upload_remembering(job)
        box_id = self._accessor.file_upload_box_id
        try:
            path = await asyncio.to_thread(self._lock_path, box_id, job.alias)
            if not self._pruned:
                self._pruned = True
                await asyncio.to_thread(prune_owner_records, path.parent)
            lock = TransferLock(path, keep_owner=True)
            previous = await acquire_waiting(
                lock, job.alias, self._reporter, wait=wait, poll=self._wait_poll
            )
        except OSError as error:
            return file_outcome(
                job.alias,
                Outcome.FAILED,
                f"Cannot lock the upload journal of {job.alias} in the state "
                f"directory: {error.strerror}. Check GHGA_CONNECTOR_STATE_DIR.",
                size=job.size,
                path=job.path,
                report=self._reporter,
            )
        except TransferLockBusy as busy:
            return file_outcome(
                job.alias,
                Outcome.BUSY,
                f"{job.alias} is being uploaded by another process ({busy.holder}); "
                "not checked yet: run again later, or with --wait",
                size=job.size,
                path=job.path,
                report=self._reporter,
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
            await release_off_loop(lock)

    async def _upload_remembering(self, job: UploadJob) -> FileOutcome:
        """Upload ``job``; remember the SHA-256 it computed if the file stayed the same.

        The uploader compares the file's identity before its first and after its last
        read; the same identity before the upload and after it makes its
        ``decrypted_sha256`` the digest of the file as it is now.
        """
        before = await asyncio.to_thread(_identity_or_none, job.path)
        started = time.time()
        outcome = await self._uploader.upload(job)
        sha256 = outcome.details.get("decrypted_sha256")
        if outcome.outcome is Outcome.DONE and before is not None and isinstance(sha256, str):
            await asyncio.to_thread(self._remember, job.path, before, sha256, started)
        return outcome

    def _remember(self, path: Path, before: FileIdentity, sha256: str, started: float) -> None:
        """Keep ``sha256`` in the digest cache if ``path`` is still as it was (in a thread)."""
        with contextlib.suppress(OSError):
            if FileIdentity.of(path) == before:
                self._digests.remember(path, before, sha256, read_at=started)


def _identity_or_none(path: Path) -> FileIdentity | None:
    try:
        return FileIdentity.of(path)
    except OSError:
        return None
