"""The work package accessor: WPAT → work package details and work order tokens.

Work order tokens (WOTs) arrive sealed to the user's key (contract §2.3); they are
opened here, their ``user_public_crypt4gh_key`` claim is checked against the user's key,
and they are cached for the server's ``Cache-Control: max-age`` minus a safety margin.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from typing import Any

from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.sealed import SealedBoxError, open_sealed_b64
from ghga_connector.core.ports import UcsPort, WorkPackageAccessorBase, WpsPort
from ghga_connector.errors import KeyFileError, ServerResponseError, UserInputError
from ghga_connector.models import UploadListItem, UploadWorkType, WorkPackage

__all__ = ["WOT_SAFETY_MARGIN", "WorkPackageAccessor"]

#: Seconds before a WOT's expiry at which it is no longer used.
WOT_SAFETY_MARGIN = 5.0
#: Lifetime assumed when the server sends no max-age (contract §2.3: 30 s).
DEFAULT_WOT_LIFETIME = 30.0


def _claims(jws: str) -> dict[str, Any]:
    try:
        payload = jws.split(".")[1]
        payload += "=" * (-len(payload) % 4)
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (IndexError, ValueError, binascii.Error):
        raise ServerResponseError("The work order token is not a valid JWS.") from None
    if not isinstance(claims, dict):
        raise ServerResponseError("The work order token is not a valid JWS.")
    return claims


class WorkPackageAccessor(WorkPackageAccessorBase):
    """Accessor for one work package, built from an opened WPAT.

    Args:
        wps: the work package service client (holds the WPAT).
        ucs: the upload controller client (only for listing upload boxes).
        keys: the user's key pair (opens WOTs, checks their key claim).
        clock: monotonic clock in seconds (injected for tests).
    """

    def __init__(
        self,
        wps: WpsPort,
        ucs: UcsPort | None,
        keys: KeyPair,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wps = wps
        self._ucs = ucs
        self._keys = keys
        self._clock = clock
        self._work_package: WorkPackage | None = None
        self._cache: dict[tuple[str, ...], tuple[str, float]] = {}
        self._locks: dict[tuple[str, ...], asyncio.Lock] = {}
        self.tokens_fetched = 0

    async def get_work_package(self) -> WorkPackage:
        """The work package details, fetched once.

        Raises:
            AccessDeniedError: the access token was refused.
            ServiceUnreachableError, ServerResponseError: the work package service failed.
        """
        if self._work_package is None:
            self._work_package = await self._wps.get_work_package()
        return self._work_package

    def _box_ids(self) -> tuple[str, str]:
        package = self._work_package
        if (
            package is None
            or package.type != "upload"
            or not package.research_data_upload_box_id
            or not package.file_upload_box_id
        ):
            raise UserInputError(
                "This access token is for a download work package, not for uploads.",
                hint="Use the upload access token you received from the GHGA Data Steward.",
            )
        return package.research_data_upload_box_id, package.file_upload_box_id

    @property
    def file_upload_box_id(self) -> str:
        """The file upload box id of an upload work package.

        Raises:
            UserInputError: not an upload work package (or not read yet).
        """
        return self._box_ids()[1]

    def _open(self, sealed: str) -> str:
        try:
            # a sealed box is at least an ephemeral key (32 bytes) and a MAC (16 bytes)
            if len(base64.b64decode(sealed, validate=True)) < 48:
                raise ValueError
        except (binascii.Error, ValueError):
            # A malformed answer concerns this one token (one file), not the user's key.
            raise ServerResponseError(
                "The work package service sent a malformed work order token."
            ) from None
        try:
            jws = open_sealed_b64(sealed, self._keys.secret).decode("ascii")
        except UnicodeDecodeError:
            raise ServerResponseError(
                "The work package service sent a malformed work order token."
            ) from None
        except SealedBoxError:
            raise KeyFileError(
                "A work order token could not be opened with your private key.",
                hint="Use the key pair whose public key you registered with GHGA.",
            ) from None
        claimed = _claims(jws).get("user_public_crypt4gh_key")
        if claimed != self._keys.public_b64:
            raise KeyFileError(
                "The work package belongs to another public key than yours.",
                hint="Use the key pair whose public key you registered with GHGA.",
            )
        return jws

    async def _cached(self, key: tuple[str, ...], force_new: bool, fetch: Callable[[], Any]) -> str:
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            now = self._clock()
            hit = self._cache.get(key)
            if hit and not force_new and hit[1] > now:
                return hit[0]
            sealed, max_age = await fetch()
            self.tokens_fetched += 1
            jws = self._open(sealed)
            lifetime = max_age if max_age is not None else DEFAULT_WOT_LIFETIME
            self._cache[key] = (jws, now + lifetime - WOT_SAFETY_MARGIN)
            return jws

    async def upload_wot(
        self,
        work_type: str,
        *,
        alias: str | None = None,
        file_id: str | None = None,
        force_new: bool = False,
    ) -> str:
        """An upload-path WOT for ``work_type`` (create/upload/close/delete/view).

        Raises:
            UserInputError: not an upload work package.
            ServiceUnreachableError: the work package service cannot be reached.
            AccessDeniedError: the access token was refused.
            ServerResponseError: the WOT is not a valid sealed JWS.
            KeyFileError: the WOT was not sealed to the user's key.
        """
        await self.get_work_package()
        rdub_id, _ = self._box_ids()
        wt: UploadWorkType = work_type  # type: ignore[assignment]
        return await self._cached(
            ("upload", work_type, alias or "", file_id or ""),
            force_new,
            lambda: self._wps.create_upload_wot(rdub_id, wt, alias=alias, file_id=file_id),
        )

    async def download_wot(self, accession: str, *, force_new: bool = False) -> str:
        """A download WOT for ``accession``.

        Raises:
            ServiceUnreachableError: the work package service cannot be reached.
            AccessDeniedError: the access token was refused.
            ServerResponseError: the WOT is not a valid sealed JWS.
            KeyFileError: the WOT was not sealed to the user's key.
        """
        return await self._cached(
            ("download", accession), force_new, lambda: self._wps.create_download_wot(accession)
        )

    async def list_uploads(self) -> list[UploadListItem]:
        """The uploads in the file upload box (needs an upload work package).

        Raises:
            UserInputError: not an upload work package.
            ServiceUnreachableError, ServerResponseError: a GHGA service failed.
            RuntimeError: wired without an upload controller client (a programming error).
        """
        await self.get_work_package()
        _, fub_id = self._box_ids()
        if self._ucs is None:  # pragma: no cover - wiring error
            raise RuntimeError("no upload controller client")

        async def token(force_new: bool) -> str:
            return await self.upload_wot("view", force_new=force_new)

        return await self._ucs.list_uploads(fub_id, token)
