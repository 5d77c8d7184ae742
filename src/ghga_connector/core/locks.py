"""Locks that let several connector processes share one upload box or output folder.

Any number of processes, on one host or several hosts with a shared state directory,
may work on the same file upload box: each upload journal (one per box and alias) and
each download target is guarded by an exclusive lock, taken without waiting. A process
that finds a file locked reports it ``busy`` with the name of the holder (host and
process id), or with ``--wait`` polls until the lock is free.

Locks are :class:`filelock.FileLock`: ``flock`` where the file system supports it (the
kernel releases the lock when its process dies, however it dies), else filelock's soft
lock, a marker file with host and process id that a later process on the same host
removes when that process no longer exists. Beside each lock an *owner file*
(``<lock>.owner``, JSON ``{"host", "pid", "time"}``) names the holder; it is replaced by
rename, never written through a symbolic link. While the lock is held, ``time`` is a
heartbeat renewed every :data:`HEARTBEAT_SECONDS`. A soft lock whose heartbeat is older
than :data:`STALE_AFTER_SECONDS` belongs to a process that died on another host (no
process can prove that from here): it is taken over. Only one process takes it over:
the takeover itself is guarded by ``<lock>.takeover``, created exclusively, under which
the owner is read again. (An ``flock`` is never taken over: the kernel, or the shared
file system's lock manager, already frees the locks of dead processes.)

On release the lock file is removed while it is still locked: filelock checks after its
``flock`` that the inode it locked is still linked, so a process that opened the old file
never holds it beside a process that created the new one (it sees the lock busy once and
finds it free on its next attempt). The owner file of an upload lock stays (with the
release time) so that a process that listed the box earlier can tell that the alias was
worked on meanwhile; :func:`prune_owner_records` removes those older than
:data:`OWNER_RECORD_DAYS`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, SoftFileLock, Timeout

from ghga_connector.core.ports import ProgressReporter, unique_temp_path

__all__ = [
    "HEARTBEAT_SECONDS",
    "OWNER_RECORD_DAYS",
    "STALE_AFTER_SECONDS",
    "WAIT_POLL_SECONDS",
    "LockOwner",
    "TransferLock",
    "TransferLockBusy",
    "acquire_waiting",
    "clear_download_leftovers",
    "download_lock_path",
    "prune_owner_records",
    "release_off_loop",
]

#: Seconds between two heartbeats of a lock holder (its owner file's ``time``).
HEARTBEAT_SECONDS = 60.0
#: A soft lock whose holder's heartbeat is older than this many seconds is taken over.
STALE_AFTER_SECONDS = 600.0
#: Owner files of released upload locks older than this many days are removed: no run
#: lasts longer than its access token (at most 30 days), so none can still need them.
OWNER_RECORD_DAYS = 31
#: Seconds between two attempts to take the lock of a file another process holds (``--wait``).
WAIT_POLL_SECONDS = 5.0


@dataclass(frozen=True)
class LockOwner:
    """Who holds (or last held) a lock: host name, process id, Unix time in seconds."""

    host: str
    pid: int
    time: float

    def __str__(self) -> str:
        return f"{self.host}, pid {self.pid}"

    def age(self, now: float | None = None) -> float:
        """Seconds since the last heartbeat (or release), by this host's clock."""
        return (time.time() if now is None else now) - self.time

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


def prune_owner_records(folder: Path, *, days: float = OWNER_RECORD_DAYS) -> int:
    """Remove owner files (``*.lock.owner``) in ``folder`` older than ``days``; return how many.

    Only records of released locks get that old: a holder renews its record every
    :data:`HEARTBEAT_SECONDS`. Errors are ignored (another process may prune at once).
    """
    limit = time.time() - days * 86400
    removed = 0
    with contextlib.suppress(OSError):
        for path in folder.glob("*.lock.owner"):
            with contextlib.suppress(OSError):
                if path.lstat().st_mtime < limit and not path.with_suffix("").exists():
                    path.unlink()
                    removed += 1
    return removed


