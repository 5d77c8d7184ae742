"""Upload journals: what an interrupted upload needs to continue where it stopped.

One journal per (file upload box, alias), in ``<state_dir>/uploads/`` (in a state folder
owned by another user, e.g. a team's, in ``<state_dir>/uploads-<uid>/``): a JSON header
line followed by one line per part that S3 accepted. Appending a line per part keeps
the cost constant however many parts a file has; a torn last line (power loss) is
ignored on reading.

The header holds the upload's ``file_id``, the file's identity (absolute path, size,
modification and status-change times in nanoseconds, inode), the part size, the Crypt4GH envelope (encrypted for the Data Hub,
not secret) and the file's data secret **sealed to the user's own public key**
(libsodium sealed box): the journal never holds a secret in the clear. Each part line
holds the part's MD5 and SHA-256 (of the encrypted bytes S3 stored) and its plaintext
fingerprint (:func:`~ghga_connector.c4gh.segments.part_fingerprint`), which a resume
compares with the file before it sends anything. Files are created readable by the
user only (mode 0600, new folders 0700); the mode of an existing folder is never
changed (a state folder the user named may be shared by a team). A journal is only
read if it is the user's own private file (see
:func:`~ghga_connector.core.files.require_private`): in a shared state folder another
user could otherwise plant a journal whose envelope is encrypted to their key.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.public import PublicKey, SealedBox

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import open_sealed_b64
from ghga_connector.core.files import append_line, open_private
from ghga_connector.errors import OutputError

__all__ = [
    "JOURNAL_VERSION",
    "FileIdentity",
    "JournalStore",
    "PartRecord",
    "UploadJournal",
    "journal_dir",
    "make_private_dirs",
    "seal_secret",
    "state_dir_warnings",
]

JOURNAL_VERSION = 2


@dataclass(frozen=True)
class PartRecord:
    """A part S3 accepted: its number, checksums of the stored bytes and plaintext fingerprint (hex)."""

    part_no: int
    md5: str
    sha256: str
    plaintext: str


@dataclass(frozen=True)
class FileIdentity:
    """What identifies a local file's content without reading it (from ``os.stat``).

    ``ctime_ns`` cannot be set by ``touch -r``, ``cp -p`` or ``rsync -a``, so a file
    rewritten with its modification time preserved still gets a new identity.
    """

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """The identity of ``path`` now.

        Raises:
            OSError: the file cannot be examined.
        """
        stat = path.stat()
        return cls(stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


@dataclass
class UploadJournal:
    """The state of one unfinished upload."""

    box_id: str
    alias: str
    file_id: str
    storage_alias: str
    path: str
    identity: FileIdentity
    part_size: int
    envelope: bytes
    sealed_secret: str
    parts: dict[int, PartRecord] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """The plaintext size in bytes of the file being uploaded."""
        return self.identity.size

    def matches_file(self, path: Path) -> bool:
        """Whether ``path`` is still the same file (path, size, mtime, ctime and inode)."""
        try:
            identity = FileIdentity.of(path)
        except OSError:
            return False
        return str(path.resolve()) == self.path and identity == self.identity

    def secret(self, keys: KeyPair) -> bytes:
        """The file's data secret, opened with the user's secret key.

        Raises:
            SealedBoxError: the journal was written for another key.
        """
        return open_sealed_b64(self.sealed_secret, keys.secret)

    def header(self) -> dict[str, Any]:
        """The first line of the journal file."""
        return {
            "version": JOURNAL_VERSION,
            "box_id": self.box_id,
            "alias": self.alias,
            "file_id": self.file_id,
            "storage_alias": self.storage_alias,
            "path": self.path,
            "size": self.identity.size,
            "mtime_ns": self.identity.mtime_ns,
            "ctime_ns": self.identity.ctime_ns,
            "inode": self.identity.inode,
            "part_size": self.part_size,
            "envelope": base64.b64encode(self.envelope).decode("ascii"),
            "sealed_secret": self.sealed_secret,
        }


def seal_secret(secret: bytes, keys: KeyPair) -> str:
    """Seal ``secret`` to the user's own public key (base64 text)."""
    return base64.b64encode(SealedBox(PublicKey(keys.public)).encrypt(secret)).decode("ascii")


def make_private_dirs(folder: Path) -> None:
    """Create ``folder`` and its missing parents with mode 0700; existing ones stay as they are.

    Raises:
        OSError: a folder cannot be created.
    """
    missing = []
    current = folder
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            path.chmod(0o700)  # mkdir's mode is reduced by the umask; this folder is new


def journal_dir(state_dir: Path) -> Path:
    """The folder of the user's upload journals in ``state_dir``.

    ``uploads`` in a state folder of the user's own (or one still to be created);
    ``uploads-<uid>`` in a folder owned by someone else, so that in a state folder a team
    shares, each user's private journal folder is their own and nobody is locked out.
    """
    try:
        owner = state_dir.stat().st_uid
    except OSError:
        return state_dir / "uploads"
    uid = os.geteuid()
    return state_dir / ("uploads" if owner == uid else f"uploads-{uid}")


