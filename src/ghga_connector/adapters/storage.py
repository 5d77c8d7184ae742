"""S3 through presigned URLs (contract §3.5). URLs are never logged or shown."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Protocol

import httpx

from ghga_connector.adapters.responses import network_errors, url_host
from ghga_connector.errors import BodyBrokenError, PresignedUrlExpired, ServerResponseError

__all__ = ["ObjectStorageClient", "RateFloor"]


@dataclass(frozen=True)
class RateFloor:
    """The least progress a download range must make.

    Set by ``min_download_rate`` (``rate``, bytes/s) and ``min_download_rate_window``
    (``window``, seconds).
    Every ``window`` seconds of a range must bring ``rate * window`` bytes of its body
    (or its end). Time spent before the body (connecting, waiting for the head, interim
    ``1xx`` heads) counts against the first window. A range that falls short is
    abandoned and raised as :class:`BodyBrokenError`, which the range loop retries like
    a broken body; the read timeout alone never fires on a server that trickles a byte
    now and then.
    """

    rate: int = 64 * 1024
    window: float = 60.0

    @property
    def quota(self) -> int:
        """Bytes each window must bring."""
        return max(1, int(self.rate * self.window))


class _ProgressDeadline:
    """Moves an :func:`asyncio.timeout` scope a window further each time a quota arrived."""

    def __init__(self, floor: RateFloor) -> None:
        self._floor = floor
        self._scope: asyncio.Timeout | None = None
        self._since = 0

    def arm(self, scope: asyncio.Timeout) -> None:
        self._scope = scope

    def advance(self, nbytes: int) -> None:
        """Count ``nbytes`` of body; a full quota starts a new window."""
        self._since += nbytes
        if self._since >= self._floor.quota and self._scope is not None:
            self._since = 0
            self._scope.reschedule(asyncio.get_running_loop().time() + self._floor.window)


class PartBody(Protocol):
    """A part produced while it is sent: ``size`` bytes, re-iterable from the start.

    ``core.ports.PartBody`` restated structurally (adapters do not import the core).
    """

    @property
    def size(self) -> int:
        """Bytes in the part."""
        ...

    def __aiter__(self) -> AsyncIterator[memoryview]:
        """The part's bytes from the start, in chunks."""
        ...


class _BufferStream(httpx.AsyncByteStream):
    """A request body sent from a buffer in 1 MiB slices, re-sendable on retry."""

    CHUNK = 1024 * 1024

    def __init__(self, data: memoryview) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Views, not copies: the HTTP layer copies each slice once into its send buffer.
        for start in range(0, len(self._data), self.CHUNK):
            yield self._data[start : start + self.CHUNK]  # type: ignore[misc]


class _PartBodyStream(httpx.AsyncByteStream):
    """A request body produced while it is sent (:class:`PartBody`), in 1 MiB slices.

    Each iteration (a retry of the HTTP layer) produces the part again from the start.
    """

    def __init__(self, body: PartBody) -> None:
        self._body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._body:
            for start in range(0, len(chunk), _BufferStream.CHUNK):
                yield chunk[start : start + _BufferStream.CHUNK]  # type: ignore[misc]


_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", re.IGNORECASE)


def _check_content_range(response: httpx.Response, start: int, stop: int, url: str) -> None:
    """A 206 must carry the requested range: ``Content-Range: bytes start-(stop-1)/total``.

    Any other range (or none) is answered as a failed attempt, never taken as data.

    Raises:
        BodyBrokenError: the range differs; the range loop fetches it again.
    """
    header = response.headers.get("Content-Range", "")
    match = _CONTENT_RANGE.fullmatch(header)
    if match is None or (int(match[1]), int(match[2])) != (start, stop - 1):
        got = f"bytes {match[1]}-{match[2]}" if match else "no valid Content-Range"
        raise BodyBrokenError(
            f"The object storage at {url_host(url)} answered a request for bytes "
            f"{start}-{stop - 1} with {got}.",
            hint="Run the same command again; if it keeps happening, contact the GHGA helpdesk.",
        )


