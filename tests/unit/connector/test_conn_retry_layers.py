"""One retry layer per failure kind (adapters/retry.py, docs/architecture.md "Retries").

A real :class:`Downloader` over the real HTTP client and object storage adapter, with a
mock S3 that counts every request: an unreachable server costs ``client_num_retries``
attempts in all (the range loop does not retry it again), a body that breaks off is
retried by the range loop after a backoff, never at once.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from tests.fakes import MemoryGhga
from tests.unit.connector.test_conn_handler import (
    DOWNLOAD_PACKAGE,
    FakeAccessor,
    FakeReporter,
    FakeStager,
)
from tests.unit.connector.test_conn_pipeline import EnvelopeDcs

from ghga_connector.adapters.http import make_http_client, retry_policy
from ghga_connector.adapters.services import ObjectStorageClient, Staging
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.config import Config
from ghga_connector.core.download import RANGE_ATTEMPTS, Downloader, FileStager
from ghga_connector.core.ports import DownloadJob
from ghga_connector.errors import StagingTimeoutError
from ghga_connector.models import DrsObject, Outcome
from ghga_connector.retrying import staging_wait

S3_URL = "http://s3.test/bucket/object?X-Amz-Signature=secret"
SIZE = 65_564 * 3


class Sleeps(list[float]):
    async def __call__(self, seconds: float) -> None:
        self.append(seconds)


class UrlStager(FakeStager):
    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        return DrsObject(accession=accession, download_url=S3_URL, size=SIZE)


class BrokenBody(httpx.AsyncByteStream):
    """Declares the full length, sends 10 bytes, then the connection drops."""

    async def __aiter__(self):  # type: ignore[no-untyped-def]
        yield b"x" * 10
        raise httpx.RemoteProtocolError("peer closed connection without sending complete body")


async def _download(
    tmp_path: Path, keys: KeyPair, handler: httpx.MockTransport, sleeps: Sleeps
) -> Outcome:
    config = Config(client_num_retries=3, client_exponential_backoff_max=8)
    async with make_http_client(
        config, user_agent="test", transport=handler, sleep=sleeps
    ) as client:
        with ThreadPoolExecutor(max_workers=1) as executor:
            downloader = Downloader(
                accessor=FakeAccessor(DOWNLOAD_PACKAGE),
                dcs=EnvelopeDcs(keys),
                storage=ObjectStorageClient(client),
                stager=UrlStager(),
                keys=keys,
                reporter=FakeReporter(),
                executor=executor,
                part_size=16 * 1024 * 1024,
                concurrency=1,
                retry=retry_policy(config),
                sleep=sleeps,
            )
            job = DownloadJob("GHGAF001", "", tmp_path / "GHGAF001.c4gh", decrypt=False)
            drs = await downloader._stager.staged_object("GHGAF001")
            outcome = await downloader.download(job, drs)
    return outcome.outcome


async def test_dead_object_storage_costs_the_configured_attempts(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    attempts: list[httpx.Request] = []

    def refuse(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectError("connection refused", request=request)

    sleeps = Sleeps()
    outcome = await _download(tmp_path, user_keys, httpx.MockTransport(refuse), sleeps)
    assert outcome is Outcome.FAILED
    assert len(attempts) == 3  # client_num_retries; 15 when the range loop also retried
    assert len(sleeps) == 2


async def test_body_broken_mid_way_is_retried_with_backoff(
    tmp_path: Path, user_keys: KeyPair
) -> None:
    attempts: list[httpx.Request] = []

    def drop(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        return httpx.Response(
            206,
            headers={"Content-Length": str(SIZE), "Content-Range": f"bytes 0-{SIZE - 1}/{SIZE}"},
            stream=BrokenBody(),
        )

    sleeps = Sleeps()
    outcome = await _download(tmp_path, user_keys, httpx.MockTransport(drop), sleeps)
    assert outcome is Outcome.FAILED
    assert len(attempts) == RANGE_ATTEMPTS  # the transport does not retry a streamed body
    # a backoff before each new attempt (1, 2, 4, 8 s plus jitter), none immediate
    assert len(sleeps) == RANGE_ATTEMPTS - 1
    assert all(wait >= 1.0 for wait in sleeps)
    assert sleeps == sorted(sleeps)


class StagingDcs(MemoryGhga):
    """Duck-typed DcsClient: 202 answers (``Staging``) from a script, then the object."""

    def __init__(self, waits: list[float]) -> None:
        super().__init__()
        self.waits = list(waits)
        self.calls = 0

    async def get_drs_object(self, accession: str, token: object) -> DrsObject | Staging:
        self.calls += 1
        if self.waits:
            return Staging(self.waits.pop(0))
        return DrsObject(accession=accession, download_url=S3_URL, size=SIZE)


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def _stager(dcs: StagingDcs, fake: FakeTime, max_wait: float) -> FileStager:
    return FileStager(
        accessor=FakeAccessor(DOWNLOAD_PACKAGE),
        dcs=dcs,
        reporter=FakeReporter(),
        max_wait_time=max_wait,
        clock=fake.clock,
        sleep=fake.sleep,
    )


async def test_a_huge_staging_wait_ends_at_the_deadline_with_one_more_check() -> None:
    """A 202 with ``Retry-After: 1e12`` (clamped to 300 s) does not end the wait at once:
    the stager waits until ``max_wait_time`` and asks once more."""
    dcs, fake = StagingDcs([staging_wait("1e12")]), FakeTime()
    drs = await _stager(dcs, fake, max_wait=20).staged_object("GHGAF001")
    assert drs.accession == "GHGAF001"
    assert (dcs.calls, sum(fake.slept)) == (2, 20.0)


async def test_staging_gives_up_at_max_wait_time() -> None:
    dcs, fake = StagingDcs([staging_wait("nan")] * 100), FakeTime()
    with pytest.raises(StagingTimeoutError, match="within 12 seconds"):
        await _stager(dcs, fake, max_wait=12).staged_object("GHGAF001")
    assert sum(fake.slept) == 12.0  # 5 s (nan → default), 5 s, then the last 2 s