def state_dir_warnings(state_dir: Path) -> list[str]:
    """Warnings about a state folder whose content others could read (nothing is changed).

    The journals hold Crypt4GH envelopes and data secrets sealed to the user's key; their
    names and lock files tell which files the user uploads. One line for a state folder
    (or its ``uploads`` folder) that every user of the host may list (a team's shared,
    group-only folder is fine), and one per journal readable by others (such a journal
    is not continued, see :meth:`JournalStore.load`).
    """
    warnings = []
    uploads = journal_dir(state_dir)
    for folder in (state_dir, uploads):
        try:
            mode = folder.stat().st_mode
        except OSError:
            continue
        if mode & 0o005:
            warnings.append(
                f"The state folder {str(folder)!r} can be listed by every user (mode "
                f"{mode & 0o777:04o}); the connector leaves it so. To keep your unfinished "
                f"uploads private, run 'chmod o-rx {folder}'."
            )
    if uploads.is_dir():
        for path in sorted(uploads.glob("*.jsonl")):
            with contextlib.suppress(OSError):
                if path.stat().st_mode & 0o077:
                    warnings.append(
                        f"The upload journal {str(path)!r} is readable by other users; it "
                        f"is not continued (run 'chmod 600 {path}' if it is yours)."
                    )
    return warnings


class JournalStore:
    """Reads and writes upload journals in :func:`journal_dir` of the state folder.

    Args:
        state_dir: the state folder (``state_dir`` setting).
        warn: called once with each line of :func:`state_dir_warnings` when the store
            is first used (``None``: no warnings).
    """

    def __init__(self, state_dir: Path, warn: Callable[[str], None] | None = None) -> None:
        self._state_dir = state_dir
        self._dir = journal_dir(state_dir)
        self._warn = warn

    def _path(self, box_id: str, alias: str) -> Path:
        key = hashlib.sha256(f"{box_id}\0{alias}".encode()).hexdigest()[:32]
        return self._dir / f"{key}.jsonl"

    def _ensure_dir(self) -> None:
        make_private_dirs(self._dir)
        self._warn_once()

    def _warn_once(self) -> None:
        if self._warn is not None:
            warn, self._warn = self._warn, None
            for line in state_dir_warnings(self._state_dir):
                warn(line)

    def lock_path(self, box_id: str, alias: str) -> Path:
        """The lock guarding the journal of ``(box_id, alias)`` (see ``core/locks.py``).

        Creates the journal folder if needed.
        """
        self._ensure_dir()
        return self._path(box_id, alias).with_suffix(".lock")

    def create(self, journal: UploadJournal) -> None:
        """Write a new journal (replacing an old one for the same box and alias).

        The header is written to a temporary file, flushed to disk and renamed, so a
        journal is either complete or absent after a crash.

        Raises:
            OSError: the state folder cannot be written.
        """
        self._ensure_dir()
        path = self._path(journal.box_id, journal.alias)
        temp = path.with_suffix(".tmp")
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(temp, flags, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(journal.header()) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        temp.replace(path)

    def add_part(self, journal: UploadJournal, record: PartRecord) -> None:
        """Record a part S3 accepted (one appended line, flushed to disk).

        The journal must exist (:meth:`create`); it is opened without following a link.

        Raises:
            OSError: the journal cannot be written, is missing, or is a symbolic link
                (``ELOOP``).
        """
        journal.parts[record.part_no] = record
        line = {
            "part": record.part_no,
            "md5": record.md5,
            "sha256": record.sha256,
            "plaintext": record.plaintext,
        }
        append_line(self._path(journal.box_id, journal.alias), json.dumps(line) + "\n", sync=True)

    def load(self, box_id: str, alias: str) -> UploadJournal | None:
        """The journal for ``(box_id, alias)``, or ``None`` if there is none or it is unreadable.

        Raises:
            OutputError: the journal is not the user's own private file (another user's,
                a hard link, or readable by others); it is left as it is.
        """
        self._warn_once()
        return self._read(self._path(box_id, alias), strict=True)

    def remove(self, box_id: str, alias: str) -> None:
        """Forget an upload (after success, or when it was replaced)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(box_id, alias).unlink()

    def all(self) -> list[UploadJournal]:
        """Every journal in the store (for ``ghga-connector status``)."""
        if not self._dir.is_dir():
            return []
        found = [self._read(p) for p in sorted(self._dir.glob("*.jsonl"))]
        return [j for j in found if j is not None]

    @staticmethod
    def _read(path: Path, *, strict: bool = False) -> UploadJournal | None:
        """The journal at ``path``; one that is not the user's private file is ``None``.

        Raises:
            OutputError: with ``strict``, the journal is not the user's private file.
        """
        try:
            fd = open_private(path, os.O_RDONLY)
        except OSError:
            return None
        except OutputError:
            if strict:
                raise
            return None
        try:
            with os.fdopen(fd, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        if not lines:
            return None
        try:
            head = json.loads(lines[0])
            if head.get("version") != JOURNAL_VERSION:
                return None
            journal = UploadJournal(
                box_id=head["box_id"],
                alias=head["alias"],
                file_id=head["file_id"],
                storage_alias=head["storage_alias"],
                path=head["path"],
                identity=FileIdentity(
                    size=int(head["size"]),
                    mtime_ns=int(head["mtime_ns"]),
                    ctime_ns=int(head["ctime_ns"]),
                    inode=int(head["inode"]),
                ),
                part_size=int(head["part_size"]),
                envelope=base64.b64decode(head["envelope"]),
                sealed_secret=head["sealed_secret"],
            )
        except (ValueError, KeyError, TypeError):
            return None
        for line in lines[1:]:
            try:
                entry = json.loads(line)
                record = PartRecord(
                    int(entry["part"]),
                    str(entry["md5"]),
                    str(entry["sha256"]),
                    str(entry["plaintext"]),
                )
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line
            journal.parts[record.part_no] = record
        return journal
