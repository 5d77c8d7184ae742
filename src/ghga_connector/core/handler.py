"""The transfer handler: the one object the command line runs batches and queries on.

:class:`TransferHandler` receives the injected :class:`WorkPackageAccessorBase`,
:class:`FileStagerBase`, :class:`UploaderBase` and :class:`DownloaderBase` and hands each
command to the module whose job it is:

* ``upload``: :class:`~ghga_connector.core.upload_batch.UploadBatch` (per-file policy);
* ``download``: :class:`~ghga_connector.core.download_batch.DownloadBatch` (per-file
  policy, output names from :mod:`~ghga_connector.core.naming`);
* ``ls``, ``delete``: :class:`~ghga_connector.core.browse.WorkPackageBrowser`.

Several files run at once, at most ``max_parallel_files``; a failed file never stops the
others. Offline commands (``status``, ``decrypt``) need no handler:
:func:`~ghga_connector.core.browse.unfinished_uploads`,
:func:`~ghga_connector.core.decrypt.decrypt_batch`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from ghga_connector.core.browse import BoxRow, PackageRow, WorkPackageBrowser
from ghga_connector.core.digests import DigestCache
from ghga_connector.core.download_batch import DownloadBatch
from ghga_connector.core.locks import WAIT_POLL_SECONDS
from ghga_connector.core.ports import (
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ProgressReporter,
    UploaderBase,
    UploadJob,
    WorkPackageAccessorBase,
)
from ghga_connector.core.stream import StreamDownloader
from ghga_connector.core.upload_batch import UploadBatch
from ghga_connector.models import FileOutcome, UploadListItem

__all__ = ["TransferHandler"]


class TransferHandler:
    """Runs upload and download batches and the work package queries.

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
        in_flight = max_parallel_files + prepare_ahead
        self.browser = WorkPackageBrowser(accessor=accessor, stager=stager, uploader=uploader)
        self.uploads = UploadBatch(
            accessor=accessor,
            uploader=uploader,
            reporter=reporter,
            in_flight=in_flight,
            lock_path=upload_lock_path,
            digests=digests,
            wait_poll=wait_poll,
        )
        self.downloads = DownloadBatch(
            accessor=accessor,
            stager=stager,
            downloader=downloader,
            reporter=reporter,
            in_flight=in_flight,
            lock_targets=lock_downloads,
            streamer=streamer,
            wait_poll=wait_poll,
        )

    # --- ls, delete (core/browse.py) ------------------------------------------------

    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads in the file upload box (:meth:`WorkPackageBrowser.list_uploads`)."""
        return await self.browser.list_uploads()

    async def delete_upload(self, file_id: str) -> None:
        """Remove an upload from the box (:meth:`WorkPackageBrowser.delete_upload`)."""
        await self.browser.delete_upload(file_id)

    async def find_upload(
        self, *, alias: str | None = None, file_id: str | None = None
    ) -> UploadListItem:
        """The upload with this ``alias`` or ``file_id`` (:meth:`WorkPackageBrowser.find_upload`)."""
        return await self.browser.find_upload(alias=alias, file_id=file_id)

    async def remove_upload(self, item: UploadListItem) -> None:
        """Remove ``item`` and forget its journal (:meth:`WorkPackageBrowser.remove_upload`)."""
        await self.browser.remove_upload(item)

    async def listing(
        self, *, show_all: bool = False, details: bool = False
    ) -> list[BoxRow] | list[PackageRow]:
        """For ``ls``: the rows of the box or package (:meth:`WorkPackageBrowser.listing`)."""
        return await self.browser.listing(show_all=show_all, details=details)

    async def download_listing(self, *, details: bool = False) -> list[PackageRow]:
        """For ``ls``: a download package's files (:meth:`WorkPackageBrowser.download_listing`)."""
        return await self.browser.download_listing(details=details)

    # --- upload (core/upload_batch.py) ----------------------------------------------

    async def upload(
        self, jobs: list[UploadJob], *, dry_run: bool = False, wait: bool = False
    ) -> list[FileOutcome]:
        """Upload ``jobs`` into the file upload box; one outcome per job, in order.

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
        return await self.uploads.upload(jobs, dry_run=dry_run, wait=wait)

    # --- download (core/download_batch.py) ------------------------------------------

    async def download_plan(
        self, output_dir: Path, *, accessions: list[str] | None, decrypt: bool
    ) -> list[DownloadJob]:
        """The download jobs for the work package's files (optionally only ``accessions``).

        A file whose accession or extension is unsafe as a file name gets a job with
        ``name_error`` set, which :meth:`download` fails on its own.

        Raises:
            UserInputError: an accession is not part of the work package.
        """
        return await self.downloads.plan(output_dir, accessions=accessions, decrypt=decrypt)

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
        return await self.downloads.download(
            jobs,
            overwrite=overwrite,
            dry_run=dry_run,
            verify=verify,
            allow_unverified=allow_unverified,
            wait=wait,
        )

    async def stream(self, accession: str, sink: BinaryIO) -> FileOutcome:
        """Write the decrypted bytes of ``accession`` to ``sink`` in order, then verify them.

        Waits while the file is staged (DCS ``GET /objects/{accession}``), then streams
        it (see :mod:`ghga_connector.core.stream`). A failure is a ``FAILED`` outcome.

        Raises:
            UserInputError: ``accession`` is not part of the download work package.
        """
        return await self.downloads.stream(accession, sink)
