"""Locks that let several connector processes share one upload box or output folder.

Any number of processes, on one host or several hosts with a shared state directory,
may work on the same file upload box: each upload journal (one per box and alias) and
each download target is guarded by an exclusive lock, taken without waiting. A process
that finds a file locked skips it with the name of the holder (host and process id).

Locks are :class:`filelock.FileLock`: ``flock`` where the file system supports it (the
kernel releases the lock when its process dies, however it dies), else filelock's soft
lock, a marker file with host and process id that a later process removes when that
process no longer exists. Beside each lock an *owner file* (``<lock>.owner``, JSON
``{"host", "pid", "time"}``) names the holder for the message; it is replaced by
rename, never written through a symbolic link.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout

__all__ = ["LockOwner", "TransferLock", "TransferLockBusy", "download_lock_path"]


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or last held) a lock: host name, process id, Unix time in seconds."""

    host: str
    pid: int
    time: float

    def __str__(self) -> str:
        return f"{self.host}, pid {self.pid}"

    @classmethod
    def me(cls) -> LockOwner:
        """The owner record of the running process, now."""
        return cls(socket.gethostname(), os.getpid(), time.time())


class TransferLockBusy(Exception):
    """Another process holds the lock; ``owner`` names it if it could be read."""

    def __init__(self, owner: LockOwner | None) -> None:
        super().__init__(str(owner) if owner else "another process")
        self.owner = owner

    @property
    def holder(self) -> str:
        """``"host, pid N"`` or ``"unknown"``."""
        return str(self.owner) if self.owner else "unknown"


def download_lock_path(target: Path) -> Path:
    """The lock of a download target: ``.<name>.lock`` in the output folder."""
    return target.with_name(f".{target.name}.lock")


class TransferLock:
    """An exclusive, non-waiting lock on ``path`` with an owner file beside it.

    Args:
        path: the lock file (its folder must exist).
        keep_owner: leave the owner file after release (with the release time), so that
            a process that listed the box before can tell that the file was worked on
            meanwhile (uploads); else remove it (downloads, to keep the folder clean).
    """

    def __init__(self, path: Path, *, keep_owner: bool = False) -> None:
        self.path = path
        self._owner_path = path.with_name(path.name + ".owner")
        self._lock = FileLock(path, timeout=0, thread_local=False, mode=0o600)
        self._keep_owner = keep_owner

    def acquire(self) -> LockOwner | None:
        """Take the lock without waiting; return the previous owner record, if any.

        Raises:
            TransferLockBusy: another process holds the lock.
        """
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise TransferLockBusy(self._read_owner()) from None
        previous = self._read_owner()
        self._write_owner(LockOwner.me())
        return previous

    def release(self) -> None:
        """Release the lock (the owner file is updated or removed first)."""
        if not self._lock.is_locked:
            return
        try:
            if self._keep_owner:
                self._write_owner(LockOwner.me())
            else:
                with contextlib.suppress(OSError):
                    self._owner_path.unlink()
                # Remove the lock file while still holding it: filelock re-checks after
                # flock that its inode is still linked, so a peer that opened the old
                # file retries on a new one. (A soft lock's marker is removed by release.)
                context = getattr(self._lock, "_context", None)
                if getattr(context, "soft_fallback", True) is False:
                    with contextlib.suppress(OSError):
                        self.path.unlink()
        finally:
            self._lock.release()

    def _read_owner(self) -> LockOwner | None:
        try:
            fd = os.open(self._owner_path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(fd, encoding="utf-8") as handle:
                data = json.loads(handle.read(4096))
            return LockOwner(str(data["host"]), int(data["pid"]), float(data["time"]))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _write_owner(self, owner: LockOwner) -> None:
        # Only the holder of the lock writes its owner file, so one temporary name is
        # enough, and one left by a killed holder is removed by the next.
        temp = self._owner_path.with_name(f"{self._owner_path.name}.tmp")
        with contextlib.suppress(OSError):
            temp.unlink()
        try:
            fd = os.open(
                temp,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0),
                0o600,
            )
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"host": owner.host, "pid": owner.pid, "time": owner.time}, handle)
            temp.replace(self._owner_path)
        except OSError:
            with contextlib.suppress(OSError):
                temp.unlink()
