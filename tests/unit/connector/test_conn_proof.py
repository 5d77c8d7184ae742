"""Exit 0 only with proof: skipped means proven identical, busy is not done.

* an upload is ``skipped`` only when the box's ``decrypted_sha256`` equals the local
  file's SHA-256 (same size, other content: ``failed``; no checksum: ``unverified``),
  also on the "uploaded meanwhile by another process" path; the digest is remembered in
  the state folder (keyed by path and identity);
* an existing download is ``skipped`` without reading it only when its sidecar vouches
  for it;
* a file busy in another process is ``busy`` (exit 75), or waited for with ``wait``;
  a soft lock without heartbeat for too long is taken over; lock files are removed on
  release;
* the exit code of a batch with mixed outcomes.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from pathlib import Path

import pytest
from tests.unit.connector.test_conn_handler import (
    DOWNLOAD_PACKAGE,
    FUB,
    UPLOAD_PACKAGE,
    FakeAccessor,
    FakeDownloader,
    FakeReporter,
    FakeStager,
    FakeUploader,
)

from ghga_connector.cli_options import GlobalOptions
from ghga_connector.cli_session import summary
from ghga_connector.core.decrypt import vouch_for
from ghga_connector.core.digests import DigestCache
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.journal import FileIdentity, JournalStore
from ghga_connector.core.locks import (
    LockOwner,
    TransferLock,
    TransferLockBusy,
    prune_owner_records,
)
from ghga_connector.core.ports import DownloadJob, UploadJob
from ghga_connector.errors import EXIT_BUSY, EXIT_FAILURE, EXIT_OK
from ghga_connector.models import FileOutcome, FileUploadState, Outcome, UploadListItem

MB3 = 3_000_000


def _file(folder: Path, name: str, content: bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _in_box(alias: str, content: bytes | None, *, sha256: bool = True) -> UploadListItem:
    return UploadListItem(
        id=f"id-{alias}",
        alias=alias,
        state=FileUploadState.INBOX,
        decrypted_size=len(content or b""),
        decrypted_sha256=hashlib.sha256(content or b"").hexdigest() if sha256 else None,
    )


def _handler(
    accessor: FakeAccessor,
    *,
    uploader: FakeUploader | None = None,
    state: Path | None = None,
    reporter: FakeReporter | None = None,
    downloader: FakeDownloader | None = None,
) -> TransferHandler:
    return TransferHandler(
        accessor=accessor,
        stager=FakeStager(),
        uploader=uploader or FakeUploader(),
        downloader=downloader or FakeDownloader(),
        reporter=reporter or FakeReporter(),
        max_parallel_files=2,
        upload_lock_path=JournalStore(state).lock_path if state else None,
        lock_downloads=state is not None,
        digests=DigestCache(state / "digests") if state else None,
        wait_poll=0.0,
    )


# --- 1. skipped means proven identical -------------------------------------------------


async def test_same_alias_same_size_other_content_fails(tmp_path: Path) -> None:
    """a/x.bin uploaded, then another 3,000,000-byte b/x.bin under the same alias."""
    first = os.urandom(MB3)
    other = _file(tmp_path, "b/x.bin", os.urandom(MB3))
    uploader = FakeUploader()
    handler = _handler(FakeAccessor(UPLOAD_PACKAGE, [_in_box("x.bin", first)]), uploader=uploader)
    (outcome,) = await handler.upload([UploadJob(other, "x.bin", MB3)])
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith("a different file named x.bin is already in the upload box")
    assert "same size, another SHA-256" in outcome.message
    assert "--overwrite" in outcome.message
    assert outcome.details["decrypted_sha256"] == hashlib.sha256(other.read_bytes()).hexdigest()
    assert uploader.jobs == []
    # the same file is proven identical
    same = _file(tmp_path, "a/x.bin", first)
    (outcome,) = await handler.upload([UploadJob(same, "x.bin", MB3)])
    assert outcome.outcome is Outcome.SKIPPED
    assert "same SHA-256" in outcome.message


async def test_a_box_without_checksum_gives_unverified_not_skipped(tmp_path: Path) -> None:
    content = b"0123456789"
    path = _file(tmp_path, "x.bin", content)
    item = _in_box("x.bin", content, sha256=False)
    (outcome,) = await _handler(FakeAccessor(UPLOAD_PACKAGE, [item])).upload(
        [UploadJob(path, "x.bin", len(content))]
    )
    assert outcome.outcome is Outcome.UNVERIFIED
    assert "no checksum" in outcome.message


async def test_uploaded_meanwhile_with_other_content_fails(tmp_path: Path) -> None:
    """The "uploaded meanwhile by another process" path compares checksums too."""
    path = _file(tmp_path, "data/x.bin", b"mine, 20 bytes long.")
    theirs = b"theirs, 20 bytes lon"
    accessor = FakeAccessor(UPLOAD_PACKAGE)
    real_list = accessor.list_uploads
    other = TransferLock(JournalStore(tmp_path).lock_path(FUB, "x.bin"), keep_owner=True)
    listings = []

    async def listed_then_other_process_uploads() -> list[UploadListItem]:
        result = await real_list()
        listings.append(result)
        if len(listings) == 1:  # after our listing another process uploads x.bin
            other.acquire()
            other.release()
            accessor.uploads = [_in_box("x.bin", theirs)]
        return result

    accessor.list_uploads = listed_then_other_process_uploads  # type: ignore[method-assign]
    uploader = FakeUploader()
    handler = _handler(accessor, uploader=uploader, state=tmp_path)
    (outcome,) = await handler.upload([UploadJob(path, "x.bin", 20)])
    assert len(listings) == 2
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith("uploaded meanwhile by another process (")
    assert "a different file named x.bin" in outcome.message
    assert uploader.jobs == []


def test_digest_cache_is_keyed_by_path_and_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"  # does not exist yet: created 0700
    path = _file(tmp_path, "x.bin", b"a" * 1000)
    old = time.time() - 60
    os.utime(path, (old, old))
    cache = DigestCache(state / "digests", clock=lambda: time.time() + 60)
    digest = hashlib.sha256(b"a" * 1000).hexdigest()
    assert cache.sha256(path) == digest
    (entry,) = (state / "digests").iterdir()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    assert stat.S_IMODE((state / "digests").stat().st_mode) == 0o700
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    record = json.loads(entry.read_text())
    identity = FileIdentity.of(path)
    assert record["identity"] == [
        identity.size,
        identity.mtime_ns,
        identity.ctime_ns,
        identity.inode,
    ]
    # a re-run does not read the file again
    monkeypatch.setattr(Path, "open", lambda *a, **k: pytest.fail("read again"))
    assert cache.sha256(path) == digest
    monkeypatch.undo()
    # same size, mtime put back: ctime differs, so it is read again
    path.write_bytes(b"b" * 1000)
    os.utime(path, (old, old))
    assert cache.sha256(path) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_digest_cache_never_chmods_a_folder_it_did_not_create(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    path = _file(tmp_path, "x.bin", b"x")
    DigestCache(state / "digests", clock=lambda: time.time() + 60).sha256(path)
    assert stat.S_IMODE(state.stat().st_mode) == 0o755
    assert (state / "digests").is_dir()


def test_a_file_changed_just_before_it_was_read_is_not_remembered(tmp_path: Path) -> None:
    path = _file(tmp_path, "x.bin", b"x")  # written now: within RACY_SECONDS
    cache = DigestCache(tmp_path / "digests")
    cache.sha256(path)
    assert not (tmp_path / "digests").exists()


# --- 2. an existing download is skipped only with its sidecar's vouch --------------------


class VerifyingDownloader(FakeDownloader):
    def __init__(self, verdict: bool | None) -> None:
        super().__init__()
        self.verdict = verdict
        self.verified: list[str] = []

    async def verify_existing(self, job: DownloadJob) -> bool | None:
        self.verified.append(job.accession)
        return self.verdict


@pytest.mark.parametrize(
    ("verdict", "outcome"),
    [(True, Outcome.SKIPPED), (False, Outcome.FAILED), (None, Outcome.UNVERIFIED)],
)
async def test_existing_download_without_vouch_is_checked(
    tmp_path: Path, verdict: bool | None, outcome: Outcome
) -> None:
    downloader = VerifyingDownloader(verdict)
    handler = _handler(FakeAccessor(DOWNLOAD_PACKAGE), downloader=downloader)
    (job,) = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=True)
    job.target.write_bytes(b"some content")
    (result,) = await handler.download([job])
    assert result.outcome is outcome
    assert downloader.verified == ["GHGAF001"]
    assert downloader.jobs == []  # never replaced without --overwrite or --verify


async def test_existing_download_with_vouch_is_skipped_unread(tmp_path: Path) -> None:
    downloader = VerifyingDownloader(False)
    stager = FakeStager()
    handler = TransferHandler(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        stager=stager,
        uploader=FakeUploader(),
        downloader=downloader,
        reporter=FakeReporter(),
        max_parallel_files=2,
    )
    (job,) = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=True)
    job.target.write_bytes(b"some content")
    vouch_for(job.target, hashlib.sha256(b"some content").hexdigest())
    (result,) = await handler.download([job])
    assert result.outcome is Outcome.SKIPPED
    assert "verified when it was downloaded" in result.message
    assert downloader.verified == [] and stager.asked == []  # no read, no DRS request
    # changed since: the vouch no longer holds
    job.target.write_bytes(b"other content!")
    (result,) = await handler.download([job])
    assert result.outcome is Outcome.FAILED
    assert downloader.verified == ["GHGAF001"]


# --- 3. busy is not done ---------------------------------------------------------------


async def test_busy_download_waits_with_wait(tmp_path: Path) -> None:
    reporter = FakeReporter()
    downloader = FakeDownloader()
    handler = _handler(
        FakeAccessor(DOWNLOAD_PACKAGE), state=tmp_path, reporter=reporter, downloader=downloader
    )
    out = tmp_path / "out"
    out.mkdir()
    (job,) = await handler.download_plan(out, accessions=["GHGAF001"], decrypt=True)
    other = TransferLock(out / f".{job.target.name}.lock")
    other.acquire()
    (busy,) = await handler.download([job])
    assert busy.outcome is Outcome.BUSY
    polls: list[str] = []

    def status(name: str, text: str) -> None:
        polls.append(text)
        if len(polls) == 2:
            other.release()

    reporter.file_status = status  # type: ignore[method-assign]
    (done,) = await handler.download([job], wait=True)
    assert done.outcome is Outcome.DONE
    assert polls[0].startswith("waiting for another process")


def _stale_owner(lock: Path, age: float) -> None:
    owner = lock.with_name(lock.name + ".owner")
    owner.write_text(json.dumps({"host": "node7", "pid": 4711, "time": time.time() - age}))


def test_a_soft_lock_without_heartbeat_is_taken_over(tmp_path: Path) -> None:
    """A process that died on another host (no flock there) left its marker behind."""
    path = tmp_path / "x.lock"
    dead = TransferLock(path, soft=True)
    dead.acquire()
    dead._stop_heartbeat()  # it dies: no more heartbeats, the marker stays
    _stale_owner(path, age=60)
    with pytest.raises(TransferLockBusy):  # a recent heartbeat: still busy
        TransferLock(path, soft=True, stale_after=600).acquire()
    _stale_owner(path, age=601)
    taker = TransferLock(path, soft=True, stale_after=600)
    previous = taker.acquire()
    assert taker.taken_over == previous
    assert previous is not None and (previous.host, previous.pid) == ("node7", 4711)
    # the new holder's heartbeat is fresh: a third process does not take it over
    with pytest.raises(TransferLockBusy) as busy:
        TransferLock(path, soft=True, stale_after=600).acquire()
    assert busy.value.owner is not None and busy.value.owner.pid == os.getpid()
    assert not path.with_name("x.lock.takeover").exists()
    # a process that saw the dead owner before the takeover reads the owner again under
    # the takeover guard, finds the new holder's heartbeat and leaves its lock alone
    late = TransferLock(path, soft=True, stale_after=600)
    with pytest.raises(TransferLockBusy):
        late._take_over(previous)
    assert path.exists() and late.taken_over is None
    taker.release()


def test_a_takeover_in_progress_is_not_doubled(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    dead = TransferLock(path, soft=True)
    dead.acquire()
    dead._stop_heartbeat()
    _stale_owner(path, age=601)
    path.with_name("x.lock.takeover").write_text("")  # another process is taking it over
    with pytest.raises(TransferLockBusy):
        TransferLock(path, soft=True, stale_after=600).acquire()


def test_an_flock_is_never_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    holder = TransferLock(path)
    holder.acquire()
    holder._stop_heartbeat()
    _stale_owner(path, age=10_000)
    with pytest.raises(TransferLockBusy):
        TransferLock(path, stale_after=600).acquire()
    holder.release()


def test_the_heartbeat_renews_the_owner_record(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = TransferLock(path, heartbeat=0.01)
    lock.acquire()
    _stale_owner(path, age=10_000)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        owner = json.loads(path.with_name("x.lock.owner").read_text())
        if owner["pid"] == os.getpid():
            break
        time.sleep(0.01)
    assert owner["pid"] == os.getpid()
    assert LockOwner(owner["host"], owner["pid"], owner["time"]).age() < 600
    lock.release()


def test_released_upload_locks_leave_one_owner_record_which_is_pruned(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    lock = TransferLock(path, keep_owner=True)
    lock.acquire()
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.lock.owner"]
    assert prune_owner_records(tmp_path) == 0
    old = time.time() - 32 * 86400
    os.utime(tmp_path / "x.lock.owner", (old, old))
    assert prune_owner_records(tmp_path) == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="POSIX flock")
def test_a_contender_on_the_unlinked_lock_file_never_holds_it(tmp_path: Path) -> None:
    """The release unlinks the lock file while locked; filelock re-checks the link count.

    A contender that opened the file before the release can flock the old inode once it
    is released, but that inode has no name any more (``st_nlink == 0``), which filelock
    refuses as a hold; whoever opens the path now gets a new inode.
    """
    import fcntl

    path = tmp_path / "x.lock"
    first = TransferLock(path)
    first.acquire()
    contender = os.open(path, os.O_RDWR)  # opened while held, as a racing process would
    try:
        first.release()
        assert not path.exists()
        fcntl.flock(contender, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the kernel allows it ...
        assert os.fstat(contender).st_nlink == 0  # ... on an inode without a name
        second = TransferLock(path)
        second.acquire()  # a new inode: not blocked by, nor shared with, the contender
        with pytest.raises(TransferLockBusy):
            TransferLock(path).acquire()
        second.release()
    finally:
        os.close(contender)


# --- exit codes of mixed batches ---------------------------------------------------------


@pytest.mark.parametrize(
    ("outcomes", "allow_unverified", "code"),
    [
        ([Outcome.DONE, Outcome.SKIPPED], False, EXIT_OK),
        ([Outcome.DONE, Outcome.BUSY], False, EXIT_BUSY),
        ([Outcome.BUSY, Outcome.FAILED], False, EXIT_FAILURE),
        ([Outcome.BUSY, Outcome.UNVERIFIED], False, EXIT_FAILURE),
        ([Outcome.BUSY, Outcome.UNVERIFIED], True, EXIT_BUSY),
        ([Outcome.UNVERIFIED], True, EXIT_OK),
    ],
)
def test_exit_code_precedence(
    outcomes: list[Outcome], allow_unverified: bool, code: int, capsys: pytest.CaptureFixture[str]
) -> None:
    results = [FileOutcome(name=f"f{i}", outcome=o) for i, o in enumerate(outcomes)]
    options = GlobalOptions(json=True)
    assert summary(options, results, "Upload", allow_unverified=allow_unverified) == code
    if code == EXIT_BUSY:
        assert "exit code 75" in capsys.readouterr().err
