"""The work package service client (contract §2.2, §3.1), authenticated with the WPAT."""

from __future__ import annotations

from typing import Any

import httpx
from pydantic import ValidationError

from ghga_connector.adapters.request import max_age, send
from ghga_connector.adapters.responses import (
    access_denied,
    json_string,
    request_id_of,
    url_host,
)
from ghga_connector.errors import ServerResponseError
from ghga_connector.models import UploadWorkType, WorkPackage

__all__ = ["WpsClient"]


def _refuse_403(response: httpx.Response) -> None:
    if response.status_code == 403:
        raise access_denied(response)


class WpsClient:
    """The work package service, authenticated with the plain WPAT (contract §2.2).

    Implements :class:`ghga_connector.core.ports.WpsPort`.
    """

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, work_package_id: str, wpat: str
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._id = work_package_id
        self._headers = {"Authorization": f"Bearer {wpat}"}
        self._target = f"the GHGA work package service at {url_host(self._base)}"

    def __repr__(self) -> str:
        return f"WpsClient(base={self._base!r}, work_package_id={self._id!r})"

    async def _send(
        self, method: str, url: str, *, action: str, ok: int, json: Any = None
    ) -> httpx.Response:
        return await send(
            self._client,
            method,
            url,
            target=self._target,
            action=action,
            ok=(ok,),
            check=_refuse_403,
            json=json,
            headers=self._headers,
        )

    async def get_work_package(self) -> WorkPackage:
        """``GET {wps}/work-packages/{id}``.

        Raises:
            AccessDeniedError: the WPAT is wrong, expired or revoked (403).
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer.
        """
        response = await self._send(
            "GET",
            f"{self._base}/work-packages/{self._id}",
            action="Reading the work package",
            ok=200,
        )
        try:
            return WorkPackage.model_validate(response.json())
        except (ValidationError, ValueError):
            raise ServerResponseError(
                "The work package service sent an unexpected body.",
                request_id=request_id_of(response),
            ) from None

    async def create_download_wot(self, accession: str) -> tuple[str, float | None]:
        """``POST .../files/{accession}/work-order-tokens``: the sealed WOT and its max-age.

        Raises:
            AccessDeniedError: 403 (token, or the file is not in the work package).
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer or body.
        """
        response = await self._send(
            "POST",
            f"{self._base}/work-packages/{self._id}/files/{accession}/work-order-tokens",
            action=f"Requesting access to {accession}",
            ok=201,
        )
        return json_string(response, f"The work order token for {accession}"), max_age(response)

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
            ServiceUnreachableError: the service cannot be reached.
            ServerResponseError: any other unexpected answer or body.
        """
        response = await self._send(
            "POST",
            f"{self._base}/work-packages/{self._id}/boxes/{box_id}/work-order-tokens",
            action=f"Requesting a {work_type!r} work order token",
            ok=201,
            json={"work_type": work_type, "alias": alias, "file_id": file_id},
        )
        return json_string(response, "Work order token"), max_age(response)
