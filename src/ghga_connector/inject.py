"""Composition root: builds one run's HTTP client, service adapters and transfer components.

Only this module names concrete adapters. Everything is opened in
:func:`open_session` and closed when its ``async with`` block ends. The command line
reaches the adapters only through this module (also for :func:`safe_proxy_url`, which
``config`` uses to show a proxy URL without its password).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

import httpx

from ghga_connector import package_version
from ghga_connector.adapters.http import make_http_client, retry_policy, safe_proxy_url
from ghga_connector.adapters.services import (
    DcsClient,
    ObjectStorageClient,
    RateFloor,
    UcsClient,
    WkvsClient,
    WpsClient,
)
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import SealedBoxError, open_sealed_b64
from ghga_connector.config import Config
from ghga_connector.core.digests import DigestCache
from ghga_connector.core.download import Downloader, FileStager
from ghga_connector.core.handler import TransferHandler
from ghga_connector.core.journal import JournalStore
from ghga_connector.core.ports import ProgressReporter
from ghga_connector.core.scheduler import BufferPool
from ghga_connector.core.stream import StreamDownloader
from ghga_connector.core.upload import Uploader
from ghga_connector.core.work_package import WorkPackageAccessor
from ghga_connector.errors import TokenError
from ghga_connector.models import WellKnownValues
from ghga_connector.retrying import RetryStats

__all__ = ["Session", "crypto_workers", "open_session", "open_wpat", "parse_wpat", "safe_proxy_url"]

_TOKEN = re.compile(r"^[A-Za-z0-9]{24}$")

#: A WPAT as the Data Portal shows it: a 36-character UUID, ':', and the base64 of a
#: 72-byte sealed box (96 characters) holding the 24-character token (contract §2.2).
SEALED_TOKEN_LENGTH = 96
WPAT_LENGTH = 36 + 1 + SEALED_TOKEN_LENGTH


def _damaged(text: str, why: str) -> TokenError:
    return TokenError(
        f"The access token is incomplete or damaged ({why}; {len(text)} characters, "
        f"expected {WPAT_LENGTH}); copy it again.",
        hint="Copy the whole token from the GHGA Data Portal onto one line "
        "('<work package id>:<token>').",
    )


def parse_wpat(text: str) -> tuple[str, str]:
    """Split ``"<work package id>:<sealed token>"`` (contract §2.2).

    Raises:
        TokenError: if the text does not have that shape.
    """
    text = text.strip()
    if any(c.isspace() for c in text):
        raise _damaged(text, "it is broken over several lines or has spaces inside")
    parts = text.split(":")
    if len(parts) == 2 and len(parts[1]) != SEALED_TOKEN_LENGTH and 20 <= len(parts[0]) < 40:
        raise _damaged(text, f"its token part has {len(parts[1])} characters")
    if len(parts) != 2 or not 20 <= len(parts[0]) < 40 or not 80 <= len(parts[1]) < 120:
        raise TokenError(
            "The access token is malformed: expected '<work package id>:<token>' as shown "
            "by the GHGA Data Portal."
        )
    try:
        uuid.UUID(parts[0])
    except ValueError:
        raise TokenError(
            "The access token is malformed: its work package id is not a UUID."
        ) from None
    return parts[0], parts[1]


def open_wpat(text: str, keys: KeyPair) -> tuple[str, str]:
    """Open a WPAT with the user's secret key: ``(work package id, plain token)``.

    Raises:
        TokenError: malformed, or sealed for another key.
    """
    work_package_id, sealed = parse_wpat(text)
    try:
        sealed_bytes = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise _damaged(text.strip(), "its token part is not base64") from None
    if len(sealed_bytes) != SEALED_TOKEN_LENGTH // 4 * 3:
        raise _damaged(text.strip(), "its token part does not decode to 72 bytes")
    try:
        token = open_sealed_b64(sealed, keys.secret).decode("ascii")
    except (SealedBoxError, UnicodeDecodeError):
        raise TokenError(
            "The access token was not issued for your key pair (it cannot be opened with "
            "your private key).",
            hint="Pass the key pair whose public key you gave to the GHGA Data Portal.",
        ) from None
    if not _TOKEN.match(token):
        raise TokenError("The access token does not contain a valid GHGA token.")
    return work_package_id, token


@dataclass
class Session:
    """What one command run works with."""

    handler: TransferHandler
    accessor: WorkPackageAccessor
    values: WellKnownValues
    retry_stats: RetryStats


def crypto_workers(config: Config) -> int:
    """Threads of the crypto pool: ``crypto_threads``, else the cores (at least 2)."""
    return config.crypto_threads or max(os.cpu_count() or 2, 2)


T = TypeVar("T")

#: Seconds without an answer from the well-known value service before the user is told
#: where the connector is connecting to.
CONNECT_NOTICE_SECONDS = 3.0


async def _say_where_while_waiting(
    work: Awaitable[T], reporter: ProgressReporter, url: str, *, after: float
) -> T:
    """Await ``work``; if it takes longer than ``after`` seconds, say that we connect to ``url``."""
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=after)
    if not done:
        reporter.message(
            f"Connecting to the GHGA services at {url} (no answer yet; retrying) …",
            level="warning",
        )
    return await task


@asynccontextmanager
async def open_session(
    config: Config,
    keys: KeyPair,
    wpat: str,
    reporter: ProgressReporter,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    connect_notice_after: float = CONNECT_NOTICE_SECONDS,
) -> AsyncIterator[Session]:
    """Open the HTTP client, read the well-known values, open the WPAT, wire the handler.

    The WPAT is checked locally before any network call. If the well-known value
    service has not answered after ``connect_notice_after`` seconds, the reporter is
    told where the connector is connecting to (a wrong or unreachable URL otherwise
    looks like a hang while the retries run).

    Raises:
        TokenError: malformed WPAT or sealed for another key.
        ServiceUnreachableError, ServerResponseError: the well-known value service failed.
    """
    work_package_id, token = open_wpat(wpat, keys)
    stats = RetryStats(listener=reporter.request_retried)
    per_file = max(config.max_concurrent_uploads, config.max_concurrent_downloads)
    executor = ThreadPoolExecutor(
        max_workers=crypto_workers(config),
        thread_name_prefix="ghga-crypto",
    )
    try:
        async with make_http_client(
            config,
            user_agent=f"ghga-connector/{package_version()}",
            stats=stats,
            transport=transport,
            pool_size=config.max_parallel_files * per_file + 8,
        ) as client:
            values = await _say_where_while_waiting(
                WkvsClient(client, str(config.wkvs_api_url)).get_values(),
                reporter,
                str(config.wkvs_api_url),
                after=connect_notice_after,
            )
            wps = WpsClient(client, values.wps_api_url, work_package_id, token)
            ucs = UcsClient(client, values.ucs_api_url)
            dcs = DcsClient(client, values.dcs_api_url)
            storage = ObjectStorageClient(
                client, RateFloor(config.min_download_rate, config.min_download_rate_window)
            )
            accessor = WorkPackageAccessor(wps, ucs, keys)
            stager = FileStager(
                accessor=accessor, dcs=dcs, reporter=reporter, max_wait_time=config.max_wait_time
            )
            uploader = Uploader(
                accessor=accessor,
                ucs=ucs,
                storage=storage,
                values=values,
                keys=keys,
                reporter=reporter,
                executor=executor,
                part_size=config.part_size,
                concurrency=config.max_concurrent_uploads,
                journals=JournalStore(
                    config.state_dir, warn=lambda line: reporter.message(line, level="warning")
                ),
                buffers=BufferPool(config.max_concurrent_uploads),
                open_uploads=config.max_parallel_files,
            )
            downloader = Downloader(
                accessor=accessor,
                dcs=dcs,
                storage=storage,
                stager=stager,
                keys=keys,
                reporter=reporter,
                executor=executor,
                part_size=config.part_size,
                concurrency=config.max_concurrent_downloads,
                buffers=BufferPool(config.max_concurrent_downloads),
                files_at_once=config.max_parallel_files,
                retry=retry_policy(config),
            )
            handler = TransferHandler(
                accessor=accessor,
                stager=stager,
                uploader=uploader,
                downloader=downloader,
                reporter=reporter,
                max_parallel_files=config.max_parallel_files,
                prepare_ahead=config.max_parallel_files,
                upload_lock_path=JournalStore(config.state_dir).lock_path,
                lock_downloads=True,
                digests=DigestCache(config.state_dir / "digests"),
                streamer=StreamDownloader(
                    downloader=downloader,
                    reporter=reporter,
                    executor=executor,
                    window=config.max_concurrent_downloads,
                ),
            )
            yield Session(handler=handler, accessor=accessor, values=values, retry_stats=stats)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
