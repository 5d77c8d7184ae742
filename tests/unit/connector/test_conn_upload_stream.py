"""core/upload.py: parts larger than a part buffer are streamed, memory stays bounded.

A file's part size grows past the configured one when it would need more than 10,000
parts (above ~168 GB with 16 MiB parts). Such parts are sent window by window from a
buffer of ``part_buffer`` bytes; here a tiny ``part_buffer`` (four cipher segments,
so windows of two) makes the 5 MiB parts of a 15 MiB file "large". Each test checks
one property: the stored object is exactly the file, the checksums are those of the
stored bytes, retries send byte-identical bodies, a wrong ETag still fails, a file
that changes between two reads is never sent or hashed in its changed form, resume
works, and no buffer larger than the part buffer is ever taken.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_upload import (
    PART,
    SIZE,
    _interrupted,
    _journals,
    _upload,
)

import ghga_connector.core.upload as upload_module
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.layout import CIPHER_SEGMENT_SIZE
from ghga_connector.c4gh.segments import ThreadBuffers
from ghga_connector.core.journal import FileIdentity
from ghga_connector.core.ports import PartBody
from ghga_connector.core.scheduler import BufferPool
from ghga_connector.core.upload import multipart_etag
from ghga_connector.errors import ServiceUnreachableError
from ghga_connector.models import Outcome

#: Four cipher segments: windows of two segments, parts of 5 MiB are streamed.
SMALL = 4 * CIPHER_SEGMENT_SIZE


@pytest.fixture
def ghga() -> MemoryGhga:
    return MemoryGhga()


@pytest.fixture
def source(tmp_path: Path) -> Path:
    import random

    path = tmp_path / "sample.bam"
    path.write_bytes(random.Random(11).randbytes(SIZE))
    return path


def _assert_stored_exactly(ghga: MemoryGhga, source: Path) -> None:
    assert ghga.plaintext() == source.read_bytes()
    sent = ghga.completed[-1]
    stored = [ghga.parts[n] for n in sorted(ghga.parts)]
    assert sent.decrypted_sha256 == hashlib.sha256(source.read_bytes()).hexdigest()
    assert sent.encrypted_parts_md5 == [hashlib.md5(p).hexdigest() for p in stored]
    assert sent.encrypted_parts_sha256 == [hashlib.sha256(p).hexdigest() for p in stored]
    assert sent.encrypted_md5 == multipart_etag(sent.encrypted_parts_md5)


@pytest.mark.parametrize("concurrency", [1, 2, 4])
async def test_a_streamed_upload_stores_exactly_the_file(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path, concurrency: int
) -> None:
    """With one part in flight every part feeds the file's SHA-256 while it is sent;
    with more, the parts whose turn had not come read their plaintext again."""
    outcome, reporter = await _upload(
        ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL, concurrency=concurrency
    )
    assert outcome.outcome is Outcome.DONE
    assert outcome.details["part_size"] == PART
    _assert_stored_exactly(ghga, source)
    assert reporter.progress == {"sample.bam": SIZE}
    assert sorted(ghga.puts) == [1, 2, 3, 4]


class _Recording(BufferPool):
    """A buffer pool that records every size asked for."""

    def __init__(self, count: int) -> None:
        super().__init__(count)
        self.sizes: list[int] = []

    def get(self, size: int):  # type: ignore[no-untyped-def]
        self.sizes.append(size)
        return super().get(size)


@pytest.mark.parametrize("part_buffer", [SMALL, None])
async def test_no_buffer_is_larger_than_the_part_buffer(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    part_buffer: int | None,
) -> None:
    """The memory bound, counted: every part buffer and every plaintext buffer of the
    crypto threads is at most ``part_buffer`` bytes, though each part is larger. The
    default (the part size) holds whole parts: the instrument sees them."""
    thread_sizes: list[int] = []
    real_get = ThreadBuffers.get

    def get(self: ThreadBuffers, size: int) -> bytearray:
        thread_sizes.append(size)
        return real_get(self, size)

    monkeypatch.setattr(ThreadBuffers, "get", get)
    pool = _Recording(2)
    outcome, _ = await _upload(
        ghga, user_keys, source, tmp_path / "state", part_buffer=part_buffer, buffers=pool
    )
    assert outcome.outcome is Outcome.DONE
    _assert_stored_exactly(ghga, source)
    if part_buffer is None:
        assert max(pool.sizes) == PART  # whole parts, as before
        return
    assert 20 * part_buffer <= PART
    assert pool.sizes and max(pool.sizes) <= part_buffer
    assert thread_sizes and max(thread_sizes) <= part_buffer


async def test_a_retried_streamed_part_is_byte_identical(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """A wrong ETag: the part is produced again from the file, and it is the same."""
    ghga.wrong_etags = 1
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL)
    assert outcome.outcome is Outcome.DONE
    (twice,) = [bodies for bodies in ghga.bodies.values() if len(bodies) == 2]
    assert twice[0] == twice[1]
    _assert_stored_exactly(ghga, source)


async def test_a_body_resent_by_the_http_layer_is_byte_identical(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """The transport's retry iterates the body again, after an attempt that broke off
    mid-way (its window being encrypted ahead is waited for before the buffer is
    reused); the checksums are those of the complete iteration."""
    real_put = ghga.put_part
    first_tries: dict[str, bytes] = {}

    async def put_part(url: str, data: memoryview | bytes | PartBody) -> str | None:
        if not isinstance(data, memoryview | bytes) and url not in first_tries:
            chunks = aiter(data)
            # the first window only, while the second is being encrypted ahead
            first_tries[url] = bytes(await anext(chunks))
            await chunks.aclose()  # type: ignore[attr-defined]
        return await real_put(url, data)

    ghga.put_part = put_part  # type: ignore[method-assign]
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL)
    assert outcome.outcome is Outcome.DONE
    assert len(first_tries) == 4
    for url, start in first_tries.items():
        part_no = int(url.rsplit("/", 1)[1])
        assert ghga.parts[part_no].startswith(start)
    _assert_stored_exactly(ghga, source)


async def test_a_streamed_part_s3_never_stores_intact_fails_the_file(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    ghga.wrong_etags = 1000
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL)
    assert outcome.outcome is Outcome.FAILED
    assert "could not be stored intact" in outcome.message
    assert not ghga.completed


def _freeze_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the after-read identity check see the file as unchanged (a file system
    that keeps times and size), so that only the checks under test can catch a change."""
    first: dict[Path, FileIdentity] = {}
    real = FileIdentity.of

    def of(path: Path) -> FileIdentity:
        return first.setdefault(path, real(path))

    monkeypatch.setattr(upload_module.FileIdentity, "of", staticmethod(of))


