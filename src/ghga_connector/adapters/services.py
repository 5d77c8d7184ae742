"""Clients of the GHGA services. URLs are built here and only here.

One class per service, each taking the shared ``httpx.AsyncClient`` and its base URL:

* :class:`WkvsClient`: well-known value service (contract §1.1);
* :class:`WpsClient`: work package service (contract §3.1);
* :class:`UcsClient`: upload controller service (contract §3.3);
* :class:`DcsClient`: download controller service, DRS objects (contract §3.4);
* :class:`ObjectStorageClient`: S3 through presigned URLs (contract §3.5).

Work order tokens are attached by :class:`WorkOrderTokenAuth`, which fetches a new one
and resends once when the service answers 401 or 403 (expired or rejected token).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import httpx
from pydantic import ValidationError

from ghga_connector.adapters.responses import (
    access_denied,
    json_string,
    network_errors,
    server_error,
    url_host,
)
from ghga_connector.adapters.retry import staging_wait
from ghga_connector.errors import (
    FileNotDownloadableError,
    ServerResponseError,
    ServiceUnreachableError,
    UploadRejectedError,
)
from ghga_connector.models import (
    DrsObject,
    UploadChecksums,
    UploadListItem,
    WellKnownValues,
    WorkPackage,
)

__all__ = [
    "BodyBrokenError",
    "DcsClient",
    "ObjectStorageClient",
    "PresignedUrlExpired",
    "Staging",
    "UcsClient",
    "WkvsClient",
    "WorkOrderTokenAuth",
    "WpsClient",
]

JSON_HEADERS = {"Accept": "application/json", "Content-Type": "application/json"}
UploadWorkType = Literal["create", "upload", "close", "delete", "view"]
TokenSource = Callable[[bool], Awaitable[str]]


def _max_age(response: httpx.Response) -> float | None:
    """``max-age`` of a ``Cache-Control`` response header, in seconds."""
    for directive in response.headers.get("Cache-Control", "").split(","):
        name, _, value = directive.strip().partition("=")
        if name.lower() == "max-age":
            try:
                return float(value)
            except ValueError:
                return None
    return None


class WorkOrderTokenAuth(httpx.Auth):
    """Attach ``Authorization: Bearer <WOT>``; on 401/403 fetch a new WOT and resend once.

    ``token`` is called with ``force_new=False`` first and ``True`` for the retry.
    """

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """The httpx authentication flow (see ``httpx.Auth``)."""
        request.headers["Authorization"] = f"Bearer {await self._token(False)}"
        response = yield request
        if response.status_code in (401, 403):
            await response.aread()
            request.headers["Authorization"] = f"Bearer {await self._token(True)}"
            yield request


class WkvsClient:
    """The well-known value service."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")

    async def get_values(self) -> WellKnownValues:
        """``GET {wkvs}/values``.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: non-200, or a required value is missing.
        """
        with network_errors(f"the GHGA well-known value service at {url_host(self._base)}"):
            response = await self._client.get(f"{self._base}/values")
        if response.status_code != 200:
            raise server_error(response, "Reading the GHGA service configuration")
        try:
            return WellKnownValues.model_validate(response.json())
        except (ValidationError, ValueError) as error:
            missing = (
                ", ".join(str(e["loc"][0]) for e in error.errors())
                if isinstance(error, ValidationError)
                else "body"
            )
            raise ServerResponseError(
                f"The well-known value service lacks required values ({missing}).",
                hint="Check 'wkvs_api_url' in your configuration.",
            ) from None