class TransferLock:
    """An exclusive, non-waiting lock on ``path`` with an owner file beside it.

    Args:
        path: the lock file (its folder must exist).
        keep_owner: leave the owner file after release (with the release time), so that
            a process that listed the box before can tell that the file was worked on
            meanwhile (uploads); else remove it (downloads, to keep the folder clean).
        soft: always use a soft lock (a marker file), as on a file system without
            ``flock`` (tests; in use filelock decides by itself).
        stale_after: seconds without a heartbeat after which a soft lock is taken over.
        heartbeat: seconds between heartbeats while the lock is held.
    """

    def __init__(
        self,
        path: Path,
        *,
        keep_owner: bool = False,
        soft: bool = False,
        stale_after: float = STALE_AFTER_SECONDS,
        heartbeat: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.path = path
        self._owner_path = path.with_name(path.name + ".owner")
        kind = SoftFileLock if soft else FileLock
        self._lock = kind(path, timeout=0, thread_local=False, mode=0o600)
        self._soft = soft
        self._keep_owner = keep_owner
        self._stale_after = stale_after
        self._heartbeat_every = heartbeat
        self._stop = threading.Event()
        self._beats: threading.Thread | None = None
        #: The dead holder whose soft lock :meth:`acquire` took over, if it did.
        self.taken_over: LockOwner | None = None

    def _is_soft(self) -> bool:
        if self._soft:
            return True
        context = getattr(self._lock, "_context", None)
        return getattr(context, "soft_fallback", False) is True

    def acquire(self) -> LockOwner | None:
        """Take the lock without waiting; return the previous owner record, if any.

        A soft lock whose owner's heartbeat is older than ``stale_after`` seconds is
        taken over (:attr:`taken_over` names the dead holder).

        Raises:
            TransferLockBusy: another process holds the lock.
        """
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            owner = self._read_owner()
            if owner is None or owner.age() < self._stale_after or not self._is_soft():
                raise TransferLockBusy(owner) from None
            self._take_over(owner)
            previous = self.taken_over
        else:
            previous = self._read_owner()
            self._write_owner(LockOwner.me())
        self._start_heartbeat()
        return previous

    def _take_over(self, stale: LockOwner) -> None:
        """Break the soft lock of ``stale`` (heartbeat too old) and take it.

        ``<lock>.takeover``, created exclusively, lets one process at a time do this; it
        reads the owner again under it, so a second process that also saw the stale
        owner finds the new holder's fresh heartbeat instead of breaking its lock.

        Raises:
            TransferLockBusy: another process is taking it over, or took it over.
        """
        guard = self.path.with_name(self.path.name + ".takeover")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.close(os.open(guard, flags, 0o600))
        except FileExistsError:
            # A guard left by a process killed while taking over is as stale as a lock.
            with contextlib.suppress(OSError):
                if time.time() - guard.lstat().st_mtime > self._stale_after:
                    guard.unlink()
            raise TransferLockBusy(stale) from None
        except OSError:
            raise TransferLockBusy(stale) from None
        try:
            owner = self._read_owner()
            if owner is None or owner.age() < self._stale_after:
                raise TransferLockBusy(owner)
            self._lock.break_lock()
            try:
                self._lock.acquire(timeout=0)
            except Timeout:
                raise TransferLockBusy(self._read_owner()) from None
            self._write_owner(LockOwner.me())
            self.taken_over = owner
        finally:
            with contextlib.suppress(OSError):
                guard.unlink()

    def _start_heartbeat(self) -> None:
        self._stop.clear()

        def beat() -> None:
            while not self._stop.wait(self._heartbeat_every):
                self._write_owner(LockOwner.me())

        self._beats = threading.Thread(target=beat, name="lock-heartbeat", daemon=True)
        self._beats.start()

    def _stop_heartbeat(self) -> None:
        self._stop.set()
        if self._beats is not None:
            self._beats.join()
            self._beats = None

    def release(self) -> None:
        """Release the lock, removing its file while still locked (see the module docstring).

        The heartbeat stops first; the owner file is updated (``keep_owner``) or removed.
        """
        if not self._lock.is_locked:
            return
        self._stop_heartbeat()
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
            if not self._soft and getattr(context, "soft_fallback", True) is False:
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


async def acquire_waiting(
    lock: TransferLock,
    name: str,
    reporter: ProgressReporter,
    *,
    wait: bool,
    poll: float = WAIT_POLL_SECONDS,
) -> LockOwner | None:
    """Take ``lock`` of file ``name``; with ``wait`` try again every ``poll`` seconds while busy.

    Returns the previous owner record (:meth:`TransferLock.acquire`). A soft lock of a
    process without heartbeat for too long is taken over, with a warning to ``reporter``.
    Each attempt runs in a worker thread: on a shared file system taking a lock may take
    seconds, which the other transfers must not wait for. If the caller is cancelled
    meanwhile, a lock the attempt still takes is released.

    Raises:
        TransferLockBusy: busy, and not ``wait``.
        OSError: the lock file cannot be created.
    """
    while True:
        try:
            attempt = asyncio.get_running_loop().run_in_executor(None, lock.acquire)
            try:
                previous = await asyncio.shield(attempt)
            except asyncio.CancelledError:
                attempt.add_done_callback(_release_if_taken(lock))
                raise
        except TransferLockBusy as busy:
            if not wait:
                raise
            reporter.file_status(name, f"waiting for another process ({busy.holder}) to finish it")
            await asyncio.sleep(poll)
            continue
        if lock.taken_over is not None:
            reporter.message(
                f"{name}: took over the lock of {lock.taken_over}, whose last sign of "
                f"life is {lock.taken_over.age():.0f} s old (the process is gone).",
                level="warning",
            )
        return previous


async def release_off_loop(lock: TransferLock) -> None:
    """:meth:`TransferLock.release` in a worker thread, seen through even if cancelled.

    The release (owner file renamed or removed, lock file removed) runs in a thread so
    that a slow shared file system does not stall the event loop; it is shielded, so
    an interruption while it runs does not leave the lock held.
    """
    await asyncio.shield(asyncio.get_running_loop().run_in_executor(None, lock.release))


def _release_if_taken(
    lock: TransferLock,
) -> Callable[[asyncio.Future[LockOwner | None]], None]:
    """A done-callback releasing ``lock`` if the attempt it is called for took it."""

    def release(attempt: asyncio.Future[LockOwner | None]) -> None:
        if not attempt.cancelled() and attempt.exception() is None:
            lock.release()

    return release


def clear_download_leftovers(target: Path) -> None:
    """Remove what a process killed right after finishing ``target`` left beside it.

    That is its lock (and owner file), and the downloader's range journal
    (``<name>.part.json``) if no ``.part`` file belongs to it any more. Only done while
    holding the lock, so never under a process that is still writing.
    """
    lock_path = download_lock_path(target)
    temp = unique_temp_path(target)
    journal = temp.with_name(temp.name + ".json")
    orphan = journal.exists() and not temp.exists()
    if not lock_path.exists() and not orphan:
        return
    lock = TransferLock(lock_path)
    with contextlib.suppress(TransferLockBusy, OSError):
        lock.acquire()
        try:
            if journal.exists() and not temp.exists():
                journal.unlink()
        finally:
            lock.release()
