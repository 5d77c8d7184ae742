"""Offline decryption of downloaded ``.c4gh`` files, with checksum verification.

The plaintext is written under a temporary ``.part`` name and renamed only after every
segment authenticated and, when a ``<file>.sha256`` file from the download is present,
the plaintext SHA-256 matched it. On any failure nothing is left behind. Without a
checksum file the plaintext is kept as ``X.unverified`` (:func:`unverified_path`), never
under its final name, unless ``allow_unverified``.

The checksum file (*sidecar*, ``X.bam.sha256``) holds a ``sha256sum`` line and, as
comment lines that ``sha256sum -c`` ignores, one *vouch* per file the connector verified
against that checksum: ``# ghga-connector {"file": NAME, "size": N, "mtime_ns": M,
"inode": I}``, the file's identity when it got its final name. :func:`vouched_checksum`
compares that identity with the file as it is now: a re-run skips a file it vouches for
without reading it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
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
    write_atomic,
)
from ghga_connector.core.outcomes import file_outcome
from ghga_connector.core.planning import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE
from ghga_connector.core.ports import ProgressReporter
from ghga_connector.errors import (
    ConnectorError,
    InputFileError,
    IntegrityError,
    KeyFileError,
    OutputError,
)
from ghga_connector.models import FileOutcome, Outcome

__all__ = [
    "CHECKSUM_SUFFIX",
    "checksum_line",
    "decrypt_batch",
    "decrypt_file",
    "decrypt_sources",
    "decrypted_chunks",
    "expected_checksum",
    "file_sha256",
    "legacy_sidecar_path",
    "plaintext_sha256",
    "sidecar_path",
    "unverified_path",
    "vouch_for",
    "vouched_checksum",
]

#: Start of a sidecar's comment line that vouches for one verified file.
VOUCH_PREFIX = "# ghga-connector "

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


def unverified_path(target: Path) -> Path:
    """Where content that could not be verified is kept: ``X.unverified`` for ``X``."""
    return target.with_name(target.name + ".unverified")


def _identity(path: Path) -> dict[str, int | str]:
    info = path.lstat()
    return {"size": info.st_size, "mtime_ns": info.st_mtime_ns, "inode": info.st_ino}


def vouch_for(target: Path, sha256: str, *, written: Path | None = None) -> None:
    """Write the sidecar of ``target``: its checksum and a vouch for ``target``.

    ``written`` is the file that becomes ``target`` by rename (a ``.part`` file; rename
    keeps size, modification time and inode); default ``target`` itself. Vouches for
    other files in the same sidecar (``X.bam.c4gh`` and ``X.bam``) stay when the
    checksum is the same. Written to a temporary name, fsynced and renamed.

    Raises:
        OutputError: the sidecar name is a symbolic link.
        OSError: the sidecar or ``written`` cannot be written or examined.
    """
    sidecar = sidecar_path(target)
    plain_name = target.name.removesuffix(".c4gh")
    lines = [checksum_line(sha256, plain_name)]
    old = read_small(sidecar) or ""
    if _first_checksum(old) == sha256:
        for line in old.splitlines():
            vouch = _parse_vouch(line)
            if vouch is not None and vouch.get("file") != target.name:
                lines.append(line + "\n")
    record = {"file": target.name, **_identity(written or target)}
    lines.append(VOUCH_PREFIX + json.dumps(record) + "\n")
    write_atomic(sidecar, "".join(lines).encode("utf-8"))


def vouched_checksum(target: Path) -> str | None:
    """The checksum the sidecar holds if it vouches for ``target`` as it is now, else None.

    Cheap: one ``lstat`` and one read of at most 4 KiB; ``target`` itself is not read.
    """
    text = read_small(sidecar_path(target))
    if text is None:
        return None
    checksum = _first_checksum(text)
    if checksum is None:
        return None
    try:
        now = {"file": target.name, **_identity(target)}
    except OSError:
        return None
    if any(_parse_vouch(line) == now for line in text.splitlines()):
        return checksum
    return None


def _parse_vouch(line: str) -> dict[str, object] | None:
    if not line.startswith(VOUCH_PREFIX):
        return None
    try:
        record = json.loads(line[len(VOUCH_PREFIX) :])
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _first_checksum(text: str) -> str | None:
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("#")]
    first = lines[0].split()[0].lower() if lines else ""
    return first if _SHA256.fullmatch(first) else None


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
    source: Path,
    target: Path,
    secret_key: bytes,
    *,
    overwrite: bool = False,
    allow_unverified: bool = False,
) -> FileOutcome:
    """Decrypt ``source`` (a Crypt4GH file) to ``target``.

    Returns ``DONE`` with the plaintext SHA-256 when it matched the checksum kept beside
    the download (:func:`expected_checksum`); ``UNVERIFIED`` (nothing to compare with:
    Crypt4GH alone does not notice reordered, repeated or missing whole segments) when
    there is no checksum file: the plaintext is then kept as ``X.unverified``, and only
    ``allow_unverified`` gives it the final name. An existing ``target`` is ``SKIPPED``
    only if its sidecar vouches for it (:func:`vouched_checksum`) with the download's
    checksum, or once its SHA-256 was found equal to that checksum (then vouched for);
    another SHA-256 is an :class:`IntegrityError`, no checksum ``UNVERIFIED``.
    ``details["verified"]`` says which. The plaintext is written to ``target.part``
    (created exclusively, mode 0600, links refused), fsynced, then renamed.

    Raises:
        KeyFileError: the file was not encrypted for this key.
        IntegrityError: a segment failed authentication or the checksum differs.
        OutputError: the output cannot be written, or a name is a symbolic link.
    """
    started = time.monotonic()
    temp = target.with_name(target.name + ".part")
    marker = unverified_path(target)
    refuse_links(target, temp, marker)
    expected = expected_checksum(source)
    if target.exists() and not overwrite:
        return _judge_existing(source, target, expected)
    digest = hashlib.sha256()
    size = 0
    created = False
    final = target if expected is not None or allow_unverified else marker
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
        if expected is not None:
            vouch_for(target, sha256, written=temp)
        replace_file(temp, final)
        if final is target:
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
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
    where = (
        ""
        if final is target
        else f"; kept as {marker.name} (--allow-unverified names it {target.name})"
    )
    return file_outcome(
        source.name,
        Outcome.DONE if verified else Outcome.UNVERIFIED,
        ""
        if verified
        else f"not verified: no {sidecar_path(source).name} beside it to check the content "
        f"against{where}",
        size=size,
        seconds=time.monotonic() - started,
        path=final,
        details={"sha256": sha256, "verified": verified},
    )


def _judge_existing(source: Path, target: Path, expected: str | None) -> FileOutcome:
    """``target`` exists (no ``--overwrite``): skipped only if proven to be the plaintext.

    Raises:
        IntegrityError: its SHA-256 differs from the download's checksum.
        OutputError: it cannot be read.
    """
    size = target.stat().st_size
    vouched = vouched_checksum(target)
    if expected is not None and vouched == expected:
        return file_outcome(
            source.name,
            Outcome.SKIPPED,
            f"{target.name} exists already, verified when it was written",
            path=target,
            size=size,
            details={"sha256": expected, "verified": True},
        )
    if expected is None:
        return file_outcome(
            source.name,
            Outcome.UNVERIFIED,
            f"{target.name} exists already, but there is no "
            f"{sidecar_path(source).name} to check it against",
            path=target,
            size=size,
            details={"verified": False},
        )
    try:
        actual = file_sha256(target)
    except OSError as error:
        raise OutputError(f"Reading {str(target)!r} failed: {error.strerror}.") from None
    if actual != expected:
        raise IntegrityError(
            f"{target.name} exists already but does not match the checksum of the download.",
            hint="Check it, or decrypt again with --overwrite.",
        )
    with contextlib.suppress(OSError):
        vouch_for(target, actual)
    return file_outcome(
        source.name,
        Outcome.SKIPPED,
        f"{target.name} exists already and matches the checksum of the download",
        path=target,
        size=size,
        details={"sha256": actual, "verified": True},
    )


def decrypt_sources(input_dir: Path, target_dir: Path) -> list[Path]:
    """The ``.c4gh`` files in ``input_dir`` (sorted by name), for ``ghga-connector decrypt``.

    Raises:
        InputFileError: ``input_dir`` is not a folder, or holds no ``.c4gh`` file.
        OutputError: ``target_dir`` is not a folder.
    """
    if not input_dir.is_dir():
        raise InputFileError(f"The input folder {str(input_dir)!r} does not exist.")
    if not target_dir.is_dir():
        raise OutputError(
            f"The output folder {str(target_dir)!r} does not exist.",
            hint=f"Create it first: mkdir {target_dir}",
        )
    sources = sorted(p for p in input_dir.glob("*.c4gh") if p.is_file())
    if not sources:
        raise InputFileError(f"There are no .c4gh files in {str(input_dir)!r}.")
    return sources


def decrypt_batch(
    sources: list[Path],
    target_dir: Path,
    secret_key: bytes,
    reporter: ProgressReporter,
    *,
    overwrite: bool = False,
    allow_unverified: bool = False,
) -> list[FileOutcome]:
    """Decrypt each ``X.c4gh`` of ``sources`` to ``target_dir/X`` with :func:`decrypt_file`.

    A file that fails is a ``FAILED`` outcome (its error's message) and does not stop
    the others; each outcome is reported as it is known.
    """
    outcomes = []
    for source in sources:
        target = target_dir / source.name.removesuffix(".c4gh")
        try:
            outcome = decrypt_file(
                source, target, secret_key, overwrite=overwrite, allow_unverified=allow_unverified
            )
        except ConnectorError as error:
            outcome = file_outcome(
                source.name, Outcome.FAILED, error=error, hint=False, path=target
            )
        reporter.file_finished(outcome)
        outcomes.append(outcome)
    return outcomes
