"""Blocking file-system calls run off the event loop: one slow fsync stalls only its file.

On a shared state or output folder (NFS, Lustre) a single fsync, rename or lock may
take seconds. Each test blocks one such call of file A on a ``threading.Event`` and
asserts on the order of events that file B, started only once A is blocked, finishes
before A's call is let go. Were the call made on the event loop, the loop would stand
still until the call gave up waiting (``GIVE_UP`` seconds), B could not even start, and
the order would be reversed. No assertion depends on how fast anything runs.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_download import Archive, ArchiveStager, FakeDcs, FakeStorage
from tests.unit.connector.test_conn_handler import (
    DOWNLOAD_PACKAGE,
    UPLOAD_PACKAGE,
    FakeAccessor,
    FakeReporter,
)
from tests.unit.connector.test_conn_upload import PART

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.download import Downloader
from ghga_connector.core.journal import JournalStore
from ghga_connector.core.locks import TransferLock, acquire_waiting
from ghga_connector.core.ports import DownloadJob, UploadJob
from ghga_connector.core.upload import Uploader
from ghga_connector.models import FileOutcome, Outcome

#: Seconds a blocked call waits to be let go before it gives up (only reached on failure).
GIVE_UP = 5.0


class SlowFsync:
    """``os.fsync`` that blocks the first call for a descriptor ``matches`` until B finishes.

    ``events`` records, in order: ``"A blocked"``, ``"B finished"`` and ``"A released"``
    (or ``"A gave up"`` when nobody let it go within :data:`GIVE_UP` seconds).
    """

    def __init__(self, matches: Callable[[Path], bool], loop: asyncio.AbstractEventLoop) -> None:
        self.matches = matches
        self.events: list[str] = []
        self.a_blocked = asyncio.Event()
        self._loop = loop
        self._release = threading.Event()
        self._real = os.fsync
        self._done = False

    def __call__(self, fd: int) -> None:
        path = Path(os.readlink(f"/proc/self/fd/{fd}"))
        if not self._done and self.matches(path):
            self._done = True
            self.events.append("A blocked")
            self._loop.call_soon_threadsafe(self.a_blocked.set)
            released = self._release.wait(GIVE_UP)
            self.events.append("A released" if released else "A gave up")
        self._real(fd)

    def finished(self, outcome: FileOutcome, b_name: str) -> None:
        if outcome.name == b_name:
            self.events.append("B finished")
            self._release.set()


class OrderReporter(FakeReporter):
    def __init__(self, slow: SlowFsync, b_name: str) -> None:
        super().__init__()
        self._slow = slow
        self._b_name = b_name

    def file_finished(self, outcome: FileOutcome) -> None:
        super().file_finished(outcome)
        self._slow.finished(outcome, self._b_name)


pytestmark = pytest.mark.skipif(
    not Path("/proc/self/fd").is_dir(), reason="needs /proc to name a descriptor's file"
)


async def test_slow_upload_journal_fsync_does_not_stall_another_upload(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A's journal append is fsynced (``JournalStore.add_part``) while B uploads."""
    files = {}
    for name in ("a.bam", "b.bam"):
        files[name] = tmp_path / name
        files[name].write_bytes(random.Random(name).randbytes(100_000))
    state = tmp_path / "state"
    journals = JournalStore(state)
    a_journal = journals._path(UPLOAD_PACKAGE.file_upload_box_id or "", "a.bam")
    slow = SlowFsync(lambda path: path == a_journal, asyncio.get_running_loop())
    monkeypatch.setattr(os, "fsync", slow)
    reporter = OrderReporter(slow, "b.bam")
    ghga = MemoryGhga()
    with ThreadPoolExecutor(max_workers=2) as executor:
        uploader = Uploader(
            accessor=FakeAccessor(UPLOAD_PACKAGE),
            ucs=ghga,
            storage=ghga,
            values=ghga.values,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=PART,
            concurrency=2,
            journals=journals,
            sleep=lambda _s: asyncio.sleep(0),
        )

        def job(name: str) -> UploadJob:
            return UploadJob(path=files[name], alias=name, size=100_000)

        async def b_once_a_blocks() -> FileOutcome:
            await slow.a_blocked.wait()
            return await uploader.upload(job("b.bam"))

        a, b = await asyncio.gather(uploader.upload(job("a.bam")), b_once_a_blocks())
    assert slow.events == ["A blocked", "B finished", "A released"]
    assert (a.outcome, b.outcome) == (Outcome.DONE, Outcome.DONE)


@pytest.mark.parametrize("call", ["range journal", "rename"])
async def test_slow_download_fsync_does_not_stall_another_download(
    tmp_path: Path, user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch, call: str
) -> None:
    """A's range journal is started (``.part`` creation), or A's folder fsynced after its
    final rename, while B downloads into another folder."""
    folder_a, folder_b = tmp_path / "a", tmp_path / "b"
    folder_a.mkdir()
    folder_b.mkdir()
    target_a = folder_a / "GHGAF001.bam"

    def matches(path: Path) -> bool:
        if call == "range journal":
            return path.parent == folder_a and ".part.json" in path.name
        return path == folder_a and target_a.exists()

    slow = SlowFsync(matches, asyncio.get_running_loop())
    monkeypatch.setattr(os, "fsync", slow)
    reporter = OrderReporter(slow, "GHGAF002.bam")
    archive = Archive(user_keys)
    stager = ArchiveStager(archive)
    with ThreadPoolExecutor(max_workers=2) as executor:
        downloader = Downloader(
            accessor=FakeAccessor(DOWNLOAD_PACKAGE),
            dcs=FakeDcs(archive),
            storage=FakeStorage(archive),
            stager=stager,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=2 * 65564,
            concurrency=2,
        )

        async def download(accession: str, folder: Path) -> FileOutcome:
            job = DownloadJob(accession, ".bam", folder / f"{accession}.bam", True)
            return await downloader.download(job, await stager.staged_object(accession))

        async def b_once_a_blocks() -> FileOutcome:
            await slow.a_blocked.wait()
            return await download("GHGAF002", folder_b)

        a, b = await asyncio.gather(download("GHGAF001", folder_a), b_once_a_blocks())
    assert slow.events == ["A blocked", "B finished", "A released"]
    assert (a.outcome, b.outcome) == (Outcome.DONE, Outcome.DONE)
    assert target_a.read_bytes() == (folder_b / "GHGAF002.bam").read_bytes()


async def test_slow_lock_acquisition_does_not_stall_the_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Taking a transfer lock (``acquire_waiting``) runs in a worker thread."""
    events: list[str] = []
    blocked, release = threading.Event(), threading.Event()
    lock = TransferLock(tmp_path / "x.lock")
    take = lock.acquire

    def slow_acquire() -> object:
        blocked.set()
        events.append("acquire released" if release.wait(GIVE_UP) else "acquire gave up")
        return take()

    monkeypatch.setattr(lock, "acquire", slow_acquire)
    task = asyncio.create_task(acquire_waiting(lock, "x", FakeReporter(), wait=False))
    await asyncio.to_thread(blocked.wait, GIVE_UP)
    events.append("loop ran")
    release.set()
    await task
    await asyncio.to_thread(lock.release)
    assert events == ["loop ran", "acquire released"]
