"""The Data Hub worker: the whole archive step, from ``inbox`` uploads to a download package."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ghga_sandbox.datahub.archival import Archiver, FileOutcome, _outcome
from ghga_sandbox.datahub.interrogation import Interrogator
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import FileUpload
from ghga_sandbox.uploads import UploadController
from ghga_sandbox.workpackages import IssuedWorkPackage, WorkPackageService

__all__ = ["ArchiveReport", "DataHub"]


@dataclass
class ArchiveReport:
    """Result of :meth:`DataHub.archive_everything`."""

    files: list[FileOutcome] = field(default_factory=list)
    boxes: list[str] = field(default_factory=list)
    download: IssuedWorkPackage | None = None

    @property
    def failed(self) -> bool:
        """Whether any upload failed in this run."""
        return any(f.state == "failed" for f in self.files)

    def to_json(self) -> dict[str, Any]:
        """JSON body of ``POST /admin/archive``."""
        return {
            "boxes": self.boxes,
            "files": [f.__dict__ for f in self.files],
            "failed": self.failed,
            "download_work_package_id": None if self.download is None else self.download.package.id,
            "download_access_token": None if self.download is None else self.download.access_token,
        }


class DataHub:
    """Interrogation, re-encryption and archival over the runtime's state and storage.

    Interrogation is done by an :class:`Interrogator`, archival by an :class:`Archiver`;
    this class runs the whole step (:meth:`archive_everything`).
    """

    def __init__(self, runtime: Runtime, controller: UploadController) -> None:
        self._rt = runtime
        self._controller = controller
        self._interrogator = Interrogator(runtime)
        self._archiver = Archiver(runtime)

    def interrogate(self, upload: FileUpload) -> FileUpload:
        """See :meth:`Interrogator.interrogate`."""
        return self._interrogator.interrogate(upload)

    def interrogate_many(self, uploads: Sequence[FileUpload]) -> list[FileUpload]:
        """See :meth:`Interrogator.interrogate_many`."""
        return self._interrogator.interrogate_many(uploads)

    def archive_box(self, box_id: str) -> list[FileOutcome]:
        """See :meth:`Archiver.archive_box`."""
        return self._archiver.archive_box(box_id)

    def archive_everything(self, user_public_key: str | None) -> ArchiveReport:
        """The ``ghga-sandbox archive`` step for every box with work to do.

        For each ``open``/``locked`` box holding ``inbox`` or ``interrogated`` uploads:
        lock it (cancelling ``init`` uploads), interrogate its ``inbox`` uploads (up to
        ``FILES_IN_FLIGHT`` at once, see :meth:`interrogate_many`), archive it. Then, with ``user_public_key``, create a download work package over all
        archived accessions.
        """
        report = ArchiveReport()
        for box in self._rt.state.list_boxes():
            if box.state == "archived":
                continue
            uploads = self._rt.state.list_uploads(box.id)
            if not any(u.state in {"inbox", "interrogated"} for u in uploads):
                continue
            for upload in uploads:
                if upload.state == "init":
                    report.files.append(_outcome(self._controller.cancel(upload)))
            self._controller.lock_box(box.id, force=True)
            inbox = [u for u in self._rt.state.list_uploads(box.id) if u.state == "inbox"]
            for result in self.interrogate_many(inbox):
                if result.state == "failed":
                    report.files.append(_outcome(result))
            report.files.extend(self.archive_box(box.id))
            report.boxes.append(box.id)
        if user_public_key is not None:
            report.download = self.download_package(user_public_key)
        return report

    def download_package(
        self, user_public_key: str, accessions: list[str] | None = None
    ) -> IssuedWorkPackage | None:
        """A download work package over ``accessions`` (default: all archived files).

        Returns ``None`` if there is nothing to download. Unknown accessions are listed
        anyway (their WOT requests then get 403 "File not available for download").
        """
        objects = {o.accession: o for o in self._rt.state.list_drs_objects()}
        chosen = list(objects) if accessions is None else accessions
        if not chosen:
            return None
        files = {a: objects[a].extension if a in objects else "" for a in chosen}
        return WorkPackageService(self._rt).create(
            type_="download", user_public_key=user_public_key, files=files
        )