class ObjectStorageClient:
    """S3 through presigned URLs (contract §3.5). URLs are never logged or shown.

    Implements :class:`ghga_connector.core.ports.ObjectStoragePort`.
    """

    def __init__(self, client: httpx.AsyncClient, floor: RateFloor | None = None) -> None:
        self._client = client
        self._floor = floor or RateFloor()

    async def put_part(self, url: str, data: memoryview | bytes | PartBody) -> str | None:
        """``PUT`` one part; returns the ETag S3 reports (without quotes), if any.

        ``data`` is a buffer, or a :class:`PartBody` produced while it is sent.

        Raises:
            PresignedUrlExpired: 403.
            ServiceUnreachableError: network failure after retries.
            ServerResponseError: any other non-200 status.
        """
        with network_errors(f"the object storage at {url_host(url)}"):
            if isinstance(data, memoryview | bytes):
                stream: httpx.AsyncByteStream = _BufferStream(memoryview(data))
                size = len(data)
            else:
                stream, size = _PartBodyStream(data), data.size
            response = await self._client.put(
                url, content=stream, headers={"Content-Length": str(size)}
            )
        if response.status_code == 403:
            raise PresignedUrlExpired
        if response.status_code != 200:
            raise ServerResponseError(
                f"The object storage refused a part (HTTP {response.status_code}).",
                status_code=response.status_code,
            )
        etag = response.headers.get("ETag")
        return etag.strip('"') if etag else None

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        """Fetch bytes ``[start, stop)`` into ``into`` (exactly ``stop - start`` bytes).

        Raises:
            PresignedUrlExpired: 403.
            ServiceUnreachableError: no answer after the transport's retries.
            BodyBrokenError: the body broke off or was short, or the range made less
                progress than the :class:`RateFloor` (retry the range).
            ServerResponseError: another status, or too many bytes.
        """
        expected = stop - start
        deadline = _ProgressDeadline(self._floor)
        try:
            async with asyncio.timeout(self._floor.window) as scope:
                deadline.arm(scope)
                received = await self._get_range(url, start, stop, into, deadline)
        except TimeoutError:
            raise BodyBrokenError(
                f"The download from {url_host(url)} made less progress than "
                f"{self._floor.rate} bytes/s over {self._floor.window:g} s; trying the range again."
            ) from None
        if received != expected:
            raise BodyBrokenError(
                f"The download from {url_host(url)} broke off after {received} of {expected} bytes."
            )

    async def _get_range(
        self, url: str, start: int, stop: int, into: memoryview, deadline: _ProgressDeadline
    ) -> int:
        expected = stop - start
        target = f"the object storage at {url_host(url)}"
        with network_errors(target):
            async with self._client.stream(
                "GET",
                url,
                headers={"Range": f"bytes={start}-{stop - 1}", "Cache-Control": "no-store"},
                extensions={
                    "ghga_stream": True,
                    "ghga_into": into[:expected],
                    "ghga_progress": deadline.advance,
                },
            ) as response:
                if response.status_code == 403:
                    raise PresignedUrlExpired
                if response.status_code not in (200, 206):
                    raise ServerResponseError(
                        f"The object storage refused a download (HTTP {response.status_code}).",
                        status_code=response.status_code,
                    )
                if response.status_code == 200 and start != 0:
                    raise ServerResponseError("The object storage ignored the byte range.")
                if response.status_code == 206:
                    _check_content_range(response, start, stop, url)
                if "ghga_received" in response.extensions:
                    # Received in place by adapters/receive.py.
                    received = int(response.extensions["ghga_received"])
                    if response.extensions.get("ghga_excess") and response.status_code == 206:
                        raise ServerResponseError("The object storage sent too many bytes.")
                    failure = response.extensions.get("ghga_body_error")
                    if failure:
                        raise BodyBrokenError(
                            f"The download from {url_host(url)} broke off after {received} of "
                            f"{expected} bytes ({failure})."
                        )
                    return received
                return await _receive(response, into, expected, url, deadline.advance)


async def _receive(
    response: httpx.Response,
    into: memoryview,
    expected: int,
    url: str,
    progress: Callable[[int], None],
) -> int:
    """Copy a streamed body into ``into``; the bytes received (at most ``expected``).

    Raises:
        BodyBrokenError: the connection broke off.
        ServerResponseError: a 206 with more than ``expected`` bytes.
    """
    received = 0
    try:
        async for chunk in response.aiter_raw():
            end = received + len(chunk)
            if end > expected:
                if response.status_code == 200:
                    chunk = chunk[: expected - received]
                    end = expected
                else:
                    raise ServerResponseError("The object storage sent too many bytes.")
            into[received:end] = chunk
            progress(end - received)
            received = end
            if received == expected and response.status_code == 200:
                break
    except httpx.TransportError as error:
        raise BodyBrokenError(
            f"The download from {url_host(url)} broke off after {received} of "
            f"{expected} bytes ({type(error).__name__})."
        ) from None
    return received
