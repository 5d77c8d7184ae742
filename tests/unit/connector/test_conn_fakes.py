"""The transfer engine against the in-memory GHGA of ``tests/fakes.py``.

Uploader, FileStager and Downloader run with real keys and real Crypt4GH bytes; each
failure switch of :class:`MemoryGhga` is one case the engine must handle. Also the
building blocks the engine is made of: the download range journal, ``BufferPool``,
``run_bounded``, the reporters and ``open_session``.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from rich.console import Console
from tests.fakes import URL_SECRET, MemoryGhga
from tests.unit.connector.test_conn_handler import (
    DOWNLOAD_PACKAGE,
    FakeAccessor,
    FakeReporter,
)
from tests.unit.connector.test_conn_tokens import make_wpat
from tests.unit.connector.test_conn_upload import SIZE, _upload

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.config import Config
from ghga_connector.core.download import Downloader, FileStager, _RangeJournal
from ghga_connector.core.ports import DownloadJob
from ghga_connector.core.scheduler import BufferPool, run_bounded
from ghga_connector.errors import (
    FileNotDownloadableError,
    ServiceUnreachableError,
    StagingTimeoutError,
    TokenError,
)
from ghga_connector.inject import Session, open_session
from ghga_connector.models import FileOutcome, Outcome, WellKnownValues
from ghga_connector.reporting.console import JsonReporter, PlainReporter, QuietReporter

ACCESSION = "GHGAF001"
CSEG = 65_564
PLAIN = random.Random(5).randbytes(7 * 65_536 + 999)


class FakeTime:
    """A clock that moves only when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _stager(ghga: MemoryGhga, time: FakeTime, max_wait: float = 60.0) -> FileStager:
    return FileStager(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        dcs=ghga,
        reporter=FakeReporter(),
        max_wait_time=max_wait,
        clock=time.clock,
        sleep=time.sleep,
    )


async def _download(
    ghga: MemoryGhga, keys: KeyPair, target: Path, *, decrypt: bool = True
) -> tuple[FileOutcome, FakeReporter]:
    reporter = FakeReporter()
    time = FakeTime()
    stager = _stager(ghga, time)

    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    with ThreadPoolExecutor(max_workers=2) as executor:
        downloader = Downloader(
            accessor=FakeAccessor(DOWNLOAD_PACKAGE),
            dcs=ghga,
            storage=ghga,
            stager=stager,
            keys=keys,
            reporter=reporter,
            executor=executor,
            part_size=2 * CSEG,
            concurrency=2,
            sleep=no_wait,
        )
        job = DownloadJob(ACCESSION, ".bam", target, decrypt)
        outcome = await downloader.download(job, await stager.staged_object(ACCESSION))
    return outcome, reporter


# --- Uploader --------------------------------------------------------------------------