class WpsClient:
    """The work package service, authenticated with the plain WPAT (contract §2.2)."""

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, work_package_id: str, wpat: str
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._id = work_package_id
        self._headers = {"Authorization": f"Bearer {wpat}"}

    def __repr__(self) -> str:
        return f"WpsClient(base={self._base!r}, work_package_id={self._id!r})"

    async def _send(self, method: str, url: str, json: Any = None) -> httpx.Response:
        with network_errors(f"the GHGA work package service at {url_host(self._base)}"):
            response = await self._client.request(method, url, json=json, headers=self._headers)
        if response.status_code == 403:
            raise access_denied(response)
        return response

    async def get_work_package(self) -> WorkPackage:
        """``GET {wps}/work-packages/{id}``.

        Raises:
            AccessDeniedError: the WPAT is wrong, expired or revoked (403).
            ServerResponseError: any other unexpected answer.
        """
        response = await self._send("GET", f"{self._base}/work-packages/{self._id}")
        if response.status_code != 200:
            raise server_error(response, "Reading the work package")
        try:
            return WorkPackage.model_validate(response.json())
        except (ValidationError, ValueError):
            raise ServerResponseError("The work package service sent an unexpected body.") from None

    async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
        """``POST .../files/{accession}/work-order-tokens``: the sealed WOT and its max-age.

        Raises:
            AccessDeniedError: 403 (token, or the file is not in the work package).
        """
        response = await self._send(
            "POST", f"{self._base}/work-packages/{self._id}/files/{accession}/work-order-tokens"
        )
        if response.status_code != 201:
            raise server_error(response, f"Requesting access to {accession}")
        return json_string(response, "Work order token"), _max_age(response)

    async def create_upload_wot(
        self,
        box_id: str,
        work_type: UploadWorkType,
        *,
        alias: str | None = None,
        file_id: str | None = None,
    ) -> tuple[str, float | None]:
        """``POST .../boxes/{rdub_id}/work-order-tokens``: the sealed WOT and its max-age.

        ``box_id`` is the research data upload box id (contract §2.3).

        Raises:
            AccessDeniedError: 403.
        """
        response = await self._send(
            "POST",
            f"{self._base}/work-packages/{self._id}/boxes/{box_id}/work-order-tokens",
            json={"work_type": work_type, "alias": alias, "file_id": file_id},
        )
        if response.status_code != 201:
            raise server_error(response, f"Requesting a {work_type!r} work order token")
        return json_string(response, "Work order token"), _max_age(response)


