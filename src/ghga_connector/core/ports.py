"""The ports of the transfer engine.

Two kinds:

* what the core needs from GHGA: :class:`WpsPort`, :class:`UcsPort`, :class:`DcsPort`
  and :class:`ObjectStoragePort` (``typing.Protocol`` classes with exactly the async
  methods the core calls). :mod:`ghga_connector.adapters` implements them over HTTP,
  ``tests/fakes.py`` in memory; only :mod:`ghga_connector.inject` names the adapters.
* the engine's own parts, as abstract base classes with the design's names
  (:class:`WorkPackageAccessorBase`, :class:`FileStagerBase`, :class:`UploaderBase`,
  :class:`DownloaderBase`, :class:`ProgressReporter`): the
  :class:`~ghga_connector.core.handler.TransferHandler` is written against these only.

This module imports only :mod:`ghga_connector.models` and the standard library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ghga_connector.models import (
    DrsObject,
    FileOutcome,
    Staging,
    TokenSource,
    UploadChecksums,
    UploadListItem,
    UploadWorkType,
    WorkPackage,
)
from ghga_connector.retrying import RetryNotice

__all__ = [
    "DcsPort",
    "DownloadJob",
    "DownloaderBase",
    "FileStagerBase",
    "ObjectStoragePort",
    "PartBody",
    "ProgressReporter",
    "UcsPort",
    "UploadJob",
    "UploaderBase",
    "WorkPackageAccessorBase",
    "WpsPort",
]


# --- what the core needs from the GHGA services ---------------------------------------


class WpsPort(Protocol):
    """The work package service (contract §3.1), authenticated with the WPAT.

    The WOTs come back sealed (base64 ``crypto_box_seal`` to the user's key) with the
    ``max-age`` the service set, in seconds (``None``: not given).
    """

    async def get_work_package(self) -> WorkPackage:
        """``GET /work-packages/{id}``.

        Raises:
            AccessDeniedError: the WPAT is wrong, expired or revoked.
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer.
        """
        ...

    async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
        """``POST .../files/{accession}/work-order-tokens``: sealed WOT and max-age.

        Raises:
            AccessDeniedError: the WPAT or the file is refused.
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer.
        """
        ...

    async def create_upload_wot(
        self,
        box_id: str,
        work_type: UploadWorkType,
        *,
        alias: str | None = None,
        file_id: str | None = None,
    ) -> tuple[str, float | None]:
        """``POST .../boxes/{box_id}/work-order-tokens``: sealed WOT and max-age.

        Raises:
            AccessDeniedError: the WPAT is refused.
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer.
        """
        ...


class UcsPort(Protocol):
    """The upload controller service (contract §3.3); each call takes its WOT source."""

    async def list_uploads(self, box_id: str, token: TokenSource) -> list[UploadListItem]:
        """Every upload in the file upload box ``box_id``.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: an unexpected answer.
        """
        ...

    async def create_upload(
        self,
        box_id: str,
        token: TokenSource,
        *,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        overwrite: bool,
    ) -> tuple[str, str]:
        """Create an upload (sizes in bytes); returns ``(file_id, storage_alias)``.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: the server refused (``exception_id`` attached).
            ServerResponseError: an unexpected answer.
        """
        ...

    async def get_part_url(
        self, box_id: str, file_id: str, part_no: int, token: TokenSource
    ) -> str:
        """A presigned PUT URL for the 1-based part ``part_no``.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: the server refused.
        """
        ...

    async def complete_upload(
        self, box_id: str, file_id: str, checksums: UploadChecksums, token: TokenSource
    ) -> None:
        """Complete the upload with its checksums (idempotent).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: the server refused (e.g. a checksum mismatch).
        """
        ...

    async def delete_upload(self, box_id: str, file_id: str, token: TokenSource) -> None:
        """Remove an upload in any state (idempotent).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: the server refused.
        """
        ...


class DcsPort(Protocol):
    """The download controller service: DRS objects and envelopes (contract §3.4)."""

    async def get_drs_object(self, accession: str, token: TokenSource) -> DrsObject | Staging:
        """The DRS object of a staged file, or :class:`Staging` while it is staged.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            FileNotDownloadableError: the file is unknown or access is refused.
            ServerResponseError: an unusable answer.
        """
        ...

    async def get_envelope(self, accession: str, token: TokenSource) -> bytes:
        """The file's Crypt4GH envelope re-encrypted to the user's key (124 bytes).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            FileNotDownloadableError: the server refused.
            ServerResponseError: an unusable answer.
        """
        ...


class PartBody(Protocol):
    """An upload part produced while it is sent, so that it is never held whole.

    ``size`` is its length in bytes (the ``Content-Length``). Each ``async for`` over it
    produces the whole part again from the start, byte-identical (a retried ``PUT``,
    or a retry of the HTTP layer, iterates it again); the chunks are views that are
    valid until the next chunk is asked for.
    """

    @property
    def size(self) -> int:
        """Bytes in the part."""
        ...

    def __aiter__(self) -> AsyncIterator[memoryview]:
        """The part's bytes from the start, in chunks."""
        ...


class ObjectStoragePort(Protocol):
    """S3 through presigned URLs (contract §3.5); URLs are never logged or shown."""

    async def put_part(self, url: str, data: memoryview | bytes | PartBody) -> str | None:
        """``PUT`` one part; the ETag S3 reports (without quotes), if any.

        ``data`` is a buffer, or a :class:`PartBody` of ``data.size`` bytes.

        Raises:
            PresignedUrlExpired: 403; ask for a new URL.
            ServiceUnreachableError: no answer after the transport's retries.
            ServerResponseError: any other unexpected status.
        """
        ...

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        """Fetch object bytes ``[start, stop)`` into ``into`` (exactly ``stop - start``).

        Raises:
            PresignedUrlExpired: 403; ask for a new URL.
            ServiceUnreachableError: no answer after the transport's retries.
            BodyBrokenError: the body broke off or was short (retry the range).
            ServerResponseError: another status, or too many bytes.
        """
        ...


@dataclass(frozen=True)
class UploadJob:
    """One local file to upload under ``alias``; ``size`` is the plaintext size in bytes.

    ``unfinished_file_id`` names an upload of this alias left in ``init`` by an earlier
    run: it is resumed if the journal matches the file, else replaced. ``restart``
    replaces it even then.
    """

    path: Path
    alias: str
    size: int
    overwrite: bool = False
    restart: bool = False
    unfinished_file_id: str | None = None


@dataclass(frozen=True)
class DownloadJob:
    """One file of a download work package and where it goes.

    ``target`` is the final path: ``{accession}{extension}.c4gh`` (encrypted) or
    ``{accession}{extension}`` with ``decrypt``. ``name_error`` says why the server's
    accession or extension cannot become a file name; such a job is never downloaded
    (its ``target`` is a placeholder nothing writes to) and fails on its own. Content
    that cannot be verified (no checksum from GHGA) gets the final name only with
    ``allow_unverified``; else it is kept as ``<target>.unverified``.
    """

    accession: str
    extension: str
    target: Path
    decrypt: bool
    name_error: str | None = None
    allow_unverified: bool = False


class ProgressReporter(ABC):
    """Receives events from the engine; it never prints itself. Sizes in bytes."""

    @abstractmethod
    def file_started(self, name: str, total: int) -> None:
        """A file starts; ``total`` plaintext bytes are expected."""

    @abstractmethod
    def advance(self, name: str, nbytes: int) -> None:
        """``nbytes`` more bytes are done (negative when a part is rolled back)."""

    @abstractmethod
    def file_status(self, name: str, status: str) -> None:
        """A short state such as 'staging, retry in 5 s' or 'finalising'."""

    @abstractmethod
    def file_finished(self, outcome: FileOutcome) -> None:
        """A file ended (done, skipped or failed)."""

    @abstractmethod
    def message(self, text: str, *, level: str = "info") -> None:
        """A line for the user (``info``, ``warning`` or ``error``)."""

    def request_retried(self, notice: RetryNotice) -> None:
        """A request is sent again: what, why, attempt k of n (a warning by default)."""
        self.message(notice.text(), level="warning")


class WorkPackageAccessorBase(ABC):
    """Access to one work package: its details and its work order tokens (WOTs)."""

    @abstractmethod
    async def get_work_package(self) -> WorkPackage:
        """The work package details (fetched once per run).

        Raises:
            AccessDeniedError: the access token was refused.
            ServiceUnreachableError, ServerResponseError: the work package service failed.
        """

    @abstractmethod
    async def upload_wot(
        self,
        work_type: str,
        *,
        alias: str | None = None,
        file_id: str | None = None,
        force_new: bool = False,
    ) -> str:
        """An opened upload-path WOT (compact JWS), cached while it is fresh.

        Raises:
            UserInputError: not an upload work package.
            ServiceUnreachableError: the work package service cannot be reached.
            AccessDeniedError: the access token was refused.
            ServerResponseError: the WOT is not a valid sealed JWS.
            KeyFileError: the WOT was not sealed to the user's key.
        """

    @abstractmethod
    async def download_wot(self, accession: str, *, force_new: bool = False) -> str:
        """An opened download WOT for ``accession``, cached while it is fresh.

        Raises:
            ServiceUnreachableError: the work package service cannot be reached.
            AccessDeniedError: the access token was refused.
            ServerResponseError: the WOT is not a valid sealed JWS.
            KeyFileError: the WOT was not sealed to the user's key.
        """

    @abstractmethod
    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads currently in the work package's file upload box.

        Raises:
            UserInputError: not an upload work package.
            ServiceUnreachableError, ServerResponseError: a GHGA service failed.
        """

    @property
    @abstractmethod
    def file_upload_box_id(self) -> str:
        """The file upload box id (after :meth:`get_work_package`).

        Raises:
            UserInputError: not an upload work package.
        """


class FileStagerBase(ABC):
    """Waits until files are staged in the outbox and returns their DRS objects."""

    @abstractmethod
    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        """The DRS object of ``accession`` once staged (waits on 202 + Retry-After).

        Raises:
            StagingTimeoutError: not staged within the configured wait.
            FileNotDownloadableError: the file is unknown or access was refused.
            ServiceUnreachableError: the download service cannot be reached.
        """

    @abstractmethod
    async def probe(self, accession: str) -> DrsObject | None:
        """One look: the DRS object if staged, else ``None`` (asks the server to stage it).

        Raises:
            FileNotDownloadableError: the file is unknown or access was refused.
            ServiceUnreachableError: the download service cannot be reached.
        """

    async def request_staging(self, accession: str) -> None:
        """Ask for ``accession`` to be staged ahead of its download (one :meth:`probe`).

        Raises:
            FileNotDownloadableError: the file is unknown or access was refused.
            ServiceUnreachableError: the download service cannot be reached.
        """
        await self.probe(accession)


class UploaderBase(ABC):
    """Uploads one file: create, encrypt and PUT parts, complete."""

    @abstractmethod
    async def upload(self, job: UploadJob) -> FileOutcome:
        """Upload ``job``; return its outcome (raises only on interruption).

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted.
        """

    @abstractmethod
    async def delete(self, file_id: str) -> None:
        """Remove an upload (any state) from the file upload box.

        Raises:
            UploadRejectedError: the upload service refused.
            ServiceUnreachableError: the upload service cannot be reached.
        """

    def forget(self, alias: str) -> None:  # noqa: B027 - optional hook
        """Drop local resume state of ``alias`` (the server has it complete or removed it)."""


class DownloaderBase(ABC):
    """Downloads one staged file, checks it and writes it atomically."""

    @abstractmethod
    async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
        """Download ``job``; return its outcome (raises only on interruption).

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted.
        """

    async def verify_existing(self, job: DownloadJob) -> bool | None:
        """Whether ``job.target``, already on disk, is complete and intact.

        ``None``: GHGA has no checksum to compare it with.

        Raises:
            ConnectorError: asking GHGA for the checksum failed (a failed check returns False).
        """
        return True


def unique_temp_path(target: Path) -> Path:
    """The temporary name a download is written under before the final rename."""
    return target.with_name(target.name + ".part")
