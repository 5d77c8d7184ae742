"""Sandbox admin API, mounted at ``/admin`` — not part of GHGA.

Replaces the back-office calls of contract §3.6 and the Data Portal (§6.3): creates
boxes and work packages, locks/unlocks/archives boxes, runs the Data Hub step, and
arms fault switches.

Guarded although the sandbox listens on loopback only: a request must name the address
the sandbox listens on in its ``Host`` header (so a web page that rebinds a DNS name to
127.0.0.1 cannot reach it) and carry ``Authorization: Bearer <token>`` with the random
token the sandbox writes to ``<state_dir>/admin.token`` (mode 0600) at every start.
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel, Field

from ghga_sandbox.datahub import DataHub
from ghga_sandbox.datahub.synthetic import archive_synthetic
from ghga_sandbox.errors import DomainError, domain_error_handler
from ghga_sandbox.faults import FaultSettings
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import COUNTED_STATES, now_utc
from ghga_sandbox.tokens import b64_public_key, decode_public_key, mint_wot, seal
from ghga_sandbox.uploads import UploadController, box_not_found
from ghga_sandbox.workpackages import IssuedWorkPackage, WorkPackageService

__all__ = ["ADMIN_TOKEN_FILE", "admin_guard", "create_admin_app", "status_document"]


class UploadBoxRequest(BaseModel):
    """Create a FUB (with its RDUB) and optionally an upload work package."""

    storage_alias: str = "HD01"
    max_size: int | None = Field(default=None, ge=1, description="Bytes; default --box-max-size.")
    user_public_key: str | None = Field(
        default=None, description="Standard base64 of the user's 32-byte Crypt4GH public key."
    )


class WorkPackageRequest(BaseModel):
    """Create a work package (what the Data Portal does through WPS)."""

    type: Literal["upload", "download"]
    user_public_key: str
    accessions: list[str] | None = Field(
        default=None, description="Download: accessions to include; default all archived files."
    )
    box_id: str | None = Field(default=None, description="Upload: the file upload box (FUB) id.")
    valid_days: int | None = Field(default=None, ge=0)


class LockRequest(BaseModel):
    """Lock options."""

    force: bool = False


class ArchiveRequest(BaseModel):
    """Options of the whole archive step."""

    user_public_key: str | None = None


class SyntheticObjectRequest(BaseModel):
    """Register a synthetic archived file (``--s3 sink`` only)."""

    size: int = Field(ge=0, description="Plaintext bytes.")
    seed: int = Field(default=0, ge=0, lt=1 << 64)
    storage_alias: str = "HD01"


class WorkOrderTokenRequest(BaseModel):
    """Mint an arbitrary WOT signed with the WPS key (tests of 401/403 paths)."""

    claims: dict[str, Any]
    lifetime: int | None = Field(default=None, ge=-3600)
    sealed_to: str | None = Field(default=None, description="Seal to this base64 public key.")


def _issued(issued: IssuedWorkPackage | None) -> dict[str, Any] | None:
    if issued is None:
        return None
    return {
        "id": issued.package.id,
        "token": issued.sealed_token,
        "access_token": issued.access_token,
        "expires": issued.package.expires.isoformat(),
        "files": issued.package.files,
    }


def _check_key(value: str) -> str:
    try:
        decode_public_key(value)
    except ValueError as error:
        raise HTTPException(422, detail=f"user_public_key: {error}") from error
    return value


def status_document(runtime: Runtime) -> dict[str, Any]:
    """Everything ``ghga-sandbox status`` shows."""
    state = runtime.state
    boxes = []
    for box in state.list_boxes():
        uploads = state.list_uploads(box.id)
        boxes.append(
            {
                "id": box.id,
                "research_data_upload_box_id": box.rdub_id,
                "state": box.state,
                "version": box.version,
                "storage_alias": box.storage_alias,
                "max_size": box.max_size,
                "size": sum(u.decrypted_size for u in uploads if u.state in COUNTED_STATES),
                "file_count": sum(1 for u in uploads if u.state in COUNTED_STATES),
            }
        )
    document: dict[str, Any] = {
        "url": runtime.settings.public_url,
        "wkvs_api_url": runtime.settings.wkvs_api_url,
        "s3_url": runtime.storage.endpoint_url,
        "boxes": boxes,
        "uploads": [
            {
                "id": u.id,
                "box_id": u.box_id,
                "alias": u.alias,
                "state": u.state,
                "decrypted_size": u.decrypted_size,
                "encrypted_size": u.encrypted_size,
                "part_size": u.part_size,
                "parts": len(u.encrypted_parts_md5 or []),
                "failure_reason": u.failure_reason,
            }
            for u in state.list_uploads()
        ],
        "drs_objects": [
            {
                "accession": o.accession,
                "file_id": o.file_id,
                "decrypted_size": o.decrypted_size,
                "encrypted_size": o.encrypted_size,
                "decrypted_sha256": o.decrypted_sha256,
                "staged": o.staged_at is not None,
            }
            for o in state.list_drs_objects()
        ],
        "work_packages": [
            {
                "id": p.id,
                "type": p.type,
                "files": p.files,
                "file_upload_box_id": p.fub_id,
                "expires": p.expires.isoformat(),
                "revoked": p.revoked,
            }
            for p in state.list_work_packages()
        ],
        "faults": runtime.faults.snapshot(),
    }
    if runtime.sink is not None:
        document["sink"] = runtime.sink.stats()
    return document


ADMIN_TOKEN_FILE = "admin.token"


def admin_guard(runtime: Runtime) -> Callable[[Request], None]:
    """The dependency that admits only same-host requests with the admin token."""
    allowed_host = urlsplit(runtime.settings.public_url).netloc.lower()
    expected = f"Bearer {runtime.settings.admin_token}".encode()

    def guard(request: Request) -> None:
        host = request.headers.get("host", "").lower()
        if host != allowed_host:
            raise HTTPException(
                403, detail=f"admin API: the Host header must be {allowed_host} (got {host!r})"
            )
        sent = request.headers.get("authorization", "").encode()
        if not hmac.compare_digest(sent, expected):
            raise HTTPException(
                401,
                detail=f"admin API: send 'Authorization: Bearer <token>' with the token from "
                f"{ADMIN_TOKEN_FILE} in the state directory",
            )

    return guard


def create_admin_app(runtime: Runtime, controller: UploadController) -> FastAPI:
    """The admin sub-application (every route behind :func:`admin_guard`)."""
    app = FastAPI(title="ghga-sandbox admin API", dependencies=[Depends(admin_guard(runtime))])
    app.add_exception_handler(DomainError, domain_error_handler)
    packages = WorkPackageService(runtime)
    datahub = DataHub(runtime, controller)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness."""
        return {"status": "OK"}

    @app.get("/keys")
    def get_keys() -> dict[str, Any]:
        """Public keys: WPS JWK (to verify WOTs), Data Hub keys, central (EKSS) key."""
        return {
            "wps_public_jwk": json.loads(runtime.state.signing_key().export_public()),
            "datahub_public_keys": {
                alias: b64_public_key(runtime.state.datahub_key(alias).public)
                for alias in runtime.settings.storage_labels
            },
            "central_public_key": b64_public_key(runtime.state.central_key().public),
        }

    @app.get("/status")
    def get_status() -> dict[str, Any]:
        """Boxes, uploads, DRS objects, work packages and fault counters."""
        return status_document(runtime)

    @app.post("/upload-boxes", status_code=201)
    def create_upload_box(body: UploadBoxRequest) -> dict[str, Any]:
        """Create a FUB + RDUB; with a key, also an upload work package."""
        if body.storage_alias not in runtime.settings.storage_labels:
            raise DomainError(
                400, "noSuchStorage", "There was a problem identifying the storage alias."
            )
        box = runtime.state.create_box(
            body.storage_alias, body.max_size or runtime.settings.box_max_size
        )
        issued = None
        if body.user_public_key is not None:
            issued = packages.create(
                type_="upload",
                user_public_key=_check_key(body.user_public_key),
                rdub_id=box.rdub_id,
                fub_id=box.id,
            )
        return {
            "file_upload_box_id": box.id,
            "research_data_upload_box_id": box.rdub_id,
            "work_package": _issued(issued),
        }

    @app.post("/work-packages", status_code=201)
    def create_work_package(body: WorkPackageRequest) -> dict[str, Any]:
        """Create an upload (``box_id``) or download (``accessions``) work package."""
        key = _check_key(body.user_public_key)
        if body.type == "upload":
            box = runtime.state.get_box(body.box_id or "")
            if box is None:
                raise box_not_found(body.box_id or "")
            issued = packages.create(
                type_="upload",
                user_public_key=key,
                rdub_id=box.rdub_id,
                fub_id=box.id,
                valid_days=body.valid_days,
            )
        else:
            maybe = datahub.download_package(key, body.accessions)
            if maybe is None:
                raise HTTPException(409, detail="There are no archived files to download.")
            issued = maybe
        return _issued(issued) or {}

    def _package(package_id: str) -> Any:
        package = runtime.state.get_work_package(package_id)
        if package is None:
            raise HTTPException(404, detail="Work package not found")
        return package

    @app.post("/work-packages/{package_id}/expire")
    def expire_work_package(package_id: str) -> dict[str, str]:
        """Let a work package expire now (WPS then answers 403 "…has expired")."""
        package = _package(package_id)
        runtime.state.put_work_package(replace(package, expires=now_utc() - timedelta(seconds=1)))
        return {"id": package_id, "status": "expired"}

    @app.post("/work-packages/{package_id}/revoke")
    def revoke_work_package(package_id: str) -> dict[str, str]:
        """Revoke access (WPS then answers 403 "… access has been revoked")."""
        runtime.state.put_work_package(replace(_package(package_id), revoked=True))
        return {"id": package_id, "status": "revoked"}

    @app.post("/work-packages/{package_id}/restore")
    def restore_work_package(package_id: str) -> dict[str, str]:
        """Undo a revocation."""
        runtime.state.put_work_package(replace(_package(package_id), revoked=False))
        return {"id": package_id, "status": "active"}

    @app.post("/boxes/{box_id}/lock")
    def lock_box(box_id: str, body: LockRequest | None = None) -> dict[str, Any]:
        """``open`` → ``locked`` (409 ``incompleteUploads`` unless ``force``)."""
        box = controller.lock_box(box_id, force=bool(body and body.force))
        return {"id": box.id, "state": box.state, "version": box.version}

    @app.post("/boxes/{box_id}/unlock")
    def unlock_box(box_id: str) -> dict[str, Any]:
        """``locked`` → ``open``."""
        box = controller.unlock_box(box_id)
        return {"id": box.id, "state": box.state, "version": box.version}

    @app.post("/boxes/{box_id}/interrogate")
    def interrogate_box(box_id: str) -> list[dict[str, Any]]:
        """Run the Data Hub check on every ``inbox`` upload of a box."""
        if runtime.state.get_box(box_id) is None:
            raise box_not_found(box_id)
        inbox = [u for u in runtime.state.list_uploads(box_id) if u.state == "inbox"]
        results = datahub.interrogate_many(inbox)
        return [
            {
                "file_id": u.id,
                "alias": u.alias,
                "state": u.state,
                "failure_reason": u.failure_reason,
            }
            for u in results
        ]

    @app.post("/boxes/{box_id}/archive")
    def archive_box(box_id: str) -> list[dict[str, Any]]:
        """``locked`` → ``archived``; registers DRS objects with new accessions."""
        return [outcome.__dict__ for outcome in datahub.archive_box(box_id)]

    @app.post("/archive")
    def archive(body: ArchiveRequest) -> dict[str, Any]:
        """The whole ``ghga-sandbox archive`` step (see :mod:`ghga_sandbox.datahub`)."""
        key = None if body.user_public_key is None else _check_key(body.user_public_key)
        return datahub.archive_everything(key).to_json()

    @app.post("/objects/{accession}/stage")
    def stage(accession: str) -> dict[str, str]:
        """Copy an archived object to the outbox now and mark it staged."""
        try:
            runtime.stager.stage_now(accession)
        except KeyError as error:
            raise HTTPException(404, detail="Unknown accession") from error
        return {"accession": accession, "status": "staged"}

    @app.post("/synthetic-objects", status_code=201)
    def synthetic_object(body: SyntheticObjectRequest) -> dict[str, Any]:
        """A DRS object over generated bytes (sink only; 409 otherwise).

        Slow once per seed and size: the plaintext SHA-256 is streamed, then cached.
        """
        if runtime.sink is None:
            raise HTTPException(409, detail="synthetic objects need 'serve --s3 sink'")
        try:
            obj = archive_synthetic(
                runtime,
                body.size,
                body.seed,
                body.storage_alias,
                runtime.settings.state_dir / "synthetic-cache"
                if runtime.settings.synthetic_cache_dir is None
                else runtime.settings.synthetic_cache_dir,
            )
        except ValueError as error:
            raise HTTPException(422, detail=str(error)) from error
        return {
            "accession": obj.accession,
            "file_id": obj.file_id,
            "decrypted_size": obj.decrypted_size,
            "encrypted_size": obj.encrypted_size,
            "decrypted_sha256": obj.decrypted_sha256,
        }

    @app.get("/faults")
    def get_faults() -> dict[str, object]:
        """Armed switches and fired counters."""
        return runtime.faults.snapshot()

    @app.post("/faults")
    def arm_faults(body: FaultSettings) -> dict[str, object]:
        """Arm fault switches (see :mod:`ghga_sandbox.faults`)."""
        runtime.faults.arm(body)
        return runtime.faults.snapshot()

    @app.delete("/faults")
    def reset_faults() -> dict[str, object]:
        """Disarm all switches (counters of fired faults are kept)."""
        runtime.faults.reset()
        return runtime.faults.snapshot()

    @app.post("/work-order-tokens")
    def mint(body: WorkOrderTokenRequest) -> dict[str, str]:
        """A compact JWS over arbitrary claims, signed with the WPS key."""
        lifetime = runtime.settings.wot_lifetime if body.lifetime is None else body.lifetime
        token = mint_wot(
            runtime.state.signing_key(), body.claims, now=time.time(), lifetime=lifetime
        )
        result = {"token": token}
        if body.sealed_to is not None:
            result["sealed"] = seal(_check_key(body.sealed_to), token.encode("ascii"))
        return result

    return app
