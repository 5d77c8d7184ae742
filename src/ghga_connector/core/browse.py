"""What a work package holds, for ``ls``, ``delete`` and ``status``.

* :class:`WorkPackageBrowser`: the rows of ``ls`` (:class:`BoxRow` for an upload box,
  :class:`PackageRow` for a download package) and the removal of an upload (``delete``);
* :func:`unfinished_uploads`: the upload journals in the state folder (``status``, no
  network);
* :func:`package_files`: the files of a work package of the expected kind, which every
  command starts from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ghga_connector.core.journal import JournalStore
from ghga_connector.core.naming import safe_file_name
from ghga_connector.core.planning import encrypted_size, plaintext_size
from ghga_connector.core.ports import FileStagerBase, UploaderBase, WorkPackageAccessorBase
from ghga_connector.errors import ServerResponseError, UserInputError
from ghga_connector.models import FileUploadState, UploadListItem

__all__ = [
    "BoxRow",
    "ListingRow",
    "PackageRow",
    "UnfinishedUpload",
    "WorkPackageBrowser",
    "package_files",
    "unfinished_uploads",
]

Cell = str | int | bool | None


@dataclass(frozen=True)
class BoxRow:
    """One upload in a file upload box: alias, state, plaintext bytes (if known), file id."""

    alias: str
    state: str
    size: int | None
    file_id: str

    def as_row(self) -> dict[str, Cell]:
        """The row as ``ls`` shows it (table columns and ``--json`` keys, in this order)."""
        return {
            "alias": self.alias,
            "state": self.state,
            "size": self.size,
            "file_id": self.file_id,
        }


@dataclass(frozen=True)
class PackageRow:
    """One file of a download package.

    ``file`` is the name a download writes (``None`` if the server sent an unsafe name,
    then ``note`` says why). With ``detailed`` the row also holds ``size`` (plaintext
    bytes, ``None`` while the file is being staged), ``sha256`` (the DRS checksum, hex)
    and ``staged``.
    """

    accession: str
    file: str | None = None
    note: str | None = None
    detailed: bool = False
    size: int | None = None
    sha256: str | None = None
    staged: bool | None = None

    def as_row(self) -> dict[str, Cell]:
        """The row as ``ls`` shows it (the detail columns only when ``detailed``)."""
        row: dict[str, Cell] = {"accession": self.accession, "file": self.file}
        if self.detailed:
            row |= {"size": self.size, "sha256": self.sha256, "staged": self.staged}
        return row | {"note": self.note}


ListingRow = BoxRow | PackageRow


async def package_files(accessor: WorkPackageAccessorBase, kind: str) -> dict[str, str]:
    """The files (accession → extension) of the work package, which must be of ``kind``.

    Raises:
        UserInputError: the access token is for the other kind of work package.
        ServiceUnreachableError, ServerResponseError: the work package service failed.
    """
    package = await accessor.get_work_package()
    if package.type != kind:
        article = "an" if package.type[:1] in "aeiou" else "a"
        raise UserInputError(
            f"This access token is for {article} {package.type} work package, not for {kind}s.",
            hint=f"Use {'an' if kind[:1] in 'aeiou' else 'a'} {kind} access token from "
            "the GHGA Data Portal.",
        )
    return dict(package.files or {})


class WorkPackageBrowser:
    """Lists a work package's files and removes uploads from its box.

    Args:
        accessor: the work package accessor.
        stager: asks the download service about files (``ls --details`` only).
        uploader: removes uploads (``delete``) and forgets their local journals.
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        stager: FileStagerBase,
        uploader: UploaderBase,
    ) -> None:
        self._accessor = accessor
        self._stager = stager
        self._uploader = uploader

    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads in the file upload box of an upload work package.

        Raises:
            UserInputError: the access token is for a download work package.
            ServiceUnreachableError, ServerResponseError: a GHGA service failed.
        """
        await package_files(self._accessor, "upload")
        return await self._accessor.list_uploads()

    async def delete_upload(self, file_id: str) -> None:
        """Remove an upload from the file upload box.

        Raises:
            UserInputError: the access token is for a download work package.
            UploadRejectedError: the upload service refused.
            ServiceUnreachableError: a GHGA service cannot be reached.
        """
        await package_files(self._accessor, "upload")
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
    ) -> list[BoxRow] | list[PackageRow]:
        """For ``ls``: the rows of an upload box, or of a download package.

        Upload box: sorted by alias; removed (cancelled) uploads only with ``show_all``.
        Download package: see :meth:`download_listing` (``details`` only matters there).

        Raises:
            ServerResponseError, ServiceUnreachableError: the services failed.
        """
        package = await self._accessor.get_work_package()
        if package.type != "upload":
            return await self.download_listing(details=details)
        return [
            BoxRow(item.alias, item.state.value, item.decrypted_size, item.id)
            for item in sorted(await self.list_uploads(), key=lambda i: i.alias)
            if show_all or item.state is not FileUploadState.CANCELLED
        ]

    async def download_listing(self, *, details: bool = False) -> list[PackageRow]:
        """For ``ls``: each file of a download package, from the work package alone.

        Rows sorted by accession. No request reaches the download service: at GHGA each
        ``GET /objects/{accession}`` stages the file from permanent storage and is
        recorded as a download served (contract §3.4(a)). With ``details`` it asks the
        download service for every listed file (size, checksum, staged), which stages
        each of them.

        Raises:
            UserInputError: the access token is for an upload work package.
            ServiceUnreachableError: a GHGA service cannot be reached.
        """
        files = await package_files(self._accessor, "download")
        return [
            await self._package_row(accession, extension, details)
            for accession, extension in sorted(files.items())
        ]

    async def _package_row(self, accession: str, extension: str, details: bool) -> PackageRow:
        try:
            name = safe_file_name(accession, extension)
        except ServerResponseError as error:
            return PackageRow(accession, note=f"invalid: {error.message}", detailed=details)
        if not details:
            return PackageRow(accession, name)
        try:
            drs = await self._stager.probe(accession)
        except ServerResponseError as error:
            return PackageRow(accession, name, note=error.message, detailed=True)
        if drs is None:
            return PackageRow(accession, name, detailed=True, staged=False)
        return PackageRow(
            accession,
            name,
            detailed=True,
            size=plaintext_size(drs.size),
            sha256=drs.sha256,
            staged=True,
        )


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