async def test_upload_asks_for_a_new_url_when_one_expired(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    ghga = MemoryGhga()
    source = tmp_path / "a.bam"
    source.write_bytes(random.Random(1).randbytes(SIZE))
    ghga.expire_put_urls = 2
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.DONE
    assert ghga.url_requests == 4 + 2  # four parts, two URLs renewed
    assert ghga.plaintext() == source.read_bytes()


async def test_upload_fails_the_file_when_completion_stays_unreachable(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    ghga = MemoryGhga()
    source = tmp_path / "a.bam"
    source.write_bytes(b"x" * 1000)
    ghga.fail_complete = 1000
    outcome, _ = await _upload(ghga, user_keys, source, tmp_path / "state")
    assert outcome.outcome is Outcome.FAILED
    assert "connection reset" in outcome.message
    assert not ghga.completed


# --- FileStager --------------------------------------------------------------------------


async def test_stager_waits_while_staging_then_returns_the_object(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.staging_rounds[ACCESSION] = 2
    ghga.retry_after = 5.0
    drs = await _stager(ghga, time).staged_object(ACCESSION)
    assert drs.size == len(ghga.outbox[ACCESSION].body)
    assert ghga.drs_requests == [ACCESSION] * 3
    assert time.now == 10.0  # two waits of Retry-After, counted down in 1 s steps
    assert time.slept == [1.0] * 10


async def test_stager_gives_up_at_the_deadline(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.staging_rounds[ACCESSION] = 1000
    with pytest.raises(StagingTimeoutError, match="within 20 seconds"):
        await _stager(ghga, time, max_wait=20.0).staged_object(ACCESSION)
    assert time.now == 20.0


async def test_stager_probe_and_refusal(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.staging_rounds[ACCESSION] = 1
    stager = _stager(ghga, time)
    assert await stager.probe(ACCESSION) is None
    assert (await stager.probe(ACCESSION)) is not None
    with pytest.raises(FileNotDownloadableError):
        await stager.staged_object("GHGAF404")


# --- Downloader --------------------------------------------------------------------------


@pytest.mark.parametrize("decrypt", [True, False])
async def test_download_writes_the_archived_file(
    user_keys: KeyPair, tmp_path: Path, decrypt: bool
) -> None:
    ghga = MemoryGhga()
    archived = ghga.add_file(ACCESSION, user_keys, PLAIN)
    target = tmp_path / ("x.bam" if decrypt else "x.bam.c4gh")
    outcome, _ = await _download(ghga, user_keys, target, decrypt=decrypt)
    assert outcome.outcome is Outcome.DONE
    expected = PLAIN if decrypt else archived.envelope + archived.body
    assert target.read_bytes() == expected
    assert not list(tmp_path.glob("*.part*"))


@pytest.mark.parametrize("switch", ["expire_ranges", "break_ranges", "corrupt_ranges"])
async def test_download_recovers_from_one_failed_range(
    user_keys: KeyPair, tmp_path: Path, switch: str
) -> None:
    ghga = MemoryGhga()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    setattr(ghga, switch, 1)
    outcome, _ = await _download(ghga, user_keys, tmp_path / "x.bam")
    assert outcome.outcome is Outcome.DONE
    assert (tmp_path / "x.bam").read_bytes() == PLAIN
    ranges = -(-len(ghga.outbox[ACCESSION].body) // (2 * CSEG))
    assert ghga.range_requests == ranges + 1


async def test_download_that_keeps_failing_mac_is_an_integrity_failure(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    ghga = MemoryGhga()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.corrupt_ranges = 1000
    outcome, _ = await _download(ghga, user_keys, tmp_path / "x.bam")
    assert outcome.outcome is Outcome.FAILED
    assert "failed Crypt4GH authentication" in outcome.message
    assert not (tmp_path / "x.bam").exists()
    assert URL_SECRET not in outcome.message


async def test_download_without_archive_checksum_is_unverified(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    ghga = MemoryGhga()
    ghga.add_file(ACCESSION, user_keys, PLAIN, checksum=False)
    outcome, reporter = await _download(ghga, user_keys, tmp_path / "x.bam")
    assert outcome.outcome is Outcome.UNVERIFIED
    assert any("no SHA-256" in text for level, text in reporter.messages if level == "warning")


async def test_download_envelope_for_another_key_fails_before_any_range(
    user_keys: KeyPair, other_keys: KeyPair, tmp_path: Path
) -> None:
    ghga = MemoryGhga()
    ghga.add_file(ACCESSION, other_keys, PLAIN)
    outcome, _ = await _download(ghga, user_keys, tmp_path / "x.bam")
    assert outcome.outcome is Outcome.FAILED
    assert "cannot be opened with your private key" in outcome.message
    assert ghga.range_requests == 0


# --- the download range journal ------------------------------------------------------------


HEADER: dict[str, object] = {"accession": ACCESSION, "size": 1000, "range": 100}


def test_range_journal_resumes_only_its_own_download(tmp_path: Path) -> None:
    journal = _RangeJournal(tmp_path / "x.bam.part")
    assert journal.path == tmp_path / "x.bam.part.json"
    assert journal.resume(HEADER) is None  # nothing yet
    journal.start(HEADER)
    journal.add(1)
    journal.add(3)
    assert journal.resume(HEADER) == {1, 3}
    assert journal.resume({**HEADER, "size": 1001}) is None  # another file
    journal.remove()
    assert not journal.path.exists()
    journal.remove()  # idempotent


def test_range_journal_ignores_a_torn_last_line(tmp_path: Path) -> None:
    journal = _RangeJournal(tmp_path / "x.bam.part")
    journal.start(HEADER)
    journal.add(2)
    with journal.path.open("a", encoding="utf-8") as handle:
        handle.write("4x")  # a write cut short
    assert journal.resume(HEADER) == {2}


def test_range_journal_with_a_broken_header_starts_over(tmp_path: Path) -> None:
    journal = _RangeJournal(tmp_path / "x.bam.part")
    journal.path.write_text("{not json\n1\n", encoding="utf-8")
    journal.path.chmod(0o600)  # as the connector creates it
    assert journal.resume(HEADER) is None
    journal.start(HEADER)
    assert journal.resume(HEADER) == set()
    assert json.loads(journal.path.read_text(encoding="utf-8").splitlines()[0]) == HEADER


# --- BufferPool, run_bounded --------------------------------------------------


async def test_buffer_pool_bounds_and_reuses_buffers() -> None:
    pool = BufferPool(2)
    held = 0
    most = 0
    seen: set[int] = set()

    async def use(size: int) -> None:
        nonlocal held, most
        async with pool.get(size) as buffer:
            assert len(buffer) >= size
            seen.add(id(buffer))
            held += 1
            most = max(most, held)
            await asyncio.sleep(0)
            held -= 1

    await asyncio.gather(*(use(size) for size in (10, 20, 5, 30, 1, 7)))
    assert most == 2
    assert len(seen) <= 4  # reused: never one buffer per use
    async with pool.get(100) as grown:
        assert len(grown) == 100


async def test_run_bounded_keeps_order_and_limit() -> None:
    active = 0
    most = 0

    async def work(n: int) -> int:
        nonlocal active, most
        active += 1
        most = max(most, active)
        for _ in range(5 - n % 5):
            await asyncio.sleep(0)
        active -= 1
        return n * n

    assert await run_bounded(range(12), 3, work) == [n * n for n in range(12)]
    assert most == 3
    assert await run_bounded([], 3, work) == []


async def test_run_bounded_raises_the_first_error_unwrapped_and_stops() -> None:
    started: list[int] = []

    async def work(n: int) -> int:
        started.append(n)
        await asyncio.sleep(0)
        if n == 1:
            raise ServiceUnreachableError("down")
        await asyncio.Event().wait()  # the others never finish on their own
        return n

    with pytest.raises(ServiceUnreachableError, match="down"):
        await run_bounded(range(100), 2, work)
    assert len(started) <= 3  # the rest were never started


# --- reporters ----------------------------------------------------------------------------


def _outcome(outcome: Outcome = Outcome.DONE) -> FileOutcome:
    return FileOutcome(name="a.bam", outcome=outcome, size=10, seconds=1.0)


def test_json_reporter_writes_one_line_per_finished_file() -> None:
    out, err = io.StringIO(), io.StringIO()
    reporter = JsonReporter(Console(file=err, width=200), stdout=out)
    reporter.file_started("a.bam", 10)
    reporter.advance("a.bam", 10)
    reporter.file_finished(_outcome())
    reporter.file_finished(_outcome(Outcome.FAILED))
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["outcome"] for r in records] == ["done", "failed"]
    assert all(r["file"] == "a.bam" for r in records)


def test_quiet_reporter_prints_only_errors() -> None:
    err = io.StringIO()
    reporter = QuietReporter(Console(file=err, width=200))
    reporter.file_started("a.bam", 10)
    reporter.file_status("a.bam", "staging")
    reporter.message("hello")
    reporter.file_finished(_outcome())
    assert err.getvalue() == ""
    reporter.message("it broke", level="error")
    assert "it broke" in err.getvalue()


def test_plain_reporter_logs_each_event() -> None:
    err = io.StringIO()
    reporter = PlainReporter(Console(file=err, width=200))
    reporter.file_started("a.bam", 10)
    reporter.file_finished(_outcome())
    text = err.getvalue()
    assert text.count("a.bam") >= 2


# --- open_session ---------------------------------------------------------------------------


def _values() -> dict[str, object]:
    key = base64.b64encode(bytes(32)).decode()
    return WellKnownValues(
        crypt4gh_public_keys={"hub": key},
        wps_api_url="https://wps.example",
        ucs_api_url="https://ucs.example",
        dcs_api_url="https://dcs.example",
    ).model_dump()


def _transport(seen: list[str]) -> httpx.MockTransport:
    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        if request.url.path.endswith("/values"):
            return httpx.Response(200, json=_values())
        if request.url.path.startswith("/work-packages/"):
            return httpx.Response(200, json={"type": "download", "files": {ACCESSION: ".bam"}})
        return httpx.Response(404)

    return httpx.MockTransport(answer)


async def _session_run(
    config: Config,
    keys: KeyPair,
    wpat: str,
    seen: list[str],
    body: Callable[[Session], Awaitable[None]],
) -> None:
    async with open_session(
        config, keys, wpat, FakeReporter(), transport=_transport(seen)
    ) as session:
        await body(session)


async def test_open_session_reads_the_values_and_wires_the_handler(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    _, wpat = make_wpat(user_keys.public)
    config = Config.model_validate({"wkvs_api_url": "https://wkvs.example", "state_dir": tmp_path})
    seen: list[str] = []

    async def body(session: Session) -> None:
        assert session.values.wps_api_url == "https://wps.example"
        package = await session.accessor.get_work_package()
        assert package.files == {ACCESSION: ".bam"}

    await _session_run(config, user_keys, wpat, seen, body)
    assert seen[0] == "GET https://wkvs.example/values"
    assert seen[1].startswith("GET https://wps.example/work-packages/")


async def test_open_session_checks_the_token_before_any_request(
    user_keys: KeyPair, other_keys: KeyPair, tmp_path: Path
) -> None:
    _, wpat = make_wpat(other_keys.public)
    config = Config.model_validate({"wkvs_api_url": "https://wkvs.example", "state_dir": tmp_path})
    seen: list[str] = []

    async def body(session: Session) -> None:  # pragma: no cover - never entered
        raise AssertionError

    with pytest.raises(TokenError):
        await _session_run(config, user_keys, wpat, seen, body)
    assert seen == []
