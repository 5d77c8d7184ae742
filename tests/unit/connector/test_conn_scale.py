"""Many processes, one box: shards, locks, the shared open-upload limit, streaming."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from nacl.bindings import crypto_aead_chacha20poly1305_ietf_encrypt
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_handler import (
    CONTENT,
    DOWNLOAD_PACKAGE,
    FUB,
    UPLOAD_PACKAGE,
    FakeAccessor,
    FakeDownloader,
    FakeReporter,
    FakeStager,
    FakeUploader,
    _item,
)
from typer.testing import CliRunner

from ghga_connector.c4gh.envelope import make_envelope, new_data_secret
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.cli import app
from ghga_connector.core.box_busy import FIRST_WAIT, MAX_WAIT, BoxBusyBackoff
from ghga_connector.core.download import Downloader
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.journal import JournalStore
from ghga_connector.core.locks import TransferLock, TransferLockBusy, download_lock_path
from ghga_connector.core.planning import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE
from ghga_connector.core.ports import UploadJob
from ghga_connector.core.stream import StreamDownloader
from ghga_connector.core.upload import Uploader
from ghga_connector.errors import UploadRejectedError
from ghga_connector.models import DrsObject, Outcome, UploadListItem, WellKnownValues
from ghga_connector.sharding import Shard, parse_shard, select_share

POSIX_ONLY = pytest.mark.posix_only  # SIGKILL of a lock holder

# --- shards -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"), [("1/4", Shard(1, 4)), ("4/4", Shard(4, 4)), (" 2 / 3 ", Shard(2, 3))]
)
def test_parse_shard(text: str, expected: Shard) -> None:
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/b", "1/0", "3", "-1/4", "1/4/2", ""])
def test_parse_shard_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_shard(text)


@pytest.mark.parametrize("text", ["0/4", "5/4", "a/b"])
@pytest.mark.parametrize("command", ["upload", "download"])
def test_bad_shard_is_a_usage_error(text: str, command: str, tmp_path: Path) -> None:
    target = ["a.bam"] if command == "upload" else ["--output-dir", str(tmp_path)]
    result = CliRunner().invoke(app, [command, "--shard", text, *target])
    assert result.exit_code == 2, result.output
    assert "Invalid value for '--shard'" in result.output


SIZES = {f"f{n:02d}.bam": size for n, size in enumerate([5, 900, 13, 13, 400, 77, 1, 250, 13])}


def test_shares_cover_every_file_once_and_are_balanced_by_bytes() -> None:
    items = list(SIZES.items())
    shares = [
        select_share(items, Shard(k, 3), size=lambda i: i[1], name=lambda i: i[0])
        for k in (1, 2, 3)
    ]
    names = [name for share in shares for name, _ in share]
    assert sorted(names) == sorted(SIZES)
    loads = sorted(sum(size for _, size in share) for share in shares)
    # largest-first greedy: 900 alone; 400 alone; 250+77+13+13+13+5+1 = 372
    assert loads == [372, 400, 900]
    # each share keeps the order of the list it came from
    for share in shares:
        assert share == [i for i in items if i in share]


def test_shares_do_not_depend_on_the_order_of_the_list() -> None:
    items = list(SIZES.items())
    shuffled = items[:]
    random.Random(7).shuffle(shuffled)
    for k in (1, 2, 3, 4):
        first = select_share(items, Shard(k, 4), size=lambda i: i[1], name=lambda i: i[0])
        second = select_share(shuffled, Shard(k, 4), size=lambda i: i[1], name=lambda i: i[0])
        assert sorted(first) == sorted(second)


def test_more_shares_than_files_leaves_some_empty() -> None:
    items = [("a", 1), ("b", 2)]
    shares = [select_share(items, Shard(k, 5), size=lambda i: i[1], name=lambda i: i[0]) for k in range(1, 6)]  # fmt: skip
    assert sum(len(s) for s in shares) == 2
    assert shares[2:] == [[], [], []]


def test_dry_run_shard_prints_the_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name, size in SIZES.items():
        (tmp_path / name).write_bytes(b"x" * size)
    manifest = tmp_path / "m.tsv"
    manifest.write_text("".join(f"{n}\t{n}\n" for n in SIZES))
    # no key files: the share is announced before credentials are read
    result = CliRunner().invoke(app, ["upload", "--manifest", str(manifest), "--shard", "2/3", "--dry-run"])  # fmt: skip
    assert "Shard 2/3: 1 of 9 file(s), 400 bytes." in result.output


# --- locks ------------------------------------------------------------------------------

HOLDER = """
import sys, time
from pathlib import Path
from ghga_connector.core.locks import TransferLock
lock = TransferLock(Path(sys.argv[1]), keep_owner=True)
lock.acquire()
print("held", flush=True)
time.sleep(120)
"""


def _hold(path: Path) -> subprocess.Popen[str]:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    return holder


@POSIX_ONLY
def test_lock_held_by_another_process_names_it_and_is_recovered_after_sigkill(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.lock"
    holder = _hold(path)
    try:
        with pytest.raises(TransferLockBusy) as busy:
            TransferLock(path).acquire()
        assert busy.value.owner is not None
        assert busy.value.owner.pid == holder.pid
        assert busy.value.holder.endswith(f"pid {holder.pid}")
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    # the holder died without releasing: the lock is free, its record tells who held it
    lock = TransferLock(path)
    previous = lock.acquire()
    assert previous is not None and previous.pid == holder.pid
    lock.release()


def test_an_owner_record_half_written_by_a_killed_holder_is_cleared_by_the_next(
    tmp_path: Path,
) -> None:
    """A holder killed between writing its owner record and renaming it leaves nothing."""
    path = tmp_path / "z.lock"
    leftover = tmp_path / "z.lock.owner.tmp"
    leftover.write_text('{"host": "gone", "pi')
    lock = TransferLock(path)
    lock.acquire()
    lock.release()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_second_lock_in_the_same_process_is_refused(tmp_path: Path) -> None:
    first, second = TransferLock(tmp_path / "y.lock"), TransferLock(tmp_path / "y.lock")
    assert first.acquire() is None
    with pytest.raises(TransferLockBusy):
        second.acquire()
    first.release()
    assert second.acquire() is None
    second.release()


def _upload_handler(
    accessor: FakeAccessor, uploader: FakeUploader, reporter: FakeReporter, state: Path
) -> TransferHandler:
    return TransferHandler(
        accessor=accessor,
        stager=FakeStager(),
        uploader=uploader,
        downloader=FakeDownloader(),
        reporter=reporter,
        max_parallel_files=2,
        upload_lock_path=JournalStore(state).lock_path,
        lock_downloads=True,
    )


def _upload_job(alias: str, folder: Path, content: bytes = CONTENT) -> UploadJob:
    path = folder / "data" / alias
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return UploadJob(path=path, alias=alias, size=len(content))


async def test_upload_locked_by_another_process_is_busy_with_its_owner(tmp_path: Path) -> None:
    """Busy is not done: its own outcome (exit 75), never "skipped"."""
    uploader, reporter = FakeUploader(), FakeReporter()
    handler = _upload_handler(FakeAccessor(UPLOAD_PACKAGE), uploader, reporter, tmp_path)
    other = TransferLock(JournalStore(tmp_path).lock_path(FUB, "a.bam"))
    other.acquire()
    try:
        jobs = [_upload_job("a.bam", tmp_path), _upload_job("b.bam", tmp_path)]
        outcomes = await handler.upload(jobs)
    finally:
        other.release()
    assert [o.outcome for o in outcomes] == [Outcome.BUSY, Outcome.DONE]
    assert outcomes[0].message.startswith("a.bam is being uploaded by another process (")
    assert f"pid {os.getpid()}); not checked yet" in outcomes[0].message
    assert "--wait" in outcomes[0].message
    assert [j.alias for j in uploader.jobs] == ["b.bam"]
    # released: no lock file is left, only the owner record of b.bam's upload
    b_lock = JournalStore(tmp_path).lock_path(FUB, "b.bam")
    assert sorted(p.name for p in (tmp_path / "uploads").iterdir()) == [f"{b_lock.name}.owner"]


async def test_upload_busy_with_wait_waits_then_checks_the_box(tmp_path: Path) -> None:
    """``--wait``: the other process finishes the file; then it is judged by its SHA-256."""
    accessor = FakeAccessor(UPLOAD_PACKAGE)
    uploader, reporter = FakeUploader(), FakeReporter()
    handler = TransferHandler(
        accessor=accessor,
        stager=FakeStager(),
        uploader=uploader,
        downloader=FakeDownloader(),
        reporter=reporter,
        max_parallel_files=2,
        upload_lock_path=JournalStore(tmp_path).lock_path,
        wait_poll=0.0,
    )
    other = TransferLock(JournalStore(tmp_path).lock_path(FUB, "a.bam"), keep_owner=True)
    other.acquire()
    polls = []

    def status(name: str, text: str) -> None:
        polls.append(text)
        if len(polls) == 3:  # the other process finishes the upload and releases
            accessor.uploads = [_item("a.bam", "inbox")]
            other.release()

    reporter.file_status = status  # type: ignore[method-assign]
    (outcome,) = await handler.upload([_upload_job("a.bam", tmp_path)], wait=True)
    assert outcome.outcome is Outcome.SKIPPED
    assert "uploaded meanwhile by another process" in outcome.message
    assert "same SHA-256" in outcome.message
    assert polls[0].startswith("waiting for another process (")
    assert uploader.jobs == []


class ChangingAccessor(FakeAccessor):
    """The box is listed empty first; another process uploads meanwhile."""

    def __init__(self, later: list[UploadListItem]) -> None:
        super().__init__(UPLOAD_PACKAGE)
        self.later = later
        self.listings = 0

    async def list_uploads(self) -> list[UploadListItem]:
        self.listings += 1
        return [] if self.listings == 1 else list(self.later)


@pytest.mark.parametrize(
    ("state", "outcome", "unfinished"),
    [("inbox", Outcome.SKIPPED, None), ("init", Outcome.DONE, "id-a.bam")],
)
async def test_upload_finished_or_left_by_another_process_meanwhile(
    tmp_path: Path, state: str, outcome: Outcome, unfinished: str | None
) -> None:
    accessor = ChangingAccessor([_item("a.bam", state)])
    uploader, reporter = FakeUploader(), FakeReporter()
    handler = _upload_handler(accessor, uploader, reporter, tmp_path)
    other = TransferLock(JournalStore(tmp_path).lock_path(FUB, "a.bam"), keep_owner=True)

    real_list = accessor.list_uploads

    async def listed_then_other_process_runs() -> list[UploadListItem]:
        result = await real_list()
        if accessor.listings == 1:  # after our listing, another process holds and releases
            other.acquire()
            other.release()
        return result

    accessor.list_uploads = listed_then_other_process_runs  # type: ignore[method-assign]
    (result,) = await handler.upload([_upload_job("a.bam", tmp_path)])
    assert result.outcome is outcome
    assert accessor.listings == 2  # listed again after taking the lock
    if outcome is Outcome.SKIPPED:
        assert "uploaded meanwhile by another process" in result.message
        assert not uploader.jobs
    else:
        assert uploader.jobs[0].unfinished_file_id == unfinished


async def test_download_target_locked_by_another_process_is_busy(tmp_path: Path) -> None:
    downloader, reporter = FakeDownloader(), FakeReporter()
    handler = TransferHandler(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        stager=FakeStager(),
        uploader=FakeUploader(),
        downloader=downloader,
        reporter=reporter,
        max_parallel_files=2,
        lock_downloads=True,
    )
    jobs = await handler.download_plan(tmp_path, accessions=None, decrypt=True)
    other = TransferLock(download_lock_path(jobs[0].target))
    other.acquire()
    try:
        outcomes = await handler.download(jobs)
    finally:
        other.release()
    assert [o.outcome for o in outcomes] == [Outcome.BUSY, Outcome.DONE, Outcome.DONE]
    assert "GHGAF001.bam is being downloaded by another process (" in outcomes[0].message
    # Locks are taken in worker threads: files in parallel start in any order.
    assert sorted(j.accession for j in downloader.jobs) == ["GHGAF002", "GHGAF003"]
    assert not jobs[0].target.exists()
    # no lock or owner file is left in the output folder
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GHGAF002.vcf.gz", "GHGAF003"]


@POSIX_ONLY
async def test_leftovers_beside_a_finished_download_of_a_killed_process_are_removed(
    tmp_path: Path,
) -> None:
    handler = TransferHandler(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        stager=FakeStager(),
        uploader=FakeUploader(),
        downloader=FakeDownloader(),
        reporter=FakeReporter(),
        max_parallel_files=1,
        lock_downloads=True,
    )
    (job,) = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=True)
    job.target.write_bytes(b"data")
    (tmp_path / "GHGAF001.bam.part.json").write_text("{}\n1\n")  # its range journal
    holder = _hold(download_lock_path(job.target))  # killed after the rename, before cleanup
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".GHGAF001.bam.lock",
        ".GHGAF001.bam.lock.owner",
        "GHGAF001.bam",
        "GHGAF001.bam.part.json",
    ]
    (outcome,) = await handler.download([job])
    assert outcome.outcome is Outcome.SKIPPED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GHGAF001.bam"]


async def test_download_finished_by_another_process_meanwhile_is_skipped(tmp_path: Path) -> None:
    downloader = FakeDownloader()
    handler = TransferHandler(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        stager=FakeStager(),
        uploader=FakeUploader(),
        downloader=downloader,
        reporter=FakeReporter(),
        max_parallel_files=1,
        lock_downloads=True,
    )
    jobs = await handler.download_plan(tmp_path, accessions=["GHGAF001"], decrypt=True)
    # planned while absent, then written by another process before this one's turn
    outcome = await handler.downloads.download_locked(jobs[0], replacing=False)
    assert outcome.outcome is Outcome.DONE
    again = await handler.downloads.download_locked(jobs[0], replacing=False)
    assert again.outcome is Outcome.SKIPPED
    assert again.message.startswith("downloaded meanwhile by another process; ")
    assert len(downloader.jobs) == 1
    # a target planned to be replaced (--overwrite, or damaged under --verify) is replaced
    replaced = await handler.downloads.download_locked(jobs[0], replacing=True)
    assert replaced.outcome is Outcome.DONE
    assert len(downloader.jobs) == 2


# --- the box's limit of open uploads ------------------------------------------------------


def test_box_busy_waits_grow_with_jitter_and_give_up_only_without_progress() -> None:
    now = [0.0]
    backoff = BoxBusyBackoff(clock=lambda: now[0], rng=random.Random(1), stall_limit=600)
    waits = []
    for step in range(40):
        wait = backoff.next_wait(frozenset({f"u{step}"}))  # the box changes every time
        assert wait is not None
        waits.append(wait)
        now[0] += wait
    assert FIRST_WAIT * 0.5 <= waits[0] < FIRST_WAIT * 1.5
    assert all(MAX_WAIT * 0.5 <= w < MAX_WAIT * 1.5 for w in waits[10:])
    assert len({round(w, 6) for w in waits[10:]}) == 30  # jittered, not in step
    # the same open uploads for the whole stall limit: give up
    stuck = frozenset({"x"})
    backoff.next_wait(stuck)
    now[0] += 599
    assert backoff.next_wait(stuck) is not None
    assert backoff.next_wait(None) is not None  # a failed listing is no evidence
    now[0] += 1
    assert backoff.next_wait(stuck) is None


class BusyUcs(MemoryGhga):
    """Duck-typed UcsClient: the box is full for the first ``busy`` creates."""

    def __init__(self, busy: int) -> None:
        super().__init__()
        self.busy = busy
        self.creates = 0

    async def create_upload(self, box_id: str, token: object, **kwargs: object) -> tuple[str, str]:
        self.creates += 1
        if self.creates <= self.busy:
            raise UploadRejectedError("full", exception_id="tooManyOpenUploads", status_code=429)
        raise UploadRejectedError("stop here", exception_id="boxStateError", status_code=409)


class TurningAccessor(FakeAccessor):
    """Other processes' uploads come and go: every listing shows a new one."""

    async def list_uploads(self) -> list[UploadListItem]:
        self.uploads = [_item(f"other{len(self.wots)}-{id(object())}.bam", "init")]
        return list(self.uploads)


