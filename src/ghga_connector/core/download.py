"""The file stager and the downloader (contract §1.3, §3.4, §4.4).

The stager polls ``GET /objects/{accession}`` until the file is staged (202 +
``Retry-After`` → wait). The downloader fetches the Crypt4GH envelope for the user's
key, then the body in segment-aligned ranges by parallel ranged GETs. Every range is
authenticated segment by segment as it arrives (Poly1305), the plaintext SHA-256 is
compared with the DRS checksum, and only then is the temporary ``.part`` file renamed
to its final name. Output is either the Crypt4GH file (envelope ‖ body) with the
plaintext checksum beside it (``X.bam.sha256`` for ``X.bam.c4gh``), or with ``decrypt``
the plaintext itself.

Order on disk (so that after a crash at any point no final-named file holds content
that was not verified): the ``.part`` file and its journal are created exclusively
(mode 0600, symbolic links refused); the journal header is written to a temporary name,
fsynced and renamed; once the checksum matched, the sidecar (``X.bam.sha256``, beside
``X.bam.c4gh`` and beside ``X.bam`` alike) is written the same way, vouching for the
file by its identity (:func:`~ghga_connector.core.decrypt.vouch_for`), then the
``.part`` file is fsynced and renamed to its final name and the folder is fsynced. A
DRS object without a checksum is downloaded too, but its outcome is ``unverified``
(Crypt4GH alone does not notice reordered, repeated or missing whole segments), no
sidecar is written for it, and it is kept as ``X.unverified``: only
``allow_unverified`` gives it its final name.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path

from tenacity import AsyncRetrying

from ghga_connector.c4gh.envelope import EnvelopeError, MalformedEnvelopeError, open_envelope
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.segments import (
    SegmentAuthenticationError,
    SegmentCipher,
)
from ghga_connector.core.decrypt import (
    CHECKSUM_SUFFIX,
    checksum_line,
    expected_checksum,
    file_sha256,
    legacy_sidecar_path,
    plaintext_sha256,
    sidecar_path,
    unverified_path,
    vouch_for,
)
from ghga_connector.core.files import (
    append_line,
    create_exclusive,
    off_loop,
    open_private,
    pread_into,
    pwrite_all,
    refuse_links,
    replace_file,
    start_writeback,
    write_atomic,
)
from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    ByteRange,
    byte_ranges,
    download_range_size,
    plaintext_size,
)
from ghga_connector.core.ports import (
    DcsPort,
    DownloaderBase,
    DownloadJob,
    FileStagerBase,
    ObjectStoragePort,
    ProgressReporter,
    WorkPackageAccessorBase,
    unique_temp_path,
)
from ghga_connector.core.scheduler import BufferPool, OrderedDigest, run_parts
from ghga_connector.errors import (
    BodyBrokenError,
    ConnectorError,
    IntegrityError,
    KeyFileError,
    OutputError,
    PresignedUrlExpired,
    ServerResponseError,
    ServiceUnreachableError,
    StagingTimeoutError,
)
from ghga_connector.models import DrsObject, FileOutcome, Outcome
from ghga_connector.retrying import BODY_ATTEMPTS, RetryPolicy, body_retrying

__all__ = ["CHECKSUM_SUFFIX", "Downloader", "FileStager", "UrlHolder", "checksum_line"]

#: Attempts per range when the body breaks off or fails authentication.
RANGE_ATTEMPTS = BODY_ATTEMPTS
#: Seconds before a presigned URL's max-age at which a new one is requested.
URL_SAFETY_MARGIN = 2.0


class FileStager(FileStagerBase):
    """Waits until a file is staged in the outbox (202 + Retry-After → wait, contract §5.3).

    Args:
        accessor: issues download WOTs.
        dcs: the download controller client.
        reporter: shows the countdown.
        max_wait_time: seconds to wait per file before :class:`StagingTimeoutError`.
        clock, sleep: injected for tests.
    """

    def __init__(
        self,
        *,
        accessor: WorkPackageAccessorBase,
        dcs: DcsPort,
        reporter: ProgressReporter,
        max_wait_time: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._accessor = accessor
        self._dcs = dcs
        self._reporter = reporter
        self._max_wait = max_wait_time
        self._clock = clock
        self._sleep = sleep
        # DRS objects answered to :meth:`probe`, with the time they arrived: the next
        # :meth:`staged_object` of the accession uses one while its URL is fresh.
        self._probed: dict[str, tuple[DrsObject, float]] = {}
        # Staging requests of :meth:`request_staging` still waiting for their answer, and
        # the accessions whose download has begun (no staging request is sent for those).
        self._asking: dict[str, asyncio.Event] = {}
        self._claimed: set[str] = set()

    def _take_probed(self, accession: str) -> DrsObject | None:
        """The probed DRS object of ``accession`` (once), if its URL stays fresh a while.

        Its ``max_age`` is shortened by the time since it arrived, so that whoever holds
        it (:class:`UrlHolder`) renews the URL when it would have. An object without a
        ``max_age`` is never reused (its URL's lifetime is unknown).
        """
        drs, fetched = self._probed.pop(accession, (None, 0.0))
        if drs is None or drs.max_age is None:
            return None
        left = drs.max_age - (self._clock() - fetched)
        if left <= 2 * URL_SAFETY_MARGIN:
            return None
        return drs.model_copy(update={"max_age": left})

    async def staged_object(self, accession: str, *, force_new: bool = False) -> DrsObject:
        """The DRS object of ``accession`` with a fresh presigned URL.

        Without ``force_new``, the answer to an earlier :meth:`probe` is used once
        instead of asking DCS again, while its URL has more than ``2 × URL_SAFETY_MARGIN``
        seconds of its ``max_age`` left (one ``GET /objects/{accession}`` per file,
        contract §3.4(a), instead of two when a batch asked for staging first).

        Raises:
            StagingTimeoutError: not staged within ``max_wait_time`` seconds.
            FileNotDownloadableError: the file is unknown or access was refused.
        """
        self._claimed.add(accession)
        asking = self._asking.get(accession)
        if asking is not None and not force_new:
            await asking.wait()  # its staging request is on its way: use its answer
        probed = self._take_probed(accession)
        if probed is not None and not force_new:
            return probed

        async def token(force: bool) -> str:
            return await self._accessor.download_wot(accession, force_new=force)

        deadline = self._clock() + self._max_wait
        while True:
            result = await self._dcs.get_drs_object(accession, token)
            if isinstance(result, DrsObject):
                return result
            # The Retry-After is clamped (adapters/retry.py); the last wait ends at the
            # deadline, where one more check is made.
            left = deadline - self._clock()
            if left <= 0:
                raise StagingTimeoutError(
                    f"{accession} was not ready for download within {self._max_wait:.0f} seconds."
                )
            wait = min(max(result.retry_after, 0.5), left)
            # A visible countdown, one update per second.
            remaining = wait
            while remaining > 0:
                self._reporter.file_status(
                    accession, f"being staged, next check in {remaining:.0f} s"
                )
                step = min(1.0, remaining)
                await self._sleep(step)
                remaining -= step

    async def probe(self, accession: str) -> DrsObject | None:
        """One ``GET /objects/{accession}``: the DRS object, or ``None`` while staging.

        A DRS object is remembered for the next :meth:`staged_object` of ``accession``.

        Raises:
            FileNotDownloadableError: the file is unknown or access was refused.
            ServiceUnreachableError: the download service cannot be reached.
        """

        async def token(force: bool) -> str:
            return await self._accessor.download_wot(accession, force_new=force)

        result = await self._dcs.get_drs_object(accession, token)
        if not isinstance(result, DrsObject):
            return None
        self._probed[accession] = (result, self._clock())
        return result

    async def request_staging(self, accession: str) -> None:
        """Ask for ``accession`` to be staged ahead of its download (one :meth:`probe`).

        Runs beside the downloads of a batch: skipped if the file's download has begun
        already, and a download that begins while the request is on its way waits for
        its answer instead of asking again, so a staged file costs one
        ``GET /objects/{accession}`` (contract §3.4(a)).

        Raises:
            FileNotDownloadableError: the file is unknown or access was refused.
            ServiceUnreachableError: the download service cannot be reached.
        """
        if accession in self._claimed or accession in self._asking:
            return
        answered = self._asking[accession] = asyncio.Event()
        try:
            await self.probe(accession)
        finally:
            del self._asking[accession]
            answered.set()


class UrlHolder:
    """The current presigned URL of a file, renewed before it expires or after a 403."""

    def __init__(
        self,
        drs: DrsObject,
        stager: FileStagerBase,
        clock: Callable[[], float],
    ) -> None:
        self._drs = drs
        self._stager = stager
        self._clock = clock
        self._fetched = clock()
        self._lock = asyncio.Lock()

    def _fresh(self) -> bool:
        if self._drs.max_age is None:
            return True
        return self._clock() < self._fetched + self._drs.max_age - URL_SAFETY_MARGIN

    async def get(self) -> str:
        """The current presigned URL, renewed first if it is about to expire.

        Raises:
            StagingTimeoutError, ServerResponseError, ServiceUnreachableError: renewing failed.
        """
        if not self._fresh():
            await self.renew(self._drs.download_url)
        return self._drs.download_url

    async def renew(self, stale_url: str) -> None:
        """Fetch a new URL (DCS ``GET /objects/{accession}``) unless another task already did.

        Raises:
            StagingTimeoutError, ServerResponseError, ServiceUnreachableError: as
                :meth:`FileStager.staged_object`.
        """
        async with self._lock:
            if self._drs.download_url != stale_url and self._fresh():
                return
            drs = await self._stager.staged_object(self._drs.accession, force_new=True)
            self._drs, self._fetched = drs, self._clock()


class Downloader(DownloaderBase):
    """Downloads one staged file, verifies it and writes it atomically.

    Args:
        accessor: issues download WOTs.
        dcs: download controller (envelopes).
        storage: S3 ranged GETs.
        stager: renews presigned URLs.
        keys: the user's key pair (opens the envelope).
        reporter: progress events.
        executor: threads for decryption, hashing and writing.
        part_size: configured range length in bytes (rounded up to whole segments).
        retry, sleep: backoff policy of range retries and its sleep (tests).
        concurrency: ranges in flight per file.
        buffers: range buffers shared by all files of the run (default: ``concurrency``).
        files_at_once: files whose ranges are fetched at once; a file waiting for its
            turn has already fetched and opened its Crypt4GH envelope. ``None``: no
            limit here (the caller bounds the files).
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
        concurrency: int,
        buffers: BufferPool | None = None,
        files_at_once: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        self._buffers = buffers or BufferPool(concurrency)
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._accessor = accessor
        self._dcs = dcs
        self._storage = storage
        self._stager = stager
        self._keys = keys
        self._reporter = reporter
        self._executor = executor
        self._range_size = download_range_size(part_size)
        self._concurrency = concurrency
        self._turns = asyncio.Semaphore(files_at_once) if files_at_once is not None else None
        self._clock = clock

    def _body_retrying(self) -> AsyncRetrying:
        """Attempts of one range (:data:`RANGE_ATTEMPTS` in all).

        A broken body or a failed MAC is retried after a backoff, an expired URL (just
        renewed) at once.
        """
        return body_retrying(
            self._retry,
            (BodyBrokenError, SegmentAuthenticationError, PresignedUrlExpired),
            no_wait=(PresignedUrlExpired,),
            attempts=RANGE_ATTEMPTS,
            sleep=self._sleep,
        )

    async def download(self, job: DownloadJob, drs: DrsObject) -> FileOutcome:
        """Download one file and return its outcome.

        Failures become a ``FAILED`` outcome with nothing left under the final name;
        interruptions propagate and the ``.part`` file stays.

        Raises:
            asyncio.CancelledError, KeyboardInterrupt: the run was interrupted (the ``.part``
                file and its range journal stay for the next run); nothing else.
        """
        name = job.target.name
        try:
            plain = plaintext_size(drs.size)
        except ValueError:
            plain = 0
        try:
            await off_loop(self._executor, refuse_links, *_output_names(job))
            envelope, secret = await self.open_envelope(job.accession)
        except ConnectorError as error:
            self._reporter.file_started(name, plain)
            return self._failed(job, plain, time.monotonic(), error)
        async with self._turns or contextlib.nullcontext():
            return await self._download(job, drs, plain, envelope, secret)

    async def _download(
        self, job: DownloadJob, drs: DrsObject, plain: int, envelope: bytes, secret: bytes
    ) -> FileOutcome:
        started = time.monotonic()
        name = job.target.name
        self._reporter.file_started(name, plain)
        temp = unique_temp_path(job.target)
        verified = drs.sha256 is not None
        try:
            sha256 = await self._fetch(job, drs, plain, temp, envelope, secret)
            if drs.sha256 is not None and sha256 != drs.sha256.lower():
                raise IntegrityError(
                    f"The SHA-256 of {job.accession} does not match the archive's checksum."
                )
            await asyncio.get_running_loop().run_in_executor(
                self._executor, _write_sidecar, job, temp, sha256 if verified else None
            )
            final = job.target if verified or job.allow_unverified else unverified_path(job.target)
            await off_loop(self._executor, _finish, job, temp, final)
        except IntegrityError as error:
            await off_loop(self._executor, _discard, temp)
            return self._failed(job, plain, started, error)
        except ConnectorError as error:
            if not error.hint:
                error.hint = "Run the same command again to continue the download."
            return self._failed(job, plain, started, error)
        except OSError as error:
            return self._failed(
                job, plain, started, OutputError(f"Writing {str(temp)!r} failed: {error.strerror}.")
            )
        except (asyncio.CancelledError, KeyboardInterrupt):
            if temp.exists():
                self._reporter.message(
                    f"{name}: download paused; run the same command again to continue.",
                    level="warning",
                )
            raise
        details: dict[str, str | int | float | None] = {
            "accession": job.accession,
            "sha256": sha256,
            "decrypted": job.decrypt,
            "verified": verified,
        }
        kept = "" if final == job.target else f"; kept as {final.name}"
        if not verified:
            self._reporter.message(
                f"{name}: GHGA sent no SHA-256 checksum for {job.accession}; the file was "
                f"downloaded but its content could not be verified{kept}.",
                level="warning",
            )
        outcome = FileOutcome(
            name=name,
            outcome=Outcome.DONE if verified else Outcome.UNVERIFIED,
            size=plain,
            seconds=time.monotonic() - started,
            path=final,
            message=""
            if verified
            else f"not verified: the archive sent no checksum{kept}"
            + ("" if job.allow_unverified else f" (--allow-unverified names it {name})"),
            details=details,
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def verify_existing(self, job: DownloadJob) -> bool | None:
        """Check a file that is already there before it is skipped, reading all of it.

        The expected plaintext SHA-256 is the sidecar's (``X.bam.sha256``), else the DRS
        checksum (one ``GET /objects/{accession}``). An encrypted ``.c4gh`` file is
        decrypted in memory (every segment authenticated) and its plaintext SHA-256
        compared; a decrypted file's SHA-256 is compared directly. A file that passes is
        vouched for in its sidecar, so the next run skips it without reading it.

        Returns:
            True if it matches, False if not (or it cannot be read or decrypted), None if
            there is no checksum to compare it with.

        Raises:
            FileNotDownloadableError, StagingTimeoutError, ServiceUnreachableError: asking
                for the DRS checksum failed.
        """
        loop = asyncio.get_running_loop()
        self._reporter.file_status(job.target.name, "verifying the existing file")
        try:
            expected = expected_checksum(job.target)
        except IntegrityError:
            expected = None
        if expected is None:
            drs = await self._stager.staged_object(job.accession)
            if drs.sha256 is None:
                return None
            expected = drs.sha256.lower()
        try:
            if job.decrypt:
                actual = await loop.run_in_executor(self._executor, file_sha256, job.target)
            else:
                actual = await loop.run_in_executor(
                    self._executor, plaintext_sha256, job.target, self._keys.secret
                )
        except (IntegrityError, KeyFileError, OSError):
            return False
        if actual != expected:
            return False
        with contextlib.suppress(OSError, ConnectorError):
            await loop.run_in_executor(self._executor, vouch_for, job.target, actual)
        return True

    def _failed(
        self, job: DownloadJob, plain: int, started: float, error: ConnectorError
    ) -> FileOutcome:
        outcome = FileOutcome(
            name=job.target.name,
            outcome=Outcome.FAILED,
            size=plain,
            seconds=time.monotonic() - started,
            message=error.message + (f" {error.hint}" if error.hint else ""),
            path=job.target,
            details={"accession": job.accession},
            error_code=error.error_code,
        )
        self._reporter.file_finished(outcome)
        return outcome

    async def open_envelope(self, accession: str) -> tuple[bytes, bytes]:
        """The file's Crypt4GH envelope for the user and the data secret in it.

        The envelope comes from ``GET /objects/{accession}/envelopes`` (contract §3.4)
        and must be exactly one well-formed header with one packet.

        Raises:
            KeyFileError: the envelope is not for the user's key.
            ServerResponseError: the envelope is malformed, or the request failed.
            ServiceUnreachableError: the service could not be reached.
        """

        async def token(force: bool) -> str:
            return await self._accessor.download_wot(accession, force_new=force)

        envelope = await self._dcs.get_envelope(accession, token)
        try:
            return envelope, open_envelope(envelope, self._keys.secret)
        except MalformedEnvelopeError as error:
            raise ServerResponseError(
                f"The download service sent a malformed Crypt4GH envelope for {accession} "
                f"({error}); nothing was downloaded.",
                hint="Try again later; if it keeps happening, contact the GHGA helpdesk.",
            ) from None
        except EnvelopeError:
            raise KeyFileError(
                f"The envelope of {accession} cannot be opened with your private key.",
                hint="Use the key pair this work package was created for.",
            ) from None

    async def _fetch(
        self,
        job: DownloadJob,
        drs: DrsObject,
        plain: int,
        temp: Path,
        envelope: bytes,
        secret: bytes,
    ) -> str:
        cipher = SegmentCipher(secret)
        digest = OrderedDigest()
        ranges = byte_ranges(drs.size, self._range_size)
        final_size = plain if job.decrypt else ENVELOPE_SIZE + drs.size
        journal = _RangeJournal(temp)
        header = {
            "accession": job.accession,
            "size": drs.size,
            "sha256": drs.sha256,
            "range_size": self._range_size,
            "decrypt": job.decrypt,
        }
        fd, done, resumed = await off_loop(
            self._executor, _open_part, temp, journal, header, final_size
        )
        if resumed:
            self._reporter.message(
                f"{job.target.name}: continuing a partial download ({len(done)} of "
                f"{len(ranges)} ranges present; checking them)."
            )
        try:
            if not job.decrypt:
                await off_loop(self._executor, pwrite_all, fd, envelope[:ENVELOPE_SIZE], 0)
            await self._fetch_ranges(job, drs, fd, cipher, digest, ranges, done, journal)
            await off_loop(self._executor, os.fsync, fd)
        finally:
            os.close(fd)
        return digest.hexdigest()

    @property
    def range_size(self) -> int:
        """Bytes of the Crypt4GH body per ranged GET (whole segments)."""
        return self._range_size

    def url_holder(self, drs: DrsObject) -> UrlHolder:
        """The presigned URL of ``drs``, renewed before it expires or after a 403."""
        return UrlHolder(drs, self._stager, self._clock)

    async def receive_range(
        self,
        accession: str,
        urls: UrlHolder,
        part: ByteRange,
        into: memoryview,
        check: Callable[[], object],
    ) -> None:
        """Fetch body bytes ``part`` into ``into``, then run ``check`` (in a thread).

        ``check`` authenticates (and decrypts, and may write) what arrived. One retry
        layer per failure kind (``adapters/retry.py``): a broken body or a failed MAC is
        fetched again after a backoff, an expired URL is renewed and fetched again at
        once, :data:`RANGE_ATTEMPTS` attempts in all; an unreachable server was already
        retried by the transport and fails the range at once.

        Raises:
            IntegrityError: the range failed Crypt4GH authentication every time.
            ServiceUnreachableError: the URL kept expiring, or the network failed.
            OSError: ``check`` could not write.
        """
        loop = asyncio.get_running_loop()
        try:
            async for attempt in self._body_retrying():
                with attempt:
                    url = await urls.get()
                    try:
                        await self._storage.get_range(url, part.start, part.stop, into)
                    except PresignedUrlExpired:
                        await urls.renew(url)
                        raise
                    await loop.run_in_executor(self._executor, check)
        except PresignedUrlExpired:
            raise ServiceUnreachableError(
                f"The download URL of {accession} kept expiring."
            ) from None
        except SegmentAuthenticationError:
            raise IntegrityError(
                f"Bytes {part.start}-{part.stop - 1} of {accession} "
                f"failed Crypt4GH authentication {RANGE_ATTEMPTS} times."
            ) from None

    async def _fetch_ranges(
        self,
        job: DownloadJob,
        drs: DrsObject,
        fd: int,
        cipher: SegmentCipher,
        digest: OrderedDigest,
        ranges: list[ByteRange],
        done: set[int],
        journal: _RangeJournal,
    ) -> None:
        urls = self.url_holder(drs)
        loop = asyncio.get_running_loop()
        # A range as received, then its plaintext: no range is longer than the body.
        half = max(1, min(self._range_size, drs.size))
        write_lock = threading.Lock()

        async def fetch(part: ByteRange, buffer: bytearray) -> None:
            # The buffer holds the range as received, then its plaintext. Ranges arrive
            # in any order; the plaintext SHA-256 takes them in order (run_parts hands
            # out a buffer before a range, so the lowest range never waits for one).
            view = memoryview(buffer)[: part.length]
            plain = memoryview(buffer)[half:][: _plain_len(part)]
            if part.part_no in done:
                present = await loop.run_in_executor(
                    self._executor, _recheck, cipher, part, view, plain, fd, job.decrypt
                )
                if present:
                    await digest.update_async(part.part_no, plain, self._executor)
                    self._reporter.advance(job.target.name, len(plain))
                    return
            await self.receive_range(
                job.accession,
                urls,
                part,
                view,
                functools.partial(
                    _check_and_write, cipher, part, view, plain, fd, job.decrypt, write_lock
                ),
            )
            await digest.update_async(part.part_no, plain, self._executor)
            await off_loop(self._executor, journal.add, part.part_no)
            self._reporter.advance(job.target.name, len(plain))

        await run_parts(
            ranges,
            fetch,
            workers=self._concurrency,
            buffers=self._buffers,
            buffer_size=2 * half,
            on_error=digest.abort,
        )


class _RangeJournal:
    """Which ranges of a ``.part`` file are complete: ``<name>.part.json`` beside it.

    A JSON header line (accession, size, checksum, range size, mode) and one line per
    written range; a torn last line is ignored.
    """

    def __init__(self, temp: Path) -> None:
        self.path = temp.with_name(temp.name + ".json")

    def resume(self, header: dict[str, object]) -> set[int] | None:
        """The finished range numbers if the journal belongs to this download, else None.

        Raises:
            OutputError: the journal is a symbolic link or not the user's own private
                file (see :func:`~ghga_connector.core.files.require_private`).
        """
        try:
            fd = open_private(self.path, os.O_RDONLY)
        except OSError:
            return None
        try:
            with os.fdopen(fd, encoding="utf-8") as handle:
                lines = handle.read().splitlines()
            if not lines or json.loads(lines[0]) != header:
                return None
        except (OSError, ValueError):
            return None
        done: set[int] = set()
        for line in lines[1:]:
            with contextlib.suppress(ValueError):
                done.add(int(line))
        return done

    def start(self, header: dict[str, object]) -> None:
        """Begin a new journal: the header goes to a temporary name, fsynced, renamed.

        Raises:
            OutputError: the journal name is a symbolic link.
        """
        write_atomic(self.path, (json.dumps(header) + "\n").encode("utf-8"))

    def add(self, part_no: int) -> None:
        """Record a written range (one appended line, links not followed).

        Lines are not fsynced one by one: a line lost in a power failure only means
        the range is fetched again, and a line whose data was lost is caught on resume
        (encrypted ranges are authenticated again, decrypted ones by the final SHA-256).
        """
        append_line(self.path, f"{part_no}\n")

    def remove(self) -> None:
        """Forget the journal (download complete or discarded)."""
        with contextlib.suppress(OSError):
            self.path.unlink()


def _open_part(
    temp: Path, journal: _RangeJournal, header: dict[str, object], size: int
) -> tuple[int, set[int], bool]:
    """Open the ``.part`` file of a download: continued if its range journal matches ``header``.

    Returns the open descriptor (read-write), the range numbers already written and
    whether the file was continued. A new ``.part`` file is created exclusively, sized
    to ``size`` bytes, and its range journal started.

    Raises:
        OutputError: the ``.part`` file or its journal is a symbolic link or not the
            user's own private file.
        OSError: the file cannot be created or opened.
    """
    done = journal.resume(header) if temp.exists() else None
    if done is not None:
        return open_private(temp, os.O_RDWR), done, True
    fd = create_exclusive(temp)
    try:
        os.ftruncate(fd, size)
        journal.start(header)
    except BaseException:
        os.close(fd)
        raise
    return fd, set(), False


def _finish(job: DownloadJob, temp: Path, final: Path) -> None:
    """Rename the finished ``temp`` to ``final`` (folder fsynced), forget its range journal.

    A ``.unverified`` copy left by an earlier run goes once the target itself is there.

    Raises:
        OutputError: ``final`` is a symbolic link.
        OSError: the rename failed.
    """
    replace_file(temp, final)
    _RangeJournal(temp).remove()
    if final == job.target:
        with contextlib.suppress(FileNotFoundError):
            unverified_path(job.target).unlink()


def _output_names(job: DownloadJob) -> list[Path]:
    """Every name a download writes: final, ``.unverified``, ``.part``, journal, sidecars."""
    temp = unique_temp_path(job.target)
    names = [job.target, unverified_path(job.target), temp, _RangeJournal(temp).path]
    names.append(sidecar_path(job.target))
    if not job.decrypt:
        names.append(legacy_sidecar_path(job.target))
    return names


def _write_sidecar(job: DownloadJob, temp: Path, sha256: str | None) -> None:
    """Write the plaintext checksum beside a download, before ``temp`` is renamed.

    ``X.bam.sha256`` holds ``<hex>  X.bam`` and vouches for the final file by the
    identity of ``temp`` (:func:`vouch_for`); an older ``X.bam.c4gh.sha256`` is removed.
    With ``sha256`` None (unverified download) the stale sidecars of an encrypted
    download are removed instead, so that no checksum file claims to vouch for content
    nobody verified.
    """
    target = job.target
    if sha256 is not None:
        vouch_for(target, sha256, written=temp)
    if job.decrypt:
        return
    stale = [legacy_sidecar_path(target)]
    if sha256 is None:
        stale.append(sidecar_path(target))
    for path in stale:
        refuse_links(path)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _discard(temp: Path) -> None:
    """Remove a partial download and its journal."""
    _RangeJournal(temp).remove()
    with contextlib.suppress(OSError):
        temp.unlink()


def _recheck(
    cipher: SegmentCipher,
    part: ByteRange,
    buffer: memoryview,
    plain: memoryview,
    fd: int,
    decrypt: bool,
) -> bool:
    """Re-read a range written by an earlier run into ``plain``.

    An encrypted range is authenticated again; returns False (fetch it again) if it is
    short or fails. Decrypted ranges are taken as they are: the final SHA-256 check
    covers them.
    """
    if decrypt:
        offset = part.start // CIPHER_SEGMENT_SIZE * SEGMENT_SIZE
        return pread_into(fd, plain, offset) == len(plain)
    if pread_into(fd, buffer, ENVELOPE_SIZE + part.start) != len(buffer):
        return False
    try:
        cipher.decrypt_into(buffer, plain)
    except SegmentAuthenticationError:
        return False
    return True


def _plain_len(part: ByteRange) -> int:
    return part.length - (-(-part.length // CIPHER_SEGMENT_SIZE)) * (
        CIPHER_SEGMENT_SIZE - SEGMENT_SIZE
    )


def _check_and_write(
    cipher: SegmentCipher,
    part: ByteRange,
    data: memoryview,
    plain: memoryview,
    fd: int,
    decrypt: bool,
    write_lock: threading.Lock,
) -> None:
    """Authenticate and decrypt one segment-aligned range into ``plain``, then write it.

    The written range is handed to the disk at once (:func:`start_writeback`).
    ``write_lock`` serialises the writes of one file's threads: a thread waiting for it
    sleeps, where two threads writing the same file at once make the kernel spin on the
    file's lock (measured: ~4 % of a download's CPU).

    Raises:
        SegmentAuthenticationError: a segment is damaged (nothing is written).
        OSError: the write failed (e.g. the disk is full).
    """
    cipher.decrypt_into(data, plain)
    written, offset = (
        (plain, part.start // CIPHER_SEGMENT_SIZE * SEGMENT_SIZE)
        if decrypt
        else (data, ENVELOPE_SIZE + part.start)
    )
    with write_lock:
        pwrite_all(fd, written, offset)
    start_writeback(fd, offset, len(written))
