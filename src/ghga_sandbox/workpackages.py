"""Work package logic of the WPS (contract §2.2, §2.3, §3.1), free of HTTP.

Creation (which GHGA does through the Data Portal, here through the admin API), the
ordered access-token checks, and minting of sealed work order tokens.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import WorkPackage, now_utc
from ghga_sandbox.tokens import generate_wpat, hash_wpat, mint_wot, seal

__all__ = ["IssuedWorkPackage", "WorkPackageAccessError", "WorkPackageService"]


class WorkPackageAccessError(Exception):
    """Any WPS refusal; the message is the 403 ``detail`` (contract §2.2, §3.1)."""


@dataclass(frozen=True)
class IssuedWorkPackage:
    """A new work package with the token the user receives (never stored)."""

    package: WorkPackage
    sealed_token: str

    @property
    def access_token(self) -> str:
        """``"<wp uuid4>:<base64 sealed WPAT>"`` as the Data Portal shows it."""
        return f"{self.package.id}:{self.sealed_token}"


class WorkPackageService:
    """WPS operations over the runtime's state, keys, clock and fault plan."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    def create(
        self,
        *,
        type_: Literal["upload", "download"],
        user_public_key: str,
        files: dict[str, str] | None = None,
        rdub_id: str | None = None,
        fub_id: str | None = None,
        valid_days: int | None = None,
    ) -> IssuedWorkPackage:
        """Create a work package; return it with the sealed WPAT.

        ``user_public_key`` is standard base64 of 32 raw bytes (:class:`ValueError`
        otherwise). Lifetime ``valid_days`` (default ``work_package_valid_days``).
        """
        token = generate_wpat()
        sealed = seal(user_public_key, token.encode("ascii"))
        created = now_utc()
        days = valid_days if valid_days is not None else self._rt.settings.work_package_valid_days
        package = WorkPackage(
            id=str(uuid.uuid4()),
            type=type_,
            user_public_key=user_public_key,
            token_hash=hash_wpat(token),
            created=created,
            expires=created + timedelta(days=days),
            files=dict(files or {}),
            rdub_id=rdub_id,
            fub_id=fub_id,
        )
        self._rt.state.put_work_package(package)
        return IssuedWorkPackage(package=package, sealed_token=sealed)

    def check(self, package_id: str, token: str) -> WorkPackage:
        """The §2.2 checks in order; raise :class:`WorkPackageAccessError` on failure."""
        package = self._rt.state.get_work_package(package_id)
        if package is None:
            raise WorkPackageAccessError("Work package not found")
        if package.token_hash != hash_wpat(token):
            raise WorkPackageAccessError("Invalid work package access token")
        if not package.created <= now_utc() < package.expires:
            raise WorkPackageAccessError("Work package has expired")
        if self._rt.faults.take("access_check_error"):
            what = "dataset" if package.type == "download" else "upload box"
            raise WorkPackageAccessError(f"Failed to check {what} access permission")
        if package.revoked:
            raise WorkPackageAccessError(f"{package.type.title()} access has been revoked")
        return package

    def _sealed_wot(self, package: WorkPackage, claims: dict[str, Any]) -> str:
        jws = mint_wot(
            self._rt.state.signing_key(),
            {**claims, "user_public_crypt4gh_key": package.user_public_key},
            now=self._rt.clock(),
            lifetime=self._rt.settings.wot_lifetime,
        )
        return seal(package.user_public_key, jws.encode("ascii"))

    def download_wot(self, package_id: str, token: str, accession: str) -> str:
        """Sealed download WOT for one accession (contract §2.3, §3.1)."""
        package = self.check(package_id, token)
        if package.type != "download":
            raise WorkPackageAccessError(
                "Work package type must be DOWNLOAD to obtain a download access WOT"
            )
        if accession not in package.files:
            raise WorkPackageAccessError("File is not contained in work package")
        obj = self._rt.state.get_drs_object(accession=accession)
        if obj is None:
            raise WorkPackageAccessError("File not available for download")
        return self._sealed_wot(
            package, {"work_type": "download", "file_id": obj.file_id, "accession": accession}
        )

    def upload_wot(
        self,
        package_id: str,
        token: str,
        *,
        rdub_id: str,
        work_type: str,
        alias: str | None,
        file_id: str | None,
    ) -> str:
        """Sealed upload-path WOT; the token's ``box_id`` is the FUB id (contract §2.3)."""
        package = self.check(package_id, token)
        if package.rdub_id is None or package.rdub_id != rdub_id or package.fub_id is None:
            raise WorkPackageAccessError("Specified box ID is incorrect.")
        claims: dict[str, Any] = {"work_type": work_type, "box_id": package.fub_id}
        if work_type == "create":
            claims["alias"] = alias
        elif work_type in {"upload", "close", "delete"}:
            claims["file_id"] = file_id
        return self._sealed_wot(package, claims)