class UcsClient:
    """The upload controller service (contract §3.3). Each call takes its WOT source."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._target = f"the GHGA upload service at {url_host(self._base)}"

    async def list_uploads(self, box_id: str, token: TokenSource) -> list[UploadListItem]:
        """All uploads in a file upload box, paging ``skip``/``limit`` (contract §3.3(a))."""
        items: list[UploadListItem] = []
        seen = 0
        while True:
            with network_errors(self._target):
                response = await self._client.get(
                    f"{self._base}/boxes/{box_id}/uploads",
                    params={"skip": seen, "limit": 100},
                    headers=JSON_HEADERS,
                    auth=WorkOrderTokenAuth(token),
                )
            if response.status_code != 200:
                raise server_error(response, "Listing the upload box")
            try:
                body = response.json()
                raw = body.get("items", [])
                total = int(body.get("total_count", 0))
                if not isinstance(raw, list):
                    raise TypeError
            except (ValueError, TypeError, AttributeError):
                raise ServerResponseError(
                    "The upload service sent an unexpected listing."
                ) from None
            seen += len(raw)
            for item in raw:
                # One malformed item must not hide the others: it is left out, so a
                # file of that alias is created anew and the server refuses it alone.
                with contextlib.suppress(ValidationError, TypeError, ValueError):
                    items.append(UploadListItem.model_validate(item))
            if not raw or seen >= total:
                return items

    async def create_upload(
        self,
        box_id: str,
        token: TokenSource,
        *,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        overwrite: bool,
    ) -> tuple[str, str]:
        """``POST /boxes/{box_id}/uploads``: returns ``(file_id, storage_alias)``.

        Sent once (not retried by the transport): the caller decides after a failure.

        Raises:
            UploadRejectedError: the server refused (status and ``exception_id`` attached).
        """
        with network_errors(self._target):
            response = await self._client.post(
                f"{self._base}/boxes/{box_id}/uploads",
                json={
                    "alias": alias,
                    "decrypted_size": decrypted_size,
                    "encrypted_size": encrypted_size,
                    "part_size": part_size,
                    "overwrite": overwrite,
                },
                headers=JSON_HEADERS,
                auth=WorkOrderTokenAuth(token),
                extensions={"ghga_retry": False},
            )
        if response.status_code != 201:
            raise server_error(
                response, f"Starting the upload of {alias!r}", error_class=UploadRejectedError
            )
        try:
            body = response.json()
            file_id, storage_alias = str(body["file_id"]), str(body["storage_alias"])
        except (ValueError, KeyError, TypeError):
            raise ServerResponseError(
                f"The upload service sent an unexpected answer when starting {alias!r}."
            ) from None
        if body.get("alias") != alias:
            raise ServerResponseError(
                f"The server created the upload under another alias than {alias!r}."
            )
        return file_id, storage_alias

    async def get_part_url(
        self, box_id: str, file_id: str, part_no: int, token: TokenSource
    ) -> str:
        """``GET /boxes/{box}/uploads/{file_id}/parts/{part_no}``: a presigned PUT URL."""
        with network_errors(self._target):
            response = await self._client.get(
                f"{self._base}/boxes/{box_id}/uploads/{file_id}/parts/{part_no}",
                headers=JSON_HEADERS,
                auth=WorkOrderTokenAuth(token),
            )
        if response.status_code != 200:
            raise server_error(
                response, f"Requesting the URL of part {part_no}", error_class=UploadRejectedError
            )
        return json_string(response, "Part URL")

    async def complete_upload(
        self, box_id: str, file_id: str, checksums: UploadChecksums, token: TokenSource
    ) -> None:
        """``PATCH /boxes/{box}/uploads/{file_id}`` with the checksums (idempotent)."""
        with network_errors(self._target):
            response = await self._client.patch(
                f"{self._base}/boxes/{box_id}/uploads/{file_id}",
                json={
                    "decrypted_sha256": checksums.decrypted_sha256,
                    "encrypted_md5": checksums.encrypted_md5,
                    "encrypted_parts_md5": checksums.encrypted_parts_md5,
                    "encrypted_parts_sha256": checksums.encrypted_parts_sha256,
                },
                headers=JSON_HEADERS,
                auth=WorkOrderTokenAuth(token),
            )
        if response.status_code != 204:
            raise server_error(response, "Completing the upload", error_class=UploadRejectedError)

    async def delete_upload(self, box_id: str, file_id: str, token: TokenSource) -> None:
        """``DELETE /boxes/{box}/uploads/{file_id}`` (idempotent)."""
        with network_errors(self._target):
            response = await self._client.delete(
                f"{self._base}/boxes/{box_id}/uploads/{file_id}",
                headers=JSON_HEADERS,
                auth=WorkOrderTokenAuth(token),
            )
        if response.status_code != 204:
            raise server_error(response, "Removing the upload", error_class=UploadRejectedError)


class Staging:
    """A DRS object that is not staged yet: ask again after ``retry_after`` seconds."""

    def __init__(self, retry_after: float) -> None:
        self.retry_after = retry_after


class DcsClient:
    """The download controller service: DRS objects and envelopes (contract §3.4)."""

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._target = f"the GHGA download service at {url_host(self._base)}"

    async def get_drs_object(self, accession: str, token: TokenSource) -> DrsObject | Staging:
        """``GET /objects/{accession}``: the DRS object (200) or :class:`Staging` (202).

        Raises:
            FileNotDownloadableError: 404 and other refusals.
        """
        with network_errors(self._target):
            response = await self._client.get(
                f"{self._base}/objects/{accession}",
                headers={**JSON_HEADERS, "Cache-Control": "no-store"},
                auth=WorkOrderTokenAuth(token),
                timeout=httpx.Timeout(310.0, connect=10.0),
            )
        if response.status_code == 202:
            return Staging(staging_wait(response.headers.get("Retry-After")))
        if response.status_code != 200:
            raise server_error(
                response, f"Requesting {accession}", error_class=FileNotDownloadableError
            )
        return _drs_object(accession, response)

    async def get_envelope(self, accession: str, token: TokenSource) -> bytes:
        """``GET /objects/{accession}/envelopes``: the 124-byte Crypt4GH envelope.

        The body is a bare JSON string (base64); ``{"content": ...}`` and unquoted base64
        are accepted too (contract §7 item 1).
        """
        with network_errors(self._target):
            response = await self._client.get(
                f"{self._base}/objects/{accession}/envelopes",
                headers=JSON_HEADERS,
                auth=WorkOrderTokenAuth(token),
            )
        if response.status_code != 200:
            raise server_error(
                response,
                f"Requesting the envelope of {accession}",
                error_class=FileNotDownloadableError,
            )
        text = response.text.strip()
        try:
            value = response.json()
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                text = value
        except ValueError:
            pass
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ServerResponseError(f"The envelope of {accession} is not valid base64.") from None


_SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")


def _drs_object(accession: str, response: httpx.Response) -> DrsObject:
    """Read a DRS object body (contract §3.4(a)), checking every field it uses.

    A missing ``sha-256`` checksum gives ``sha256=None`` (the download is then reported
    unverified); a present but malformed one is an error, never "no checksum".

    Raises:
        ServerResponseError: naming the field, never its value (it may hold a URL).
    """

    def malformed(field: str) -> ServerResponseError:
        return ServerResponseError(
            f"The download service sent an unusable description of {accession} "
            f"(field {field!r}); this file is skipped.",
            hint="Try again later; if it keeps happening, contact the GHGA helpdesk.",
        )

    try:
        body = response.json()
    except ValueError:
        raise malformed("body") from None
    if not isinstance(body, dict):
        raise malformed("body")
    methods = body.get("access_methods")
    if not isinstance(methods, list):
        raise malformed("access_methods")
    s3 = [m for m in methods if isinstance(m, dict) and m.get("type") == "s3"]
    if not s3:
        raise ServerResponseError(f"The download service offers no S3 access to {accession}.")
    access_url = s3[0].get("access_url")
    url = access_url.get("url") if isinstance(access_url, dict) else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise malformed("access_methods[].access_url.url")
    size = body.get("size")
    if isinstance(size, str) and size.isdigit():
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise malformed("size")
    checksums = body.get("checksums", [])
    if not isinstance(checksums, list):
        raise malformed("checksums")
    sha256: str | None = None
    for entry in checksums:
        if not isinstance(entry, dict):
            raise malformed("checksums[]")
        if str(entry.get("type", "")).lower() in ("sha-256", "sha256"):
            value = entry.get("checksum")
            if not isinstance(value, str) or not _SHA256_HEX.fullmatch(value):
                raise malformed("checksums[].checksum")
            sha256 = value.lower()
    try:
        return DrsObject(
            accession=accession,
            download_url=url,
            size=size,
            sha256=sha256,
            max_age=_max_age(response),
        )
    except ValidationError:
        raise malformed("body") from None


class _BufferStream(httpx.AsyncByteStream):
    """A request body sent from a buffer in 1 MiB slices, re-sendable on retry."""

    CHUNK = 1024 * 1024

    def __init__(self, data: memoryview) -> None:
        self._data = data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Views, not copies: the HTTP layer copies each slice once into its send buffer.
        for start in range(0, len(self._data), self.CHUNK):
            yield self._data[start : start + self.CHUNK]  # type: ignore[misc]


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


class PresignedUrlExpired(Exception):
    """S3 answered 403 to a presigned URL: it expired; get a new one."""


class BodyBrokenError(ServiceUnreachableError):
    """An object body broke off after its headers arrived (retried per range, with backoff)."""


class ObjectStorageClient:
    """S3 through presigned URLs (contract §3.5). URLs are never logged or shown."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def put_part(self, url: str, data: memoryview | bytes) -> str | None:
        """``PUT`` one part; returns the ETag S3 reports (without quotes), if any.

        Raises:
            PresignedUrlExpired: 403.
            ServiceUnreachableError: network failure after retries.
            ServerResponseError: any other non-200 status.
        """
        with network_errors(f"the object storage at {url_host(url)}"):
            response = await self._client.put(
                url,
                content=_BufferStream(memoryview(data)),
                headers={"Content-Length": str(len(data))},
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
            BodyBrokenError: the body broke off or was short (retry the range).
            ServerResponseError: another status, or too many bytes.
        """
        expected = stop - start
        target = f"the object storage at {url_host(url)}"
        with network_errors(target):
            async with self._client.stream(
                "GET",
                url,
                headers={"Range": f"bytes={start}-{stop - 1}", "Cache-Control": "no-store"},
                extensions={"ghga_stream": True},
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
                        received = end
                        if received == expected and response.status_code == 200:
                            break
                except httpx.TransportError as error:
                    raise BodyBrokenError(
                        f"The download from {url_host(url)} broke off after {received} of "
                        f"{expected} bytes ({type(error).__name__})."
                    ) from None
        if received != expected:
            raise BodyBrokenError(
                f"The download from {url_host(url)} broke off after {received} of {expected} bytes."
            )
