"""The ports of the transfer engine: abstract base classes with the design's names.

:class:`~ghga_connector.core.handler.TransferHandler` is written against these only;
:mod:`ghga_connector.inject` supplies the implementations, and tests supply fakes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

from ghga_connector.models import DrsObject, FileOutcome, UploadListItem, WorkPackage

__all__ = [
    "DownloadJob",
    "DownloaderBase",
    "FileStagerBase",
    "ProgressReporter",
    "UploadJob",
    "UploaderBase",
    "WorkPackageAccessorBase",
]


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
    ``{accession}{extension}`` with ``decrypt``.
    """

    accession: str
    extension: str
    target: Path
    decrypt: bool


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


class WorkPackageAccessorBase(ABC):
    """Access to one work package: its details and its work order tokens (WOTs)."""

    @abstractmethod
    async def get_work_package(self) -> WorkPackage:
        """The work package details (fetched once per run)."""

    @abstractmethod
    async def upload_wot(
        self,
        work_type: str,
        *,
        alias: str | None = None,
        file_id: str | None = None,
        force_new: bool = False,
    ) -> str:
        """An opened upload-path WOT (compact JWS), cached while it is fresh."""

    @abstractmethod
    async def download_wot(self, accession: str, *, force_new: bool = False) -> str:
        """An opened download WOT for ``accession``, cached while it is fresh."""

    @abstractmethod
    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads currently in the work package's file upload box."""

    @property
    @abstractmethod
    def file_upload_box_id(self) -> str:
        """The file upload box id (after :meth:`get_work_package`)."""


class FileStagerBase(ABC):
    """Waits until files are staged in the outbox and returns their DRS objects."""

    @abstractmethod
    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        """The DRS object of ``accession`` once staged (waits on 202 + Retry-After)."""

    @abstractmethod
    async def probe(self, accession: str) -> DrsObject | None:
        """One look: the DRS object if staged, else ``None`` (asks the server to stage it)."""


class UploaderBase(ABC):
    """Uploads one file: create, encrypt and PUT parts, complete."""

    @abstractmethod
    async def upload(self, job: UploadJob) -> FileOutcome:
        """Upload ``job``; return its outcome (raises only on interruption)."""

    @abstractmethod
    async def delete(self, file_id: str) -> None:
        """Remove an upload (any state) from the file upload box."""

    def forget(self, alias: str) -> None:  # noqa: B027 - optional hook
        """Drop local resume state of ``alias`` (the server has it complete or removed it)."""


class DownloaderBase(ABC):
    """Downloads one staged file, checks it and writes it atomically."""

    @abstractmethod
    async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
        """Download ``job``; return its outcome (raises only on interruption)."""

    async def verify_existing(self, job: DownloadJob) -> bool:
        """Whether ``job.target``, already on disk, is complete and intact."""
        return True


def unique_temp_path(target: Path) -> Path:
    """The temporary name a download is written under before the final rename."""
    return target.with_name(target.name + ".part")
