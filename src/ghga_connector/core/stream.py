"""Streaming one file's plaintext, in order, to a binary sink (``download --output -``).

Ranges of the Crypt4GH body (contract §3.4, §4.4) are fetched in parallel, each
authenticated and decrypted on arrival, and kept in a bounded reorder buffer until
every earlier range has been written: at most ``window`` ranges are in flight or
waiting at once, so memory stays within ``2 × window × range size`` bytes (the same
bound as the download pool). Nothing is written to disk. The plaintext SHA-256 is
compared with the archive's checksum after the last byte: the reader has by then
received the data, so a mismatch can only be reported (exit 1, "the streamed data is
invalid"); a pipeline must treat the exit code as the verdict.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import Executor
from typing import BinaryIO

from ghga_connector.c4gh.envelope import EnvelopeError, open_envelope
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.segments import SegmentAuthenticationError, SegmentCipher
from ghga_connector.core.download import RANGE_ATTEMPTS, _UrlHolder
from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    ByteRange,
    byte_ranges,
    download_range_size,
    plaintext_size,
)
from ghga_connector.core.ports import (
    DcsPort,
    FileStagerBase,
    ObjectStoragePort,
    ProgressReporter,
    WorkPackageAccessorBase,
)
from ghga_connector.core.tasks import first_cause
from ghga_connector.errors import (
    ConnectorError,
    IntegrityError,
    KeyFileError,
    OutputError,
    PresignedUrlExpired,
    ServiceUnreachableError,
)
from ghga_connector.models import DrsObject, FileOutcome, Outcome

__all__ = ["StreamDownloader"]


def _plain_length(part: ByteRange) -> int:
    segments = -(-part.length // CIPHER_SEGMENT_SIZE)
    return part.length - segments * (CIPHER_SEGMENT_SIZE - SEGMENT_SIZE)


class StreamDownloader:
    """Writes the decrypted bytes of one staged file, in order, to a binary sink.

    Args:
        accessor: issues download WOTs.
        dcs: download controller (the Crypt4GH envelope, ``GET /objects/{id}/envelopes``).
        storage: S3 ranged GETs on the presigned URL.
        stager: renews presigned URLs.
        keys: the user's key pair (opens the envelope).
        reporter: progress events (standard error).
        executor: threads for decryption, hashing and the blocking writes.
        part_size: configured range length in bytes (rounded up to whole segments).
        window: ranges in flight or waiting in the reorder buffer at once (≥ 1).
        clock: injected for tests.
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        dcs: DcsPort,
        storage: ObjectStoragePort,
        stager: FileStagerBase,
        keys: KeyPair,
        reporter: ProgressReporter,
        executor: Executor,
        part_size: int,
        window: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._accessor = accessor
        self._dcs = dcs
        self._storage = storage
        self._stager = stager
        self._keys = keys
        self._reporter = reporter
        self._executor = executor
        self._range_size = download_range_size(part_size)
        self._window = max(window, 1)
        self._clock = clock

    async def stream(self, accession: str, drs: DrsObject, sink: BinaryIO) -> FileOutcome:
        """Stream ``accession`` to ``sink``; a ``FAILED`` outcome if anything went wrong.

        ``sink`` receives exactly the plaintext bytes in order (``plaintext_size(drs.size)``
        of them when the outcome is ``DONE``). Without a checksum in the DRS object the
        outcome is ``UNVERIFIED``. Failures after the first byte cannot take
        back what was written; the outcome's message says the streamed data is invalid.

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted (the sink may
                hold part of the file); every other failure is the ``FAILED`` outcome.
        """
        started = time.monotonic()
        try:
            plain = plaintext_size(drs.size)
        except ValueError:
            plain = 0
        self._reporter.file_started(accession, plain)
        verified = drs.sha256 is not None
        try:
            sha256, written = await self._stream(accession, drs, sink)
            if written != plain or (drs.sha256 is not None and sha256 != drs.sha256.lower()):
                raise IntegrityError(
                    f"The SHA-256 of {accession} does not match the archive's checksum: "
                    "the streamed data is invalid; discard what the reading program produced."
                )
        except ConnectorError as error:
            outcome = FileOutcome(
                name=accession,
                outcome=Outcome.FAILED,
                size=plain,
                seconds=time.monotonic() - started,
                message=error.message + (f" {error.hint}" if error.hint else ""),
                details={"accession": accession},
            )
            self._reporter.file_finished(outcome)
            return outcome
        if not verified:
            self._reporter.message(
                f"Warning: GHGA sent no checksum for {accession}: the streamed data could "
                "not be verified.",
                level="warning",
            )
        outcome = FileOutcome(
            name=accession,
            outcome=Outcome.DONE if verified else Outcome.UNVERIFIED,
            size=plain,
            seconds=time.monotonic() - started,
            message="" if verified else "not verified: the archive sent no checksum",
            details={
                "accession": accession,
                "sha256": sha256,
                "decrypted": True,
                "verified": verified,
            },
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def _secret(self, accession: str) -> bytes:
        async def token(force: bool) -> str:
            return await self._accessor.download_wot(accession, force_new=force)

        envelope = await self._dcs.get_envelope(accession, token)
        try:
            return open_envelope(envelope, self._keys.secret)
        except EnvelopeError:
            raise KeyFileError(
                f"The envelope of {accession} cannot be opened with your private key.",
                hint="Use the key pair this work package was created for.",
            ) from None

    async def _stream(self, accession: str, drs: DrsObject, sink: BinaryIO) -> tuple[str, int]:
        cipher = SegmentCipher(await self._secret(accession))
        ranges = byte_ranges(drs.size, self._range_size)
        urls = _UrlHolder(drs, self._stager, self._clock)
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        window = self._window
        changed = asyncio.Condition()
        ready: dict[int, bytearray] = {}
        next_write = 1
        written = 0
        pending = iter(ranges)

        def write(data: bytearray) -> None:
            digest.update(data)
            sink.write(data)
            sink.flush()

        async def fetch(part: ByteRange) -> bytearray:
            data = bytearray(part.length)
            plain = bytearray(_plain_length(part))
            for attempt in range(1, RANGE_ATTEMPTS + 1):
                url = await urls.get()
                try:
                    await self._storage.get_range(url, part.start, part.stop, memoryview(data))
                    await loop.run_in_executor(
                        self._executor, cipher.decrypt_into, memoryview(data), memoryview(plain)
                    )
                    return plain
                except PresignedUrlExpired:
                    await urls.renew(url)
                except (ServiceUnreachableError, SegmentAuthenticationError) as error:
                    if attempt == RANGE_ATTEMPTS:
                        if isinstance(error, SegmentAuthenticationError):
                            raise IntegrityError(
                                f"Bytes {part.start}-{part.stop - 1} of {accession} failed "
                                f"Crypt4GH authentication {RANGE_ATTEMPTS} times: the "
                                "streamed data is incomplete."
                            ) from None
                        raise
            raise ServiceUnreachableError(f"The download URL of {accession} kept expiring.")

        async def worker() -> None:
            while True:
                part = next(pending, None)
                if part is None:
                    return
                number = part.part_no
                async with changed:
                    # The reorder buffer: never more than `window` ranges ahead of the writer.
                    await changed.wait_for(lambda n=number: n < next_write + window)  # type: ignore[misc]
                data = await fetch(part)
                async with changed:
                    ready[part.part_no] = data
                    changed.notify_all()

        async def writer() -> None:
            nonlocal next_write, written
            for number in range(1, len(ranges) + 1):
                async with changed:
                    await changed.wait_for(lambda n=number: n in ready)  # type: ignore[misc]
                    data = ready.pop(number)
                try:
                    await loop.run_in_executor(self._executor, write, data)
                except BrokenPipeError:
                    raise OutputError(
                        f"The program reading {accession} closed the pipe before the end: "
                        "the streamed data is incomplete."
                    ) from None
                except OSError as error:
                    raise OutputError(
                        f"Writing {accession} to standard output failed: {error.strerror}."
                    ) from None
                written += len(data)
                self._reporter.advance(accession, len(data))
                async with changed:
                    next_write += 1
                    changed.notify_all()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(writer())
                for _ in range(min(window, len(ranges))):
                    group.create_task(worker())
        except BaseExceptionGroup as error:
            raise first_cause(error) from None
        return digest.hexdigest(), written
