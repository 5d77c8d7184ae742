"""Output file names from server-supplied accessions and extensions.

A download writes ``{accession}{extension}`` (``.c4gh`` added when not decrypted) into
the output folder. The work package service sends both parts (WPS ``files`` of a
download work package); :func:`safe_file_name` makes sure they cannot name anything
outside that folder.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from ghga_connector.errors import ServerResponseError

__all__ = ["MAX_NAME_BYTES", "invalid_name_placeholder", "safe_file_name"]

#: Server-supplied accessions and extensions must match these, whole (``fullmatch``:
#: ``$`` would let a trailing newline through), to become file names.
_ACCESSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_EXTENSION = re.compile(r"(\.[A-Za-z0-9_-]{1,32}){0,4}")
#: Longest ``{accession}{extension}`` in bytes: a file name may have 255 bytes, and the
#: longest name written for it (``.X.c4gh.part.json.<12 hex>.tmp``) adds 33.
MAX_NAME_BYTES = 200


def safe_file_name(accession: str, extension: str) -> str:
    """``{accession}{extension}``, refusing anything that could leave the output folder.

    Accessions are ASCII letters, digits, ``_`` and ``-`` (at most 128), extensions up
    to four ``.part`` pieces of the same characters; the whole name at most
    :data:`MAX_NAME_BYTES` bytes. Nothing else (``..``, ``/``, NUL, a newline) passes.

    Raises:
        ServerResponseError: if the server sent an unsafe accession or extension.
    """
    name = f"{accession}{extension or ''}"
    if (
        not _ACCESSION.fullmatch(accession)
        or not _EXTENSION.fullmatch(extension or "")
        or len(name.encode("utf-8")) > MAX_NAME_BYTES
    ):
        shown = ascii(accession)[1:-1], ascii(extension)[1:-1]
        raise ServerResponseError(
            f"The server sent an unsafe file name ('{shown[0]}', '{shown[1]}'); refusing it."
        )
    return name


def invalid_name_placeholder(output_dir: Path, accession: str, extension: str) -> Path:
    """A path standing in for the target of a file whose server name is unsafe (never written)."""
    digest = hashlib.sha256(f"{accession}\0{extension}".encode("utf-8", "replace")).hexdigest()
    return output_dir / f".invalid-name-{digest[:16]}"