def _flip_byte_in_part(path: Path, part_no: int) -> None:
    data = bytearray(path.read_bytes())
    data[(part_no - 1) * PART + PART // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_file_changed_before_a_retry_is_never_sent_changed(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Part 2 is answered with a wrong ETag and the file changes before the retry: the
    retry's segment digests differ from the first read's, the changed bytes are never
    sent, and the upload is cancelled."""
    _freeze_identity(monkeypatch)
    real_put = ghga.put_part

    async def put_part(url: str, data: memoryview | bytes | PartBody) -> str | None:
        etag = await real_put(url, data)
        if url.endswith("/2") and len(ghga.bodies[2]) == 1:
            _flip_byte_in_part(source, 2)
            return "0" * 32
        return etag

    ghga.put_part = put_part  # type: ignore[method-assign]
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL)
    assert outcome.outcome is Outcome.FAILED
    assert "changed while it was being uploaded" in outcome.message
    assert len({bytes(body) for body in ghga.bodies[2]}) == 1
    assert not ghga.completed
    assert ghga.deleted == [ghga.file_id]


async def test_a_part_read_again_for_the_file_checksum_must_match_what_was_sent(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Part 2 streams while part 1 is still in flight, so it reads its plaintext again
    for the file's SHA-256 after its PUT; the file changed meanwhile: the checksum is
    never completed over bytes that differ from those stored."""
    _freeze_identity(monkeypatch)

    def change(part_no: int) -> None:
        if part_no == 2:
            _flip_byte_in_part(source, 2)

    ghga.on_put = change
    outcome, _ = await _upload(
        ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL, concurrency=2
    )
    assert outcome.outcome is Outcome.FAILED
    assert "changed while it was being uploaded" in outcome.message
    assert not ghga.completed


async def test_a_streamed_upload_resumes_with_only_the_missing_parts(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    ghga.fail_put_of_part = 3
    first, _ = await _upload(ghga, user_keys, source, state, concurrency=1, part_buffer=SMALL)
    assert first.outcome is Outcome.FAILED
    assert _journals(state)
    ghga.puts.clear()
    outcome, _ = await _upload(
        ghga, user_keys, source, state, unfinished=ghga.file_id, part_buffer=SMALL
    )
    assert outcome.outcome is Outcome.DONE
    assert sorted(ghga.puts) == [3, 4]
    assert outcome.details["parts_resumed"] == 2
    _assert_stored_exactly(ghga, source)


async def test_a_whole_part_journal_resumes_streamed(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """Parts stored whole and parts streamed have the same checksums and fingerprints,
    so an upload interrupted with one part buffer continues with another."""
    state = tmp_path / "state"
    await _interrupted(ghga, user_keys, source, state)
    ghga.puts.clear()
    outcome, _ = await _upload(
        ghga, user_keys, source, state, unfinished=ghga.file_id, part_buffer=SMALL
    )
    assert outcome.outcome is Outcome.DONE
    assert sorted(ghga.puts) == [3, 4]
    _assert_stored_exactly(ghga, source)


async def test_a_streamed_resume_with_a_gap(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path
) -> None:
    """Parts 1, 2 and 4 stored, 3 missing: part 4 is read again in its turn, after the
    streamed part 3 (waiting on the event loop, not in a crypto thread)."""
    import asyncio

    state = tmp_path / "state"
    part_4_stored = asyncio.Event()
    real_put = ghga.put_part

    async def put_part(url: str, data: memoryview | bytes | PartBody) -> str | None:
        if url.endswith("/3"):
            await part_4_stored.wait()
            raise ServiceUnreachableError("connection reset")
        etag = await real_put(url, data)
        if url.endswith("/4"):
            part_4_stored.set()
        return etag

    ghga.put_part = put_part  # type: ignore[method-assign]
    first, _ = await _upload(ghga, user_keys, source, state, part_buffer=SMALL)
    assert first.outcome is Outcome.FAILED
    ghga.put_part = real_put  # type: ignore[method-assign]
    ghga.puts.clear()
    outcome, _ = await asyncio.wait_for(
        _upload(ghga, user_keys, source, state, unfinished=ghga.file_id, part_buffer=SMALL),
        timeout=60,
    )
    assert outcome.outcome is Outcome.DONE
    assert ghga.puts == [3]
    _assert_stored_exactly(ghga, source)


async def test_an_abandoned_iteration_ends_before_the_part_is_produced_again(
    ghga: MemoryGhga,
    user_keys: KeyPair,
    source: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An attempt that broke off leaves its next window being encrypted in a thread;
    the next attempt waits for it, so no two threads write into the part's buffer (or
    its checksums) at once. The held window is released later by the event loop; the
    order of the thread's work is what is checked, not time."""
    import asyncio
    import threading

    gate, held = threading.Event(), threading.Event()
    events: list[tuple[str, int]] = []
    real_build = upload_module._StreamedPart._build

    def build(self: upload_module._StreamedPart, index: int, out: memoryview) -> memoryview:
        hold = self.size == PART and index == 1 and ("start", 1) not in events
        if self._windows[0].part_no == 1:
            events.append(("start", index))
        if hold:
            held.set()
            gate.wait(timeout=30)
        try:
            return real_build(self, index, out)
        finally:
            if self._windows[0].part_no == 1:
                events.append(("end", index))

    monkeypatch.setattr(upload_module._StreamedPart, "_build", build)
    real_put = ghga.put_part
    broken: set[str] = set()

    async def put_part(url: str, data: memoryview | bytes | PartBody) -> str | None:
        if url.endswith("/1") and url not in broken:
            broken.add(url)
            chunks = aiter(data)
            await anext(chunks)  # window 0 sent; window 1 held in its thread
            # (once its thread runs: a window not started yet is simply cancelled)
            await asyncio.get_running_loop().run_in_executor(None, held.wait, 30)
            await chunks.aclose()  # type: ignore[attr-defined]
            asyncio.get_running_loop().call_later(0.2, gate.set)
        return await real_put(url, data)

    ghga.put_part = put_part  # type: ignore[method-assign]
    try:
        outcome, _ = await _upload(
            ghga, user_keys, source, tmp_path / "state", part_buffer=SMALL, concurrency=1
        )
    finally:
        gate.set()
    assert outcome.outcome is Outcome.DONE
    assert events[:5] == [("start", 0), ("end", 0), ("start", 1), ("end", 1), ("start", 0)]
    _assert_stored_exactly(ghga, source)


@pytest.mark.parametrize("part_buffer", [None, SMALL])
async def test_a_resume_with_only_a_middle_part_stored_never_starves_the_threads(
    ghga: MemoryGhga, user_keys: KeyPair, source: Path, tmp_path: Path, part_buffer: int | None
) -> None:
    """Part 2 stored, 1, 3 and 4 missing, four parts in flight on two crypto threads.
    Whole parts block a thread until their turn, so part 2's check must be submitted
    before parts 3 and 4 are built (as its number says); streamed parts block none."""
    import asyncio

    state = tmp_path / "state"
    part_2_stored = asyncio.Event()
    real_put = ghga.put_part

    async def put_part(url: str, data: memoryview | bytes | PartBody) -> str | None:
        if not url.endswith("/2"):
            await part_2_stored.wait()
            raise ServiceUnreachableError("connection reset")
        etag = await real_put(url, data)
        part_2_stored.set()
        return etag

    ghga.put_part = put_part  # type: ignore[method-assign]
    first, _ = await _upload(ghga, user_keys, source, state, concurrency=4)
    assert first.outcome is Outcome.FAILED
    ghga.put_part = real_put  # type: ignore[method-assign]
    ghga.puts.clear()
    outcome, _ = await asyncio.wait_for(
        _upload(
            ghga,
            user_keys,
            source,
            state,
            unfinished=ghga.file_id,
            concurrency=4,
            part_buffer=part_buffer,
        ),
        timeout=30,
    )
    assert outcome.outcome is Outcome.DONE
    assert sorted(ghga.puts) == [1, 3, 4]
    _assert_stored_exactly(ghga, source)
