"""Offline decryption of downloaded ``.c4gh`` files, with checksum verification.

The plaintext is written under a temporary ``.part`` name and renamed only after every
segment authenticated and, when a ``<file>.c4gh.sha256`` file from the download is
present, the plaintext SHA-256 matched it. On any failure nothing is left behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from crypt4gh import header as c4gh_header

from ghga_connector.c4gh.segments import SegmentAuthenticationError, SegmentCipher
from ghga_connector.core.files import (
    create_exclusive,
    pwrite_all,
    read_small,
    refuse_links,
    replace_file,
)
from ghga_connector.core.planning import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE
from ghga_connector.errors import IntegrityError, KeyFileError, OutputError
from ghga_connector.models import FileOutcome, Outcome

__all__ = [
    "CHECKSUM_SUFFIX",
    "checksum_line",
    "decrypt_file",
    "decrypted_chunks",
    "expected_checksum",
    "file_sha256",
    "legacy_sidecar_path",
    "plaintext_sha256",
    "sidecar_path",
]

#: Suffix of the file next to a ``.c4gh`` download holding the plaintext SHA-256.
CHECKSUM_SUFFIX = ".sha256"

_SHA256 = re.compile(r"[0-9a-f]{64}")

#: Segments read and decrypted per step (16 MiB of plaintext).
_BATCH = 256


def checksum_line(sha256: str, plaintext_name: str) -> str:
    """A ``sha256sum``-style line for the decrypted file: ``<hex>  <name>``."""
    return f"{sha256}  {plaintext_name}\n"


def sidecar_path(encrypted: Path) -> Path:
    """Where the plaintext SHA-256 of a download is kept: ``X.bam.sha256`` for ``X.bam.c4gh``.

    The file is named for what it holds, the checksum of the plaintext ``X.bam``, so
    ``sha256sum -c X.bam.sha256`` checks the decrypted file.
    """
    return encrypted.with_name(encrypted.name.removesuffix(".c4gh") + CHECKSUM_SUFFIX)


def legacy_sidecar_path(encrypted: Path) -> Path:
    """The sidecar name of connector versions before 5.0: ``X.bam.c4gh.sha256``."""
    return encrypted.with_name(encrypted.name + CHECKSUM_SUFFIX)


def expected_checksum(encrypted: Path) -> str | None:
    """The plaintext SHA-256 (lower-case hex) kept beside a download, or ``None``.

    Reads ``X.bam.sha256`` and, if that is absent, the older ``X.bam.c4gh.sha256``
    (first 4 KiB; lines starting with ``#`` are comments; links are not followed).

    Raises:
        IntegrityError: a sidecar exists but does not start with a SHA-256.
    """
    for sidecar in (sidecar_path(encrypted), legacy_sidecar_path(encrypted)):
        text = read_small(sidecar)
        if text is None:
            continue
        lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
        first = lines[0].split()[0].lower() if lines else ""
        if not _SHA256.fullmatch(first):
            raise IntegrityError(
                f"{sidecar.name} does not hold a SHA-256 checksum.",
                hint="Download the file again (with --overwrite) to get a new checksum file.",
            )
        return first
    return None


def decrypted_chunks(source: Path, secret_key: bytes) -> Iterator[memoryview]:
    """Yield the plaintext of a Crypt4GH file in authenticated chunks of up to 16 MiB.

    Each chunk is a view of a reused buffer: consume it before asking for the next.

    Raises:
        KeyFileError: the file was not encrypted for this key.
        IntegrityError: a segment failed authentication, or the header is unsupported.
        OSError: the file cannot be read.
    """
    with source.open("rb") as infile:
        try:
            secrets, edit_list = c4gh_header.deconstruct(infile, [(0, secret_key, None)])
        except Exception:
            raise KeyFileError(
                f"{source.name} was not encrypted for your key (or is not a Crypt4GH file).",
                hint="Use the private key of the key pair you downloaded the file with.",
            ) from None
        if len(secrets) != 1 or edit_list is not None:
            raise IntegrityError(f"{source.name} has an unsupported Crypt4GH header.")
        cipher = SegmentCipher(bytes(secrets[0]))
        encrypted = bytearray(CIPHER_SEGMENT_SIZE * _BATCH)
        plain = bytearray(SEGMENT_SIZE * _BATCH)
        while count := infile.readinto(encrypted):
            try:
                written = cipher.decrypt_into(memoryview(encrypted)[:count], memoryview(plain))
            except SegmentAuthenticationError:
                raise IntegrityError(
                    f"{source.name} is damaged: a Crypt4GH segment failed authentication."
                ) from None
            yield memoryview(plain)[:written]


def plaintext_sha256(source: Path, secret_key: bytes) -> str:
    """The SHA-256 (hex) of a Crypt4GH file's plaintext, authenticating every segment.

    Raises:
        KeyFileError, IntegrityError, OSError: as :func:`decrypted_chunks`.
    """
    digest = hashlib.sha256()
    for chunk in decrypted_chunks(source, secret_key):
        digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 (hex) of a plain file, read in 16 MiB blocks.

    Raises:
        OSError: the file cannot be read.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(16 * 1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


def decrypt_file(
    source: Path, target: Path, secret_key: bytes, *, overwrite: bool = False
) -> FileOutcome:
    """Decrypt ``source`` (a Crypt4GH file) to ``target``.

    Returns ``DONE`` with the plaintext SHA-256 when it matched the checksum kept beside
    the download (:func:`expected_checksum`), ``UNVERIFIED`` (written, but nothing to
    compare with: Crypt4GH alone does not notice reordered, repeated or missing whole
    segments) when there is no checksum file, or ``SKIPPED`` if ``target`` exists.
    ``details["verified"]`` says which. The plaintext is written to ``target.part``
    (created exclusively, mode 0600, links refused), fsynced, then renamed.

    Raises:
        KeyFileError: the file was not encrypted for this key.
        IntegrityError: a segment failed authentication or the checksum differs.
        OutputError: the output cannot be written, or a name is a symbolic link.
    """
    started = time.monotonic()
    temp = target.with_name(target.name + ".part")
    refuse_links(target, temp)
    if target.exists() and not overwrite:
        return FileOutcome(
            name=source.name,
            outcome=Outcome.SKIPPED,
            path=target,
            message=f"{target.name} exists already; use --overwrite to replace it",
        )
    expected = expected_checksum(source)
    digest = hashlib.sha256()
    size = 0
    created = False
    try:
        fd = create_exclusive(temp)
        created = True
        try:
            for chunk in decrypted_chunks(source, secret_key):
                digest.update(chunk)
                pwrite_all(fd, chunk, size)
                size += len(chunk)
            os.fsync(fd)
        finally:
            os.close(fd)
        sha256 = digest.hexdigest()
        if expected is not None and sha256 != expected:
            raise IntegrityError(
                f"The decrypted content of {source.name} does not match the checksum of the download."
            )
        replace_file(temp, target)
    except OSError as error:
        if created:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise OutputError(f"Decrypting {source.name} failed: {error.strerror}.") from None
    except BaseException:
        if created:
            with contextlib.suppress(OSError):
                temp.unlink()
        raise
    verified = expected is not None
    return FileOutcome(
        name=source.name,
        outcome=Outcome.DONE if verified else Outcome.UNVERIFIED,
        size=size,
        seconds=time.monotonic() - started,
        path=target,
        message=""
        if verified
        else f"not verified: no {sidecar_path(source).name} beside it to check the content against",
        details={"sha256": sha256, "verified": verified},
    )
