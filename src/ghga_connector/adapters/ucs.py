"""The upload controller service client (contract §3.3). Each call takes its WOT source."""

from __future__ import annotations

import contextlib

import httpx
from pydantic import ValidationError

from ghga_connector.adapters.request import JSON_HEADERS, send
from ghga_connector.adapters.responses import json_string, request_id_of, url_host
from ghga_connector.errors import ServerResponseError, UploadRejectedError
from ghga_connector.models import TokenSource, UploadChecksums, UploadListItem

__all__ = ["UcsClient"]


class UcsClient:
    """The upload controller service (contract §3.3).

    Implements :class:`ghga_connector.core.ports.UcsPort`.
    """

    def __init__(self, client: httpx.AsyncClient, base_url: str) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._target = f"the GHGA upload service at {url_host(self._base)}"

    async def list_uploads(self, box_id: str, token: TokenSource) -> list[UploadListItem]:
        """All uploads in a file upload box, paging ``skip``/``limit`` (contract §3.3(a)).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: non-200, or a listing that is not one.
        """
        items: list[UploadListItem] = []
        seen = 0
        while True:
            response = await send(
                self._client,
                "GET",
                f"{self._base}/boxes/{box_id}/uploads",
                target=self._target,
                action="Listing the upload box",
                ok=(200,),
                token=token,
                params={"skip": seen, "limit": 100},
                headers=JSON_HEADERS,
            )
            try:
                body = response.json()
                raw = body.get("items", [])
                total = int(body.get("total_count", 0))
                if not isinstance(raw, list):
                    raise TypeError
            except (ValueError, TypeError, AttributeError):
                raise ServerResponseError(
                    "The upload service sent an unexpected listing.",
                    request_id=request_id_of(response),
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
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: the server refused (status and ``exception_id`` attached).
            ServerResponseError: an unexpected body, or another alias than ``alias``.
        """
        response = await send(
            self._client,
            "POST",
            f"{self._base}/boxes/{box_id}/uploads",
            target=self._target,
            action=f"Starting the upload of {alias!r}",
            ok=(201,),
            token=token,
            error_class=UploadRejectedError,
            json={
                "alias": alias,
                "decrypted_size": decrypted_size,
                "encrypted_size": encrypted_size,
                "part_size": part_size,
                "overwrite": overwrite,
            },
            headers=JSON_HEADERS,
            extensions={"ghga_retry": False},
        )
        try:
            body = response.json()
            file_id, storage_alias = body["file_id"], body["storage_alias"]
            if not (isinstance(file_id, str) and file_id and isinstance(storage_alias, str)):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ServerResponseError(
                f"The upload service sent an unexpected answer when starting {alias!r}.",
                request_id=request_id_of(response),
            ) from None
        if body.get("alias") != alias:
            raise ServerResponseError(
                f"The server created the upload under another alias than {alias!r}.",
                request_id=request_id_of(response),
            )
        return file_id, storage_alias

    async def get_part_url(
        self, box_id: str, file_id: str, part_no: int, token: TokenSource
    ) -> str:
        """``GET /boxes/{box}/uploads/{file_id}/parts/{part_no}``: a presigned PUT URL.

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: non-200.
            ServerResponseError: the body is not a JSON string.
        """
        response = await send(
            self._client,
            "GET",
            f"{self._base}/boxes/{box_id}/uploads/{file_id}/parts/{part_no}",
            target=self._target,
            action=f"Requesting the URL of part {part_no}",
            ok=(200,),
            token=token,
            error_class=UploadRejectedError,
            headers=JSON_HEADERS,
        )
        return json_string(response, "Part URL")

    async def complete_upload(
        self, box_id: str, file_id: str, checksums: UploadChecksums, token: TokenSource
    ) -> None:
        """``PATCH /boxes/{box}/uploads/{file_id}`` with the checksums (idempotent).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: non-204 (e.g. a checksum mismatch).
        """
        await send(
            self._client,
            "PATCH",
            f"{self._base}/boxes/{box_id}/uploads/{file_id}",
            target=self._target,
            action="Completing the upload",
            ok=(204,),
            token=token,
            error_class=UploadRejectedError,
            json={
                "decrypted_sha256": checksums.decrypted_sha256,
                "encrypted_md5": checksums.encrypted_md5,
                "encrypted_parts_md5": checksums.encrypted_parts_md5,
                "encrypted_parts_sha256": checksums.encrypted_parts_sha256,
            },
            headers=JSON_HEADERS,
        )

    async def delete_upload(self, box_id: str, file_id: str, token: TokenSource) -> None:
        """``DELETE /boxes/{box}/uploads/{file_id}`` (idempotent).

        Raises:
            ServiceUnreachableError: the service cannot be reached.
            UploadRejectedError: non-204.
        """
        await send(
            self._client,
            "DELETE",
            f"{self._base}/boxes/{box_id}/uploads/{file_id}",
            target=self._target,
            action="Removing the upload",
            ok=(204,),
            token=token,
            error_class=UploadRejectedError,
            headers=JSON_HEADERS,
        )
