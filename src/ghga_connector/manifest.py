"""Local checks of the files to upload, before any network call.

Parses the 4.0.1 TSV manifest (``path<TAB>alias`` per line, UTF-8; blank lines
skipped; extra columns ignored; paths relative to the working directory; a first line
of two words such as ``path<TAB>alias`` that names no file is taken as a header and
skipped) and checks each file: exists, is a regular file, not empty, not already
Crypt4GH. Every alias is checked with :func:`check_alias`.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ghga_connector.core.ports import UploadJob
from ghga_connector.errors import InputFileError

__all__ = [
    "CRYPT4GH_MAGIC",
    "check_alias",
    "check_upload_file",
    "load_manifest",
    "parse_manifest",
    "plan_uploads",
]

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
    if path.is_dir():
        raise InputFileError(
            f"{str(path)!r} is a folder, not a file.",
            hint=f"Name the files in it, e.g. with a shell glob ({path}/*.bam), or list "
            "them in a --manifest TSV file.",
        )
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


#: A header cell: one or two words (``path``, ``alias``, ``file name``, ``# path``).
_HEADER_CELL = re.compile(r"#?\s*[A-Za-z_]+( [A-Za-z_]+)?")


def check_alias(alias: str) -> None:
    """Refuse an alias that cannot name a file in the upload box.

    Raises:
        InputFileError: the alias is empty, has leading or trailing white space, or
            holds control characters (tabs, line breaks).
    """
    if not alias.strip():
        raise InputFileError(
            "An alias must not be empty.", hint="Give a file name, e.g. --alias sample1.bam."
        )
    if alias != alias.strip():
        raise InputFileError(f"The alias {alias!r} starts or ends with white space.")
    if any(unicodedata.category(c).startswith("C") for c in alias):
        raise InputFileError(
            f"The alias {alias!r} contains control characters (such as tabs or line breaks)."
        )


def _is_header(number: int, path: str, alias: str) -> bool:
    return (
        number == 1
        and bool(_HEADER_CELL.fullmatch(path))
        and bool(_HEADER_CELL.fullmatch(alias))
        and not Path(path).exists()
    )


def parse_manifest(manifest: Path) -> list[tuple[Path, str]]:
    """Read ``path<TAB>alias`` lines (the files themselves are not checked here).

    Raises:
        InputFileError: unreadable file, a line without a tab, an empty field, an alias
            that fails :func:`check_alias` or is used twice, or no entries.
    """
    return [(path, alias) for _, path, alias in _parse(manifest)]


def load_manifest(manifest: Path) -> list[tuple[Path, str]]:
    """:func:`parse_manifest`, then :func:`check_upload_file` for every line.

    A file that fails its check is reported with its line number.

    Raises:
        InputFileError: as :func:`parse_manifest`, or "Line N of ...: <file problem>".
    """
    entries = _parse(manifest)
    for number, path, _ in entries:
        try:
            check_upload_file(path)
        except InputFileError as error:
            raise InputFileError(
                f"Line {number} of {str(manifest)!r}: {error.message}", hint=error.hint
            ) from None
    return [(path, alias) for _, path, alias in entries]


def _parse(manifest: Path) -> list[tuple[int, Path, str]]:
    try:
        text = manifest.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InputFileError(f"The manifest {str(manifest)!r} cannot be read: {error}.") from None
    entries: list[tuple[int, Path, str]] = []
    seen: dict[str, tuple[int, str]] = {}
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
        if _is_header(number, path, alias):
            continue
        where = f"Line {number} of {str(manifest)!r}"
        try:
            check_alias(alias)
        except InputFileError as error:
            raise InputFileError(f"{where}: {error.message}", hint=error.hint) from None
        if alias in seen:
            first_line, first_path = seen[alias]
            raise InputFileError(
                f"{where}: the alias {alias!r} is used twice: for {first_path!r} "
                f"(line {first_line}) and {path!r}.",
                hint="Give each file its own alias in the second column.",
            )
        seen[alias] = (number, path)
        entries.append((number, Path(path), alias))
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
    aliases: dict[str, Path] = {}
    resolved: set[Path] = set()
    for path, alias in entries:
        check_alias(alias)
        size = check_upload_file(path)
        if alias in aliases:
            raise InputFileError(
                f"The alias {alias!r} is used twice: for {str(aliases[alias])!r} and "
                f"{str(path)!r}.",
                hint="Give each file its own alias (--alias, or a --manifest TSV file).",
            )
        real = path.resolve()
        if real in resolved:
            raise InputFileError(f"The file {str(path)!r} is listed twice.")
        aliases[alias] = path
        resolved.add(real)
        jobs.append(UploadJob(path=path, alias=alias, size=size, overwrite=overwrite))
    return jobs
