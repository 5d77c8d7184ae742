"""Files prepared ahead: round trips of waiting files overlap the transfers of others.

The handler runs ``max_parallel_files + prepare_ahead`` files at once; the uploader lets
at most ``open_uploads`` files be between create and complete (the box allows 5 in
``init``) and the downloader at most ``files_at_once`` files fetch ranges. A waiting
upload has fetched its create WOT; a waiting download has its DRS object and envelope.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_handler import (
    DOWNLOAD_PACKAGE,
    UPLOAD_PACKAGE,
    FakeAccessor,
    FakeDownloader,
    FakeReporter,
    FakeStager,
    FakeUploader,
)

from ghga_connector.c4gh.envelope import make_envelope, new_data_secret
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.core.download import Downloader
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.ports import DownloadJob, UploadJob
from ghga_connector.core.upload import Uploader
from ghga_connector.errors import ServerResponseError, UploadRejectedError
from ghga_connector.models import Outcome, WellKnownValues

VALUES = WellKnownValues(crypt4gh_public_keys={}, wps_api_url="w", ucs_api_url="u", dcs_api_url="d")


class GatedUcs(MemoryGhga):
    """Duck-typed UcsClient: create waits for ``release`` and is then refused."""

    def __init__(self) -> None:
        super().__init__()
        self.creates: list[str] = []
        self.active = 0
        self.max_active = 0
        self.release = asyncio.Event()

    async def create_upload(self, box_id: str, token: object, **kwargs: object) -> tuple[str, str]:
        self.creates.append(str(kwargs["alias"]))
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        try:
            await self.release.wait()
        finally:
            self.active -= 1
        raise UploadRejectedError("refused", exception_id="boxStateError", status_code=409)


async def _settle(ready: Callable[[], bool]) -> None:
    """Let the run go on until ``ready()`` (file-system calls run in worker threads), then
    a little more, so that anything it would wrongly do next shows up too."""
    for _ in range(1000):
        if ready():
            break
        await asyncio.sleep(0.01)
    for _ in range(20):
        await asyncio.sleep(0)


async def test_waiting_uploads_have_their_create_wot(tmp_path: Path, user_keys: KeyPair) -> None:
    jobs = []
    for n in range(6):
        path = tmp_path / f"f{n}.bam"
        path.write_bytes(b"x" * 10)
        jobs.append(UploadJob(path=path, alias=path.name, size=10))
    accessor, ucs, reporter = FakeAccessor(UPLOAD_PACKAGE), GatedUcs(), FakeReporter()
    with ThreadPoolExecutor(max_workers=1) as executor:
        uploader = Uploader(
            accessor=accessor,
            ucs=ucs,
            storage=MemoryGhga(),
            values=VALUES,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=16 * 1024 * 1024,
            concurrency=1,
            open_uploads=2,
        )
        handler = TransferHandler(
            accessor=accessor,
            stager=FakeStager(),
            uploader=uploader,
            downloader=FakeDownloader(),
            reporter=reporter,
            max_parallel_files=2,
            prepare_ahead=2,
        )
        task = asyncio.create_task(handler.upload(jobs))
        await _settle(lambda: len(ucs.creates) >= 2)
        # two files are being created; two more wait with their create WOT in hand
        # (files take their locks in worker threads, so which four come first may vary)
        assert len(ucs.creates) == 2
        prefetched = [alias for work_type, alias, _, _ in accessor.wots if work_type == "create"]
        assert len(set(prefetched)) == len(prefetched) == 4
        assert set(ucs.creates) <= set(prefetched)
        ucs.release.set()
        outcomes = await task
    assert [o.outcome for o in outcomes] == [Outcome.FAILED] * 6
    assert sorted(ucs.creates) == [job.alias for job in jobs]
    assert ucs.max_active == 2


class EnvelopeDcs(MemoryGhga):
    """Duck-typed DcsClient serving a real envelope for the user's key."""

    def __init__(self, keys: KeyPair) -> None:
        super().__init__()
        self.envelope = make_envelope(new_data_secret(), keys.secret, keys.public)
        self.asked: list[str] = []

    async def get_envelope(self, accession: str, token: object) -> bytes:
        self.asked.append(accession)
        return self.envelope


class GatedStorage(MemoryGhga):
    """Duck-typed ObjectStorageClient: ranged GETs wait for ``release``, then fail."""

    def __init__(self) -> None:
        super().__init__()
        self.files: set[str] = set()
        self.max_files = 0
        self.release = asyncio.Event()

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        self.files.add(url)
        self.max_files = max(self.max_files, len(self.files))
        try:
            await self.release.wait()
        finally:
            self.files.discard(url)
        raise ServerResponseError("refused", status_code=500)


async def test_waiting_downloads_have_their_envelope(tmp_path: Path, user_keys: KeyPair) -> None:
    dcs, storage, reporter = EnvelopeDcs(user_keys), GatedStorage(), FakeReporter()

    class UrlStager(FakeStager):
        async def staged_object(self, accession: str, *, force_new: bool = False):  # type: ignore[no-untyped-def]
            drs = await super().staged_object(accession, force_new=force_new)
            return drs.model_copy(update={"download_url": f"http://s3/{accession}", "size": 1000})

    stager = UrlStager()
    accessor = FakeAccessor(DOWNLOAD_PACKAGE)
    with ThreadPoolExecutor(max_workers=1) as executor:
        downloader = Downloader(
            accessor=accessor,
            dcs=dcs,
            storage=storage,
            stager=stager,
            keys=user_keys,
            reporter=reporter,
            executor=executor,
            part_size=16 * 1024 * 1024,
            concurrency=1,
            files_at_once=1,
        )
        handler = TransferHandler(
            accessor=accessor,
            stager=stager,
            uploader=FakeUploader(),
            downloader=downloader,
            reporter=reporter,
            max_parallel_files=1,
            prepare_ahead=1,
        )
        jobs = [
            DownloadJob(accession, "", tmp_path / f"{accession}.c4gh", decrypt=False)
            for accession in ("GHGAF001", "GHGAF002", "GHGAF003")
        ]
        task = asyncio.create_task(handler.download(jobs))
        await _settle(lambda: len(dcs.asked) >= 2 and bool(storage.files))
        # one file fetches ranges; the next one waits with its envelope already opened
        assert storage.files == {"http://s3/GHGAF001"}
        assert dcs.asked == ["GHGAF001", "GHGAF002"]
        storage.release.set()
        outcomes = await task
    assert [o.outcome for o in outcomes] == [Outcome.FAILED] * 3
    assert storage.max_files == 1
    assert not any(tmp_path.glob("GHGAF*.c4gh"))
