"""Download Controller Service (GA4GH DRS), mounted at ``/ga4gh/drs/v1`` (contract §3.4).

``{object_id}`` in the paths is the accession. Both routes require a ``download`` WOT
whose ``accession`` equals the path (else 403 ``wrongFileAuthorizationError``); the
object is looked up by the WOT's ``file_id``.
"""

import base64
import json
import logging
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from ghga_sandbox.c4gh import make_envelope, make_envelope_two_packets
from ghga_sandbox.errors import DomainError, domain_error_handler
from ghga_sandbox.routes.auth import work_order_dependency
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import DrsObject
from ghga_sandbox.storage import bucket_name
from ghga_sandbox.tokens import DownloadWorkOrder, decode_public_key

__all__ = ["create_dcs_app", "retry_after_seconds"]

log = logging.getLogger(__name__)

STAGING_SPEED_MB_PER_S = 100
"""Assumed staging speed behind the production ``Retry-After`` formula (MB/s)."""


def retry_after_seconds(decrypted_size: int, minimum: int, maximum: int = 300) -> int:
    """``clamp(round(size / (speed·10^6)), minimum, maximum)`` in whole seconds."""
    estimate = round(decrypted_size / (STAGING_SPEED_MB_PER_S * 10**6))
    return max(minimum, min(maximum, estimate))


def _wrong_file() -> DomainError:
    return DomainError(
        403,
        "wrongFileAuthorizationError",
        "Endpoint file ID did not match file ID announced in work order token.",
    )


def _no_such_object(object_id: str) -> DomainError:
    return DomainError(
        404, "noSuchObject", "The requested DrsObject wasn't found", {"object_id": object_id}
    )


def drs_object_body(runtime: Runtime, obj: DrsObject, url: str) -> dict[str, Any]:
    """The DRS object JSON (contract §3.4(a)); ``size`` excludes the envelope."""
    return {
        "access_methods": [{"access_url": {"url": url}, "type": "s3"}],
        "checksums": [{"checksum": obj.decrypted_sha256, "type": "sha-256"}],
        "created_time": obj.creation_date.isoformat(),  # "+00:00", as pydantic writes it
        "id": obj.accession,
        "self_uri": f"{runtime.settings.drs_server_uri}{obj.accession}",
        "size": obj.encrypted_size,
    }


def create_dcs_app(runtime: Runtime) -> FastAPI:
    """The DCS sub-application."""
    app = FastAPI(title="Download Controller Service (ghga-sandbox)", version="10.1.2")
    app.add_exception_handler(DomainError, domain_error_handler)
    Download = Annotated[
        DownloadWorkOrder, Depends(work_order_dependency(runtime, DownloadWorkOrder))
    ]

    def lookup(object_id: str, work_order: DownloadWorkOrder) -> DrsObject:
        if work_order.accession != object_id:
            raise _wrong_file()
        obj = runtime.state.get_drs_object(file_id=str(work_order.file_id))
        if obj is None or obj.accession != object_id:
            raise _no_such_object(object_id)
        return obj

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: 200 ``{"status":"OK"}``."""
        return {"status": "OK"}

    @app.get("/objects/{object_id}")
    def get_drs_object(object_id: str, work_order: Download, request: Request) -> Response:
        """202 + ``Retry-After`` until staged, then 200 DRS object with a fresh URL."""
        obj = lookup(object_id, work_order)
        staged = runtime.stager.poll(obj.accession)  # starts staging, forced 202 or not
        forced = runtime.faults.take("dcs_force_202")
        if forced or not staged:
            retry_after = runtime.faults.take_dcs_retry_after() or str(
                retry_after_seconds(obj.decrypted_size, runtime.settings.retry_after)
            )
            return JSONResponse(
                None,
                status_code=202,
                headers={"Retry-After": retry_after, "Cache-Control": "no-store"},
            )
        expiry = runtime.faults.url_expiry("download", runtime.settings.download_url_expiry)
        url = runtime.storage.presign_get(
            bucket_name(obj.storage_alias, "outbox"), obj.object_id, expiry
        )
        body = drs_object_body(runtime, obj, url)
        if runtime.faults.take("drs_no_checksum"):
            body["checksums"] = []
        elif runtime.faults.take("drs_wrong_checksum"):
            real = obj.decrypted_sha256
            body["checksums"] = [
                {"checksum": real[:-1] + ("0" if real[-1] != "0" else "1"), "type": "sha-256"}
            ]
        # like DCS 10.1.2: a plain Response of the JSON text, so no Content-Type header
        return Response(
            content=json.dumps(body),
            headers={"Cache-Control": f"max-age={runtime.settings.download_url_expiry}, private"},
        )

    @app.get("/objects/{object_id}/envelopes")
    def get_envelope(object_id: str, work_order: Download) -> Response:
        """Bare JSON string: base64 124-byte header for the WOT's user key."""
        obj = lookup(object_id, work_order)
        secret = runtime.state.get_secret(obj.secret_id)
        if runtime.faults.take("dcs_missing_secret"):
            secret = None
        if secret is None:
            raise DomainError(500, "internalServerError", "Internal Server Error.")
        user_key = decode_public_key(work_order.user_public_crypt4gh_key)
        if runtime.faults.take("envelope_two_packets"):
            envelope = make_envelope_two_packets(
                secret, runtime.state.central_key().secret, user_key
            )
        else:
            envelope = make_envelope(secret, runtime.state.central_key().secret, user_key)
        return JSONResponse(
            base64.b64encode(envelope).decode("ascii"), headers={"Cache-Control": "no-store"}
        )

    return app
