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
import functools
import hashlib
import time
from concurrent.futures import Executor
from typing import BinaryIO

from ghga_connector.c4gh.segments import SegmentCipher
from ghga_connector.core.download import Downloader
from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    SEGMENT_SIZE,
    ByteRange,
    byte_ranges,
    plaintext_size,
)
from ghga_connector.core.ports import (
    ProgressReporter,
)
from ghga_connector.core.scheduler import BufferPool, InOrder, run_parts
from ghga_connector.errors import ConnectorError, IntegrityError, OutputError
from ghga_connector.models import DrsObject, FileOutcome, Outcome

__all__ = ["StreamDownloader"]


def _plain_length(part: ByteRange) -> int:
    segments = -(-part.length // CIPHER_SEGMENT_SIZE)
    return part.length - segments * (CIPHER_SEGMENT_SIZE - SEGMENT_SIZE)


#: What to do after a stream failed a check (nothing was written to disk).
_STREAM_INTEGRITY_HINT = (
    "Nothing was written to disk; discard what the reading program received and run the "
    "command again."
)


class StreamDownloader:
    """Writes the decrypted bytes of one staged file, in order, to a binary sink.

    Args:
        downloader: the run's downloader; its envelope check (``GET
            /objects/{id}/envelopes``), ranged GETs on the presigned URL and range
            retries are used as they are.
        reporter: progress events (standard error).
        executor: threads for decryption, hashing and the blocking writes.
        window: ranges in flight or waiting in the reorder buffer at once (≥ 1); each
            holds a buffer of twice the downloader's range size.
    """

    def __init__(
        self,
        *,
        downloader: Downloader,
        reporter: ProgressReporter,
        executor: Executor,
        window: int,
    ) -> None:
        self._window = max(window, 1)
        self._reporter = reporter
        self._executor = executor
        self._downloader = downloader
        self._buffers = BufferPool(self._window)

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
            hint = error.hint
            if isinstance(error, IntegrityError):
                # Not a file that could be removed: the bytes went to the pipe.
                hint = _STREAM_INTEGRITY_HINT
            outcome = FileOutcome(
                name=accession,
                outcome=Outcome.FAILED,
                size=plain,
                seconds=time.monotonic() - started,
                message=error.message + (f" {hint}" if hint else ""),
                details={"accession": accession},
                error_code=error.error_code,
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

    async def _stream(self, accession: str, drs: DrsObject, sink: BinaryIO) -> tuple[str, int]:
        downloader = self._downloader
        _, secret = await downloader.open_envelope(accession)
        cipher = SegmentCipher(secret)
        range_size = downloader.range_size
        ranges = byte_ranges(drs.size, range_size)
        half = max(1, min(range_size, drs.size))  # a range as received, then its plaintext
        urls = downloader.url_holder(drs)
        loop = asyncio.get_running_loop()
        digest = hashlib.sha256()
        order = InOrder()
        written = 0

        def write(data: memoryview) -> None:
            digest.update(data)
            sink.write(data)
            sink.flush()

        async def fetch_and_write(part: ByteRange, buffer: bytearray) -> None:
            # A range holds its buffer until it is written: at most `window` ranges are
            # in flight or waiting in the reorder buffer.
            nonlocal written
            view = memoryview(buffer)[: part.length]
            plain = memoryview(buffer)[half:][: _plain_length(part)]
            await downloader.receive_range(
                accession, urls, part, view, functools.partial(cipher.decrypt_into, view, plain)
            )
            async with order.turn(part.part_no):
                try:
                    await loop.run_in_executor(self._executor, write, plain)
                except BrokenPipeError:
                    raise OutputError(
                        f"The program reading {accession} closed the pipe before the end: "
                        "the streamed data is incomplete."
                    ) from None
                except OSError as error:
                    raise OutputError(
                        f"Writing {accession} to standard output failed: {error.strerror}."
                    ) from None
                written += len(plain)
                self._reporter.advance(accession, len(plain))

        await run_parts(
            ranges,
            fetch_and_write,
            workers=self._window,
            buffers=self._buffers,
            buffer_size=2 * half,
            on_error=order.abort,
        )
        return digest.hexdigest(), written
