"""Upload journals: what an interrupted upload needs to continue where it stopped.

One journal per (file upload box, alias), in ``<state_dir>/uploads/``: a JSON header
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
user only.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nacl.public import PublicKey, SealedBox

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import open_sealed_b64

__all__ = [
    "JOURNAL_VERSION",
    "FileIdentity",
    "JournalStore",
    "PartRecord",
    "UploadJournal",
    "seal_secret",
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


class JournalStore:
    """Reads and writes upload journals under ``<state_dir>/uploads``."""

    def __init__(self, state_dir: Path) -> None:
        self._dir = state_dir / "uploads"

    def _path(self, box_id: str, alias: str) -> Path:
        key = hashlib.sha256(f"{box_id}\0{alias}".encode()).hexdigest()[:32]
        return self._dir / f"{key}.jsonl"

    def _ensure_dir(self) -> None:
        self._dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(OSError):
            self._dir.chmod(0o700)
            self._dir.parent.chmod(0o700)

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
        path = self._path(journal.box_id, journal.alias)
        # Never through a link planted at the journal's name (O_NOFOLLOW: ELOOP instead).
        flags = os.O_WRONLY | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(
                json.dumps(
                    {
                        "part": record.part_no,
                        "md5": record.md5,
                        "sha256": record.sha256,
                        "plaintext": record.plaintext,
                    }
                )
                + "\n"
            )
            handle.flush()
            os.fsync(handle.fileno())

    def load(self, box_id: str, alias: str) -> UploadJournal | None:
        """The journal for ``(box_id, alias)``, or ``None`` if there is none or it is unreadable."""
        return self._read(self._path(box_id, alias))

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
    def _read(path: Path) -> UploadJournal | None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
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