async def test_create_keeps_waiting_while_other_processes_progress(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    path = tmp_path / "a.bam"
    path.write_bytes(b"x" * 100)
    ucs, reporter, slept = BusyUcs(busy=25), FakeReporter(), []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    values = WellKnownValues(crypt4gh_public_keys={}, wps_api_url="w", ucs_api_url="u", dcs_api_url="d")  # fmt: skip
    with ThreadPoolExecutor(max_workers=1) as executor:
        uploader = Uploader(
            accessor=TurningAccessor(UPLOAD_PACKAGE),
            ucs=ucs,
            storage=MemoryGhga(),
            values=values,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=16 * 1024 * 1024,
            concurrency=1,
            sleep=sleep,
        )
        outcome = await uploader.upload(UploadJob(path=path, alias="a.bam", size=100))
    # 25 refusals (far more than a fixed number of retries) are waited out; the 26th
    # create gets past the limit (and is then refused for another reason here)
    assert ucs.creates == 26
    assert len(slept) == 25
    assert "stop here" in outcome.message
    assert any("box busy, retrying in" in status for _, status in reporter.statuses)


# --- streaming ------------------------------------------------------------------------------


def _encrypt(plain: bytes, secret: bytes) -> bytes:
    body = bytearray()
    for index, start in enumerate(range(0, len(plain), SEGMENT_SIZE)):
        nonce = hashlib.blake2b(index.to_bytes(8, "little"), digest_size=12).digest()
        segment = plain[start : start + SEGMENT_SIZE]
        body += nonce + crypto_aead_chacha20poly1305_ietf_encrypt(segment, None, nonce, secret)
    return bytes(body)


class CountingSink(io.BytesIO):
    """Standard output stand-in that counts its writes (one per range)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, data: object) -> int:  # type: ignore[override]
        self.writes += 1
        return super().write(data)  # type: ignore[arg-type]


class BodyStorage(MemoryGhga):
    """Duck-typed ObjectStorageClient serving ``body``; later ranges answer sooner."""

    def __init__(self, body: bytes, sink: CountingSink) -> None:
        super().__init__()
        self.body = body
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = 0
        self.sink = sink
        self.max_ahead = 0

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started += 1
        # ranges fetched or waiting in the reorder buffer, not yet written
        self.max_ahead = max(self.max_ahead, self.started - self.sink.writes)
        try:
            # out of order: each range waits fewer loop turns the later it is
            for _ in range(max(0, 50 - start // (1024 * 1024) * 10)):
                await asyncio.sleep(0)
            into[:] = self.body[start:stop]
        finally:
            self.in_flight -= 1


@pytest.mark.parametrize("tamper", [False, True, None])
async def test_stream_writes_in_order_within_the_window_and_checks_the_sha256(
    user_keys: KeyPair, tamper: bool | None
) -> None:
    """``tamper``: the archive's checksum is wrong (True), right (False), absent (None)."""
    plain = random.Random(3).randbytes(5 * 1024 * 1024 + 777)
    secret = new_data_secret()
    body = _encrypt(plain, secret)
    sink = CountingSink()
    storage = BodyStorage(body, sink)

    class Dcs(MemoryGhga):
        async def get_envelope(self, accession: str, token: object) -> bytes:
            return make_envelope(secret, user_keys.secret, user_keys.public)

    checksum = hashlib.sha256(plain + (b"!" if tamper else b"")).hexdigest()
    drs = DrsObject(accession="GHGAF001", download_url="http://s3/x", size=len(body), sha256=None if tamper is None else checksum)  # fmt: skip
    reporter = FakeReporter()
    with ThreadPoolExecutor(max_workers=2) as executor:
        downloader = Downloader(
            accessor=FakeAccessor(DOWNLOAD_PACKAGE),
            dcs=Dcs(),
            storage=storage,
            stager=FakeStager(),
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=1024 * 1024,
            concurrency=3,
        )
        streamer = StreamDownloader(
            downloader=downloader, reporter=reporter, executor=executor, window=3
        )
        outcome = await streamer.stream("GHGAF001", drs, sink)
    assert sink.getvalue() == plain  # in order, whatever order the ranges arrived in
    assert storage.max_in_flight <= 3
    assert storage.max_ahead <= 3  # the reorder buffer stays within the window
    ranges = -(-len(body) // (16 * CIPHER_SEGMENT_SIZE))
    assert ranges == 6
    if tamper:
        assert outcome.outcome is Outcome.FAILED
        assert "the streamed data is invalid" in outcome.message
        # the data went to the pipe: no "damaged output was removed"
        assert "removed" not in outcome.message
        assert "discard what the reading program received" in outcome.message
    elif tamper is None:
        assert outcome.outcome is Outcome.UNVERIFIED
        assert outcome.details["verified"] is False
    else:
        assert outcome.outcome is Outcome.DONE
        assert outcome.details["sha256"] == checksum


def test_output_dash_needs_one_file_and_decrypt(tmp_path: Path) -> None:
    runner = CliRunner()
    for args, text in [
        (["--output", "-", "--decrypt"], "exactly one --file"),
        (["--output", "-", "--file", "A"], "add --decrypt"),
        (["--output", "out.bam", "--file", "A", "--decrypt"], "takes only '-'"),
        (["--output", "-", "--file", "A", "--decrypt", "--output-dir", "."], "--output-dir"),
    ]:
        result = runner.invoke(app, ["download", *args])
        assert result.exit_code == 2, result.output
        assert text in result.output
