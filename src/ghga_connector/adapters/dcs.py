"""The download controller service client: DRS objects and envelopes (contract §3.4)."""

from __future__ import annotations

import base64
import binascii
import re

import httpx
from pydantic import ValidationError

from ghga_connector.adapters.request import JSON_HEADERS, max_age, send
from ghga_connector.adapters.responses import request_id_of, url_host
from ghga_connector.errors import FileNotDownloadableError, ServerResponseError
from ghga_connector.models import DrsObject, Staging, TokenSource
from ghga_connector.retrying import staging_wait

__all__ = ["DcsClient"]


class DcsClient:
    """The download controller service: DRS objects and envelopes (contract §3.4).

    Implements :class:`ghga_connector.core.ports.DcsPort`.
    """

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._target = f"the GHGA download service at {url_host(self._base)}"

    async def get_drs_object(self, accession: str, token: TokenSource) -> DrsObject | Staging:
        """``GET /objects/{accession}``: the DRS object (200) or :class:`Staging` (202).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            FileNotDownloadableError: 404 and other refusals.
            ServerResponseError: an unusable DRS object body.
        """
        response = await send(
            self._client,
            "GET",
            f"{self._base}/objects/{accession}",
            target=self._target,
            action=f"Requesting {accession}",
            ok=(200, 202),
            token=token,
            error_class=FileNotDownloadableError,
            headers={**JSON_HEADERS, "Cache-Control": "no-store"},
            timeout=httpx.Timeout(310.0, connect=10.0),
        )
        if response.status_code == 202:
            return Staging(staging_wait(response.headers.get("Retry-After")))
        return _drs_object(accession, response)

    async def get_envelope(self, accession: str, token: TokenSource) -> bytes:
        """``GET /objects/{accession}/envelopes``: the 124-byte Crypt4GH envelope.

        The body is a bare JSON string (base64); ``{"content": ...}`` and unquoted base64
        are accepted too (contract §7 item 1).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            FileNotDownloadableError: non-200.
            ServerResponseError: the body is not base64.
        """
        response = await send(
            self._client,
            "GET",
            f"{self._base}/objects/{accession}/envelopes",
            target=self._target,
            action=f"Requesting the envelope of {accession}",
            ok=(200,),
            token=token,
            error_class=FileNotDownloadableError,
            headers=JSON_HEADERS,
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
            raise ServerResponseError(
                f"The envelope of {accession} is not valid base64.",
                request_id=request_id_of(response),
            ) from None


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
            request_id=request_id_of(response),
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
        raise ServerResponseError(
            f"The download service offers no S3 access to {accession}.",
            request_id=request_id_of(response),
        )
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
            max_age=max_age(response),
        )
    except ValidationError:
        raise malformed("body") from None
