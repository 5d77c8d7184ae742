"""API round trips per file: many small files must not cost more requests than the protocol.

A batch larger than the files in flight asks DCS for every file (a staging request,
contract §3.4(a)) beside its downloads; the DRS object that answer carries is used for
the download while its presigned URL is fresh, so a staged file costs one
``GET /objects/{accession}``, not two.
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_fakes import FakeTime, _stager
from tests.unit.connector.test_conn_handler import FakeAccessor, FakeReporter, FakeUploader

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.download import URL_SAFETY_MARGIN, Downloader, FileStager
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.ports import TokenSource
from ghga_connector.errors import FileNotDownloadableError
from ghga_connector.models import DrsObject, Outcome, Staging, WorkPackage

ACCESSION = "GHGAF001"
PLAIN = random.Random(13).randbytes(3 * 65_536 + 17)


async def test_a_probed_object_is_used_once_with_its_age_taken_off(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.url_max_age = 30.0
    stager = _stager(ghga, time)
    probed = await stager.probe(ACCESSION)
    time.now += 10.0
    drs = await stager.staged_object(ACCESSION)
    assert ghga.drs_requests == [ACCESSION]  # the probe's answer was used
    assert probed is not None
    assert drs.download_url == probed.download_url
    assert drs.max_age == 20.0  # renewed by UrlHolder when the original would have been
    await stager.staged_object(ACCESSION)
    assert ghga.drs_requests == [ACCESSION] * 2  # used once only


@pytest.mark.parametrize(
    ("max_age", "waited", "force_new"),
    [
        (None, 0.0, False),  # lifetime unknown: never reused
        (30.0, 30.0 - 2 * URL_SAFETY_MARGIN, False),  # too little left
        (30.0, 0.0, True),  # a renewal after a 403 always asks
    ],
)
async def test_a_probed_object_is_not_used_when_its_url_may_be_stale(
    user_keys: KeyPair, max_age: float | None, waited: float, force_new: bool
) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.url_max_age = max_age
    stager = _stager(ghga, time)
    await stager.probe(ACCESSION)
    time.now += waited
    drs = await stager.staged_object(ACCESSION, force_new=force_new)
    assert ghga.drs_requests == [ACCESSION] * 2
    assert drs.max_age == max_age


async def test_a_download_that_begins_while_its_staging_request_is_on_its_way_waits_for_it(
    user_keys: KeyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    ghga.url_max_age = 30.0
    stager = _stager(ghga, time)
    answer = asyncio.Event()
    ask = ghga.get_drs_object

    async def get_drs_object(accession: str, token: TokenSource) -> DrsObject | Staging:
        await answer.wait()
        return await ask(accession, token)

    monkeypatch.setattr(ghga, "get_drs_object", get_drs_object)
    request = asyncio.create_task(stager.request_staging(ACCESSION))
    await asyncio.sleep(0)  # the staging request is on its way
    download = asyncio.create_task(stager.staged_object(ACCESSION))
    await asyncio.sleep(0)
    answer.set()
    await request
    drs = await download
    assert ghga.drs_requests == [ACCESSION]
    assert drs.accession == ACCESSION


async def test_no_staging_request_for_a_file_whose_download_has_begun(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    ghga.add_file(ACCESSION, user_keys, PLAIN)
    stager = _stager(ghga, time)
    await stager.staged_object(ACCESSION)
    await stager.request_staging(ACCESSION)
    assert ghga.drs_requests == [ACCESSION]


async def test_a_refused_staging_request_leaves_nothing_waiting(user_keys: KeyPair) -> None:
    ghga, time = MemoryGhga(), FakeTime()
    stager = _stager(ghga, time)
    with pytest.raises(FileNotDownloadableError):
        await stager.request_staging("GHGAF404")
    with pytest.raises(FileNotDownloadableError):
        await stager.staged_object("GHGAF404")  # asks again, waits for nothing
    assert ghga.drs_requests == ["GHGAF404"] * 2


async def test_a_refused_staging_request_is_left_for_the_download_to_report(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    ghga, accessions = _archive(user_keys, 6)
    ghga.refuse_download.add(accessions[-1])
    outcomes = await _download_batch(ghga, accessions, user_keys, tmp_path)
    assert outcomes == [Outcome.DONE] * 5 + [Outcome.FAILED]


async def _download_batch(
    ghga: MemoryGhga, accessions: list[str], user_keys: KeyPair, folder: Path
) -> list[Outcome]:
    """Download ``accessions`` with two files in flight (two more getting ready)."""
    package = WorkPackage(type="download", files=dict.fromkeys(accessions, ".bin"))
    accessor = FakeAccessor(package)
    reporter = FakeReporter()
    stager = FileStager(accessor=accessor, dcs=ghga, reporter=reporter, max_wait_time=60.0)
    with ThreadPoolExecutor(max_workers=2) as executor:
        downloader = Downloader(
            accessor=accessor,
            dcs=ghga,
            storage=ghga,
            stager=stager,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=2 * 65_564,
            concurrency=2,
        )
        handler = TransferHandler(
            accessor=accessor,
            stager=stager,
            uploader=FakeUploader(),
            downloader=downloader,
            reporter=reporter,
            max_parallel_files=2,
            prepare_ahead=2,
        )
        jobs = await handler.download_plan(folder, accessions=None, decrypt=True)
        return [o.outcome for o in await handler.download(jobs)]


def _archive(user_keys: KeyPair, count: int) -> tuple[MemoryGhga, list[str]]:
    accessions = [f"GHGAF{i:03d}" for i in range(1, count + 1)]
    ghga = MemoryGhga()
    ghga.url_max_age = 30.0
    for accession in accessions:
        ghga.add_file(accession, user_keys, PLAIN)
    return ghga, accessions


async def test_a_batch_of_staged_files_asks_dcs_once_per_file(
    user_keys: KeyPair, tmp_path: Path
) -> None:
    """Five files, four in flight: a staging request per file, then its download."""
    ghga, accessions = _archive(user_keys, 5)
    assert await _download_batch(ghga, accessions, user_keys, tmp_path) == [Outcome.DONE] * 5
    assert all((tmp_path / f"{a}.bin").read_bytes() == PLAIN for a in accessions)
    assert sorted(ghga.drs_requests) == accessions  # exactly one DRS request per file


async def test_downloads_begin_while_the_batch_is_still_being_asked_for(
    user_keys: KeyPair, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The staging requests of a batch run beside its downloads, not before them.

    Here DCS answers for all but the first four files only once a range has been
    fetched: the batch completes only if downloads begin before every file has been asked
    for. Each file is still asked for once: a download that begins while its file's
    staging request is on its way waits for that answer, and no request is sent for a
    file already downloading.
    """
    ghga, accessions = _archive(user_keys, 12)
    range_fetched = asyncio.Event()
    ask, fetch = ghga.get_drs_object, ghga.get_range

    async def get_drs_object(accession: str, token: TokenSource) -> DrsObject | Staging:
        if accession not in accessions[:4]:
            await range_fetched.wait()
        return await ask(accession, token)

    async def get_range(url: str, start: int, stop: int, into: memoryview) -> None:
        await fetch(url, start, stop, into)
        range_fetched.set()

    monkeypatch.setattr(ghga, "get_drs_object", get_drs_object)
    monkeypatch.setattr(ghga, "get_range", get_range)
    outcomes = await asyncio.wait_for(
        _download_batch(ghga, accessions, user_keys, tmp_path), timeout=60
    )
    assert outcomes == [Outcome.DONE] * 12
    assert sorted(ghga.drs_requests) == accessions


def test_the_cli_starts_without_httpx_own_command_line_client() -> None:
    """Start-up per run: no httpx CLI (click, pygments), no progress bars unless shown."""
    probe = (
        "import sys, ghga_connector.cli, httpx\n"
        "names = ('httpx._main', 'click', 'pygments', 'rich.syntax', 'rich.progress')\n"
        "loaded = [m for m in names if sys.modules.get(m) is not None]\n"
        "print(loaded, callable(httpx.main), httpx.AsyncClient.__name__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.split() == ["[]", "True", "AsyncClient"]
