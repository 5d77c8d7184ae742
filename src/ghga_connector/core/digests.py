"""The SHA-256 of local files, remembered in the state folder so that re-runs stay cheap.

Before an upload is skipped because the box holds its alias, the file's plaintext
SHA-256 is compared with the box's ``decrypted_sha256`` (contract §3.3(a)). Reading a
large file for that on every re-run would cost as much as hashing it again, so each
digest is kept in ``<state_dir>/digests/<key>.json`` (``key``: SHA-256 of the absolute
path, first 32 hex digits), with the file's identity when it was read: path, size,
modification and status-change times in nanoseconds, inode
(:class:`~ghga_connector.core.journal.FileIdentity`). A later lookup returns the digest
only if the file's identity is still the same; anything else reads the file again.

``ctime_ns`` cannot be set by ``touch -r``, ``cp -p`` or ``rsync -a``, so a rewritten
file gets a new identity even with its modification time kept. A file whose times lie
within :data:`RACY_SECONDS` of the moment it was read is not remembered (a write in the
same clock tick as the read would leave the identity unchanged). Digests of files a run
uploaded are remembered from the upload itself (no second read).

Files are created with mode 0600; the ``digests`` folder (and the state folder, if it
does not exist yet) with mode 0700. An existing folder's mode is never changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from ghga_connector.core.journal import FileIdentity
from ghga_connector.errors import InputFileError

__all__ = ["RACY_SECONDS", "DigestCache"]

#: A file changed less than this many seconds before it was read is not remembered.
RACY_SECONDS = 2.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_BLOCK = 16 * 1024 * 1024


class DigestCache:
    """Plaintext SHA-256 of local files, remembered under ``folder`` (``None``: not at all).

    Args:
        folder: ``<state_dir>/digests``; created on the first write.
        clock: Unix seconds (tests).
    """

    def __init__(self, folder: Path | None, *, clock: Callable[[], float] = time.time) -> None:
        self._folder = folder
        self._clock = clock

    def _entry(self, path: Path) -> Path | None:
        if self._folder is None:
            return None
        key = hashlib.sha256(str(path).encode("utf-8", "surrogateescape")).hexdigest()[:32]
        return self._folder / f"{key}.json"

    def lookup(self, path: Path) -> str | None:
        """The remembered digest of ``path`` if its identity is unchanged, else ``None``."""
        entry = self._entry(path.resolve())
        if entry is None:
            return None
        try:
            fd = os.open(entry, os.O_RDONLY | _NOFOLLOW)
            with os.fdopen(fd, encoding="utf-8") as handle:
                data = json.loads(handle.read(4096))
            identity = FileIdentity.of(path)
            if data["path"] != str(path.resolve()) or data["identity"] != list(
                (identity.size, identity.mtime_ns, identity.ctime_ns, identity.inode)
            ):
                return None
            return str(data["sha256"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def remember(self, path: Path, identity: FileIdentity, sha256: str, *, read_at: float) -> None:
        """Keep ``sha256`` for ``path`` as it was (``identity``) when read at ``read_at``.

        Not kept if the file changed within :data:`RACY_SECONDS` of ``read_at`` (Unix
        seconds). Errors are ignored: the cache only saves time.
        """
        entry = self._entry(path.resolve())
        if entry is None:
            return
        newest = max(identity.mtime_ns, identity.ctime_ns) / 1e9
        if newest > read_at - RACY_SECONDS:
            return
        record = {
            "path": str(path.resolve()),
            "identity": [identity.size, identity.mtime_ns, identity.ctime_ns, identity.inode],
            "sha256": sha256,
        }
        temp = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
        with contextlib.suppress(OSError):
            _make_private_dir(entry.parent)
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(record, handle)
            temp.replace(entry)
        with contextlib.suppress(OSError):
            temp.unlink()

    def sha256(self, path: Path) -> str:
        """The plaintext SHA-256 (hex) of ``path``: remembered, or read (and remembered).

        Blocking: run it in a worker thread.

        Raises:
            InputFileError: the file cannot be read, or it changed while it was read.
        """
        cached = self.lookup(path)
        if cached is not None:
            return cached
        try:
            before = FileIdentity.of(path)
            read_at = self._clock()
            digest = hashlib.sha256()
            with path.open("rb") as handle:
                while block := handle.read(_BLOCK):
                    digest.update(block)
            after = FileIdentity.of(path)
        except OSError as error:
            raise InputFileError(f"Reading {str(path)!r} failed: {error.strerror}.") from None
        if after != before:
            raise InputFileError(
                f"{str(path)!r} changed while it was read; run the command again once it is complete."
            )
        self.remember(path, before, digest.hexdigest(), read_at=read_at)
        return digest.hexdigest()


def _make_private_dir(folder: Path) -> None:
    """Create ``folder`` (and its parent, the state folder, if missing) with mode 0700.

    Folders that exist keep their mode: the state folder is the user's to choose.
    """
    for path in (folder.parent, folder):
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
