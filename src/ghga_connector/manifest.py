"""Local checks of the files to upload, before any network call.

Parses the 4.0.1 TSV manifest (``path<TAB>alias`` per line, UTF-8, no header; blank
lines skipped; extra columns ignored; paths relative to the working directory) and
checks each file: exists, is a regular file, not empty, not already Crypt4GH.
"""

from __future__ import annotations

from pathlib import Path

from ghga_connector.core.ports import UploadJob
from ghga_connector.errors import InputFileError

__all__ = ["CRYPT4GH_MAGIC", "check_upload_file", "parse_manifest", "plan_uploads"]

#: The first 12 bytes of a Crypt4GH file: magic word and version 1.
CRYPT4GH_MAGIC = b"crypt4gh\x01\x00\x00\x00"


def check_upload_file(path: Path) -> int:
    """Return the size in bytes of a file that may be uploaded.

    Raises:
        InputFileError: missing, not a regular file, unreadable, empty, or already
            Crypt4GH-encrypted.
    """
    if not path.exists():
        raise InputFileError(f"The file {str(path)!r} does not exist.")
    if not path.is_file():
        raise InputFileError(f"{str(path)!r} is not a regular file.")
    try:
        with path.open("rb") as handle:
            head = handle.read(len(CRYPT4GH_MAGIC))
        size = path.stat().st_size
    except OSError as error:
        raise InputFileError(f"The file {str(path)!r} cannot be read: {error.strerror}.") from None
    if size == 0:
        raise InputFileError(f"The file {str(path)!r} is empty; GHGA does not accept empty files.")
    if head == CRYPT4GH_MAGIC:
        raise InputFileError(
            f"The file {str(path)!r} is already Crypt4GH-encrypted.",
            hint="Upload the original, unencrypted file: the connector encrypts it for GHGA.",
        )
    return size


def parse_manifest(manifest: Path) -> list[tuple[Path, str]]:
    """Read ``path<TAB>alias`` lines.

    Raises:
        InputFileError: unreadable file, a line without a tab, an empty field, or no entries.
    """
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"The manifest {str(manifest)!r} cannot be read: {error}.") from None
    entries: list[tuple[Path, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            hint = " (it has spaces: use a tab between path and alias)" if " " in line else ""
            raise InputFileError(
                f"Line {number} of {str(manifest)!r} has no tab between path and alias{hint}."
            )
        path, alias = fields[0].strip(), fields[1].strip()
        if not path or not alias:
            raise InputFileError(f"Line {number} of {str(manifest)!r} has an empty path or alias.")
        entries.append((Path(path), alias))
    if not entries:
        raise InputFileError(f"The manifest {str(manifest)!r} lists no files.")
    return entries


def plan_uploads(entries: list[tuple[Path, str]], *, overwrite: bool) -> list[UploadJob]:
    """Check every file and alias; return the upload jobs.

    Raises:
        InputFileError: a file fails :func:`check_upload_file`, or an alias or file is
            listed twice.
    """
    jobs: list[UploadJob] = []
    aliases: set[str] = set()
    resolved: set[Path] = set()
    for path, alias in entries:
        size = check_upload_file(path)
        if alias in aliases:
            raise InputFileError(f"The alias {alias!r} is used twice.")
        real = path.resolve()
        if real in resolved:
            raise InputFileError(f"The file {str(path)!r} is listed twice.")
        aliases.add(alias)
        resolved.add(real)
        jobs.append(UploadJob(path=path, alias=alias, size=size, overwrite=overwrite))
    return jobs
