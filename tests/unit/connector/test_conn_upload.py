"""core/upload.py: the uploader's integrity checks against an in-memory UCS and S3.

Each test provokes one failure the uploader must catch (a wrong ETag, a file that
changes while it is read or between an interrupted upload and its resume) and asserts
that the file is never reported ``done`` with data that differs from the file, that a
resume sends only the missing parts, and what the user is told.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_handler import UPLOAD_PACKAGE, FakeAccessor, FakeReporter

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.journal import FileIdentity, JournalStore
from ghga_connector.core.ports import UploadJob
from ghga_connector.core.scheduler import BufferPool
from ghga_connector.core.upload import Uploader, multipart_etag
from ghga_connector.errors import ServiceUnreachableError
from ghga_connector.models import FileOutcome, Outcome

PART = 5 * 65_564 * 16  # 5.0 MiB, segment-aligned (the smallest part UCS accepts)
SIZE = 3 * PART + 12_345  # four parts


@pytest.fixture
def ghga() -> MemoryGhga:
    return MemoryGhga()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "sample.bam"
    path.write_bytes(random.Random(11).randbytes(SIZE))
    return path


class CountingReporter(FakeReporter):
    """Also adds up the progress reported per file."""

    def __init__(self) -> None:
        super().__init__()
        self.progress: dict[str, int] = {}

    def advance(self, name: str, nbytes: int) -> None:
        self.progress[name] = self.progress.get(name, 0) + nbytes


async def _upload(
    ghga: MemoryGhga,
    keys: KeyPair,
    path: Path,
    state: Path,
    *,
    unfinished: str | None = None,
    restart: bool = False,
    concurrency: int = 2,
    journals: bool = True,
    part_buffer: int | None = None,
    buffers: BufferPool | None = None,
    planned_size: int | None = None,
) -> tuple[FileOutcome, CountingReporter]:
    reporter = CountingReporter()
    with ThreadPoolExecutor(max_workers=2) as executor:
        uploader = Uploader(
            accessor=FakeAccessor(UPLOAD_PACKAGE),
            ucs=ghga,
            storage=ghga,
            values=ghga.values,
            keys=keys,
            reporter=reporter,
            executor=executor,
            part_size=PART,
            concurrency=concurrency,
            journals=JournalStore(state) if journals else None,
            buffers=buffers,
            part_buffer=part_buffer,
            sleep=lambda _s: asyncio.sleep(0),
        )
        job = UploadJob(
            path=path,
            alias=path.name,
            size=path.stat().st_size if planned_size is None else planned_size,
            unfinished_file_id=unfinished,
            restart=restart,
        )
        outcome = await uploader.upload(job)
    return outcome, reporter


def _journals(state: Path) -> list[Path]:
    return sorted((state / "uploads").glob("*.jsonl"))


async def test_upload_stores_exactly_the_file(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    outcome, reporter = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.DONE
    assert ghga.plaintext() == source.read_bytes()
    (sent,) = ghga.completed
    assert sent.decrypted_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    md5s = [hashlib.md5(ghga.parts[n]).hexdigest() for n in sorted(ghga.parts)]
    assert sent.encrypted_parts_md5 == md5s
    assert sent.encrypted_md5 == multipart_etag(md5s)
    assert sent.encrypted_parts_sha256 == [
        hashlib.sha256(ghga.parts[n]).hexdigest() for n in sorted(ghga.parts)
    ]
    assert outcome.details["parts_resumed"] == 0
    assert outcome.transferred == SIZE
    assert reporter.progress == {"sample.bam": SIZE}
    assert ghga.url_requests == 4  # one URL per part, fetched while the part is built
    assert not _journals(tmp_path / "state")


def test_multipart_etag_is_the_s3_one() -> None:
    """MD5 of the concatenated binary part MD5s, then -N (a known answer)."""
    md5s = [hashlib.md5(b"a").hexdigest(), hashlib.md5(b"b").hexdigest()]
    expected = hashlib.md5(hashlib.md5(b"a").digest() + hashlib.md5(b"b").digest()).hexdigest()
    assert multipart_etag(md5s) == f"{expected}-2"
    assert multipart_etag([md5s[0]]) == hashlib.md5(hashlib.md5(b"a").digest()).hexdigest() + "-1"


async def test_upload_without_journals(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", journals=False)
    assert outcome.outcome is Outcome.DONE
    assert ghga.plaintext() == source.read_bytes()
    assert not (tmp_path / "state").exists()


@pytest.mark.parametrize("exception_id", ["checksumMismatch", "uploadSizeMismatch"])
async def test_a_completion_the_server_rejects_drops_the_journal(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path, exception_id: str
) -> None:
    ghga.reject_complete = exception_id
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == "Upload integrity checksum mismatch."
    assert not _journals(tmp_path / "state")  # the server marked it failed: no resume


async def test_other_rejections_keep_the_upload_resumable(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    ghga.reject_complete = "boxStateError"
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == (
        "Upload integrity checksum mismatch. "
        "Run the same command again to continue where it stopped."
    )
    assert _journals(tmp_path / "state")


async def test_a_part_with_a_wrong_etag_is_sent_again(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    ghga.wrong_etags = 1
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.DONE
    assert len(ghga.puts) == 5  # four parts, one of them twice
    assert ghga.plaintext() == source.read_bytes()


@pytest.mark.parametrize("missing", [1, 1000], ids=["once", "always"])
async def test_a_part_answered_without_an_etag_is_sent_again(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path, missing: int
) -> None:
    """No ETag proves nothing: refused and sent again; never accepted silently."""
    real_put = ghga.put_part
    left = [missing]

    async def put_without_etag(url: str, data: object) -> str | None:
        etag = await real_put(url, data)  # type: ignore[arg-type]
        if left[0]:
            left[0] -= 1
            return None
        return etag

    ghga.put_part = put_without_etag  # type: ignore[method-assign]
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    if missing == 1:
        assert outcome.outcome is Outcome.DONE
        assert len(ghga.puts) == 5  # four parts, one of them twice
        assert ghga.plaintext() == source.read_bytes()
    else:
        assert outcome.outcome is Outcome.FAILED
        assert "could not be stored intact" in outcome.message
        assert not ghga.completed


async def test_a_part_s3_never_stores_intact_fails_the_file(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    ghga.wrong_etags = 1000
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.FAILED
    assert "could not be stored intact" in outcome.message
    assert not ghga.completed


async def test_a_file_that_grew_before_its_turn_is_not_uploaded_truncated(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """Planned at SIZE bytes, longer when its turn comes: failed, nothing created."""
    with source.open("ab") as handle:
        handle.write(b"reads that arrived after the plan was made")
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", planned_size=SIZE)
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == (
        f"{source} changed while it was being uploaded; upload it again when it is complete."
    )
    assert not ghga.puts
    assert not ghga.completed
    assert not _journals(tmp_path / "state")


def _append(path: Path) -> Callable[[int], None]:
    def change(part_no: int) -> None:
        if part_no == 1:
            with path.open("ab") as handle:
                handle.write(b"more reads from the sequencer")

    return change


def _rewrite_keeping_mtime(path: Path) -> Callable[[int], None]:
    """Rewrite the file in place with the same size and modification time (``cp -p``)."""

    def change(part_no: int) -> None:
        if part_no == 1:
            stat = path.stat()
            data = bytearray(path.read_bytes())
            data[-100] ^= 0xFF
            path.write_bytes(bytes(data))
            keep_mtime(path, stat)

    return change


def keep_mtime(path: Path, before: os.stat_result) -> None:
    """Put the old modification time back, as ``touch -r`` does, and make sure the
    status-change time moved (the kernel's clock may tick only every few ms)."""
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    while path.stat().st_ctime_ns == before.st_ctime_ns:
        time.sleep(0.001)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


@pytest.mark.parametrize("delete_fails", [False, True])
@pytest.mark.parametrize("change", [_append, _rewrite_keeping_mtime])
async def test_a_file_that_changes_during_the_upload_is_never_completed(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    change: Callable[[Path], Callable[[int], None]],
    delete_fails: bool,
) -> None:
    ghga.on_put = change(source)
    ghga.fail_delete = delete_fails
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == (
        f"{source} changed while it was being uploaded; upload it again when it is complete."
    )
    assert outcome.throughput == 0
    assert not ghga.completed
    assert ghga.deleted == [ghga.file_id]  # cancelled on the server
    assert not _journals(tmp_path / "state")


async def _interrupted(
    ghga: MemoryGhga, keys: KeyPair, path: Path, state: Path, at_part: int = 3
) -> None:
    """An upload that stops when part ``at_part`` cannot be sent; journal kept.

    One part in flight, so exactly the parts before ``at_part`` are stored.
    """
    ghga.fail_put_of_part = at_part
    outcome, _ = await _upload(ghga, keys, path, state, concurrency=1)
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message.startswith(
        "connection reset Run the same command again to continue where it stopped"
    )
    assert _journals(state)


async def test_resume_sends_only_the_missing_parts(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    stored = len(_journals(state)[0].read_text().splitlines()) - 1
    assert stored == 2
    ghga.puts.clear()
    outcome, reporter = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.DONE
    assert len(ghga.puts) == 4 - stored
    assert 3 in ghga.puts
    assert outcome.details["parts_resumed"] == stored
    assert (outcome.transferred or 0) < SIZE
    assert ("info", f"sample.bam: resuming: {stored} of 4 parts already stored.") in (
        reporter.messages
    )
    assert reporter.progress == {"sample.bam": SIZE}
    assert ghga.plaintext() == source.read_bytes()
    sent = ghga.completed[-1]
    assert sent.decrypted_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    stored = [ghga.parts[n] for n in sorted(ghga.parts)]
    assert sent.encrypted_parts_md5 == [hashlib.md5(p).hexdigest() for p in stored]
    assert sent.encrypted_parts_sha256 == [hashlib.sha256(p).hexdigest() for p in stored]
    assert sent.encrypted_md5 == multipart_etag(sent.encrypted_parts_md5)


async def test_a_resume_that_only_finalises_says_so_and_shows_no_speed(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ghga.fail_complete = 1
    first, _ = await _upload(ghga, user_keys, source, state)
    assert first.outcome is Outcome.FAILED
    ghga.puts.clear()
    outcome, reporter = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.DONE
    assert ghga.puts == []
    assert outcome.details["parts_resumed"] == 4
    assert outcome.transferred == 0
    assert outcome.throughput == 0
    assert ("info", "sample.bam: resuming: 4 of 4 parts already stored.") in reporter.messages


def _flip_first_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[0] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_resume_refuses_a_file_changed_with_its_mtime_kept(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    before = source.stat()
    _flip_first_byte(source)
    keep_mtime(source, before)  # touch -r / cp -p
    journal = _journals(state)[0].read_bytes()
    ghga.puts.clear()
    outcome, _ = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == (
        f"{source} has changed since the interrupted upload; run again with --restart."
    )
    assert ghga.puts == []
    assert _journals(state)[0].read_bytes() == journal  # kept, unchanged


async def test_resume_checks_stored_parts_against_the_file_before_sending(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """A file system that keeps size, times and inode (or a forged journal): the part
    fingerprints catch the change, and nothing is sent."""
    import json

    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    _flip_first_byte(source)
    path = _journals(state)[0]
    lines = path.read_text().splitlines()
    head = json.loads(lines[0])
    identity = FileIdentity.of(source)
    head.update(
        size=identity.size,
        mtime_ns=identity.mtime_ns,
        ctime_ns=identity.ctime_ns,
        inode=identity.inode,
    )
    path.write_text("\n".join([json.dumps(head), *lines[1:]]) + "\n")
    ghga.puts.clear()
    outcome, _ = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.FAILED
    assert outcome.message == (
        f"{source} has changed since the interrupted upload; run again with --restart."
    )
    assert ghga.puts == []
    assert _journals(state)


async def test_restart_uploads_a_changed_file_from_the_start(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    _flip_first_byte(source)
    ghga.puts.clear()
    ghga.parts.clear()
    outcome, _ = await _upload(
        ghga, user_keys, source, state, unfinished=ghga.file_id, restart=True
    )
    assert outcome.outcome is Outcome.DONE
    assert sorted(ghga.puts) == [1, 2, 3, 4]
    assert ghga.plaintext() == source.read_bytes()


async def test_resume_with_a_gap_checks_and_hashes_every_stored_part(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """Parts 1, 2 and 4 stored, 3 missing: the stored part after the gap is checked first
    and hashed in order later; only part 3 is sent."""
    state = tmp_path / "state"
    part_4_stored = asyncio.Event()
    real_put = ghga.put_part

    async def put_part(url: str, data: memoryview | bytes) -> str | None:
        if url.endswith("/3"):
            await part_4_stored.wait()
            raise ServiceUnreachableError("connection reset")
        etag = await real_put(url, data)
        if url.endswith("/4"):
            part_4_stored.set()
        return etag

    ghga.put_part = put_part  # type: ignore[method-assign]
    first, _ = await _upload(ghga, user_keys, source, state)
    assert first.outcome is Outcome.FAILED
    ghga.put_part = real_put  # type: ignore[method-assign]
    ghga.puts.clear()
    outcome, _ = await asyncio.wait_for(
        _upload(ghga, user_keys, source, state, unfinished=ghga.file_id), timeout=60
    )
    assert outcome.outcome is Outcome.DONE
    assert ghga.puts == [3]
    assert outcome.details["parts_resumed"] == 3
    assert ghga.plaintext() == source.read_bytes()
    assert ghga.completed[-1].decrypted_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()


async def test_a_resume_reads_each_stored_part_once(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Stored parts 1..k are checked and hashed in one read (a resumed 1 TB file must not
    be read twice)."""
    import ghga_connector.core.upload as upload_module

    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)  # parts 1 and 2 stored
    reads: list[int] = []
    real = upload_module.hash_part_plaintext

    def counting(path: str, size: int, part: object, *args: object) -> str:
        reads.append(part.part_no)  # type: ignore[attr-defined]
        return real(path, size, part, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(upload_module, "hash_part_plaintext", counting)
    outcome, _ = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.DONE
    assert sorted(reads) == [1, 2]


async def test_resume_refuses_a_journal_that_is_not_the_users_own(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """A journal another user placed could carry an envelope encrypted to their key."""
    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    (journal,) = _journals(state)
    journal.chmod(0o644)
    ghga.puts.clear()
    outcome, _ = await _upload(ghga, user_keys, source, state, unfinished=ghga.file_id)
    assert outcome.outcome is Outcome.FAILED
    assert "Refusing to continue" in outcome.message and str(journal) in outcome.message
    assert not ghga.puts
    assert journal.exists()  # left as it is
