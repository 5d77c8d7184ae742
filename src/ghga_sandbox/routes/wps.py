"""Work Package Service, mounted at ``/wps`` (contract §3.1).

All three routes take the plaintext WPAT as Bearer; a missing header is 401, every
access problem 403 ``{"detail": msg}``; WOTs are 201 JSON strings with
``Cache-Control: max-age=30, private``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, Self

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import JSONResponse
from pydantic import UUID4, BaseModel, model_validator

from ghga_sandbox.routes.auth import bearer_token
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.workpackages import WorkPackageAccessError, WorkPackageService

__all__ = ["WorkOrderTokenRequest", "WorkPackageDetails", "create_wps_app"]

Wpat = Annotated[str, Depends(bearer_token)]
"""The plaintext work package access token from ``Authorization: Bearer``."""


class WorkPackageDetails(BaseModel):
    """``GET /work-packages/{id}`` body (contract §3.1)."""

    type: Literal["upload", "download"]
    files: dict[str, str]
    research_data_upload_box_id: UUID4 | None
    file_upload_box_id: UUID4 | None
    created: datetime
    expires: datetime


class WorkOrderTokenRequest(BaseModel):
    """Body of the upload-path WOT request.

    ``create`` needs ``alias``; ``upload``, ``close`` and ``delete`` need ``file_id``
    (else 422). An empty alias (``""``) is refused like a missing one.
    """

    work_type: Literal["create", "upload", "close", "delete", "view"]
    alias: str | None = None
    file_id: UUID4 | None = None

    @model_validator(mode="after")
    def _required_fields(self) -> Self:
        if self.alias == "":
            raise ValueError("alias must not be empty")
        if self.work_type == "create" and self.alias is None:
            raise ValueError("alias is required for work type 'create'")
        if self.work_type in {"upload", "close", "delete"} and self.file_id is None:
            raise ValueError(f"file_id is required for work type '{self.work_type}'")
        return self


def _wot_response(sealed: str, runtime: Runtime) -> JSONResponse:
    return JSONResponse(
        content=sealed,
        status_code=201,
        headers={"Cache-Control": f"max-age={runtime.settings.wot_lifetime}, private"},
    )


def create_wps_app(runtime: Runtime) -> FastAPI:
    """The WPS sub-application."""
    app = FastAPI(title="Work Package Service (ghga-sandbox)", version="10.0.0")
    service = WorkPackageService(runtime)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: 200 ``{"status":"OK"}``."""
        return {"status": "OK"}

    @app.get("/work-packages/{work_package_id}", response_model=WorkPackageDetails)
    def get_work_package(work_package_id: UUID4, token: Wpat) -> WorkPackageDetails:
        """Work package details; 401 without Bearer, 403 on any §2.2 failure."""
        try:
            package = service.check(str(work_package_id), token)
        except WorkPackageAccessError as error:
            raise HTTPException(403, detail=str(error)) from error
        return WorkPackageDetails(
            type=package.type,
            files=package.files,
            research_data_upload_box_id=package.rdub_id,  # type: ignore[arg-type]
            file_upload_box_id=package.fub_id,  # type: ignore[arg-type]
            created=package.created,
            expires=package.expires,
        )

    @app.post("/work-packages/{work_package_id}/files/{accession}/work-order-tokens")
    def create_download_wot(work_package_id: UUID4, accession: str, token: Wpat) -> JSONResponse:
        """201 sealed download WOT (JSON string); 403 on access problems."""
        try:
            sealed = service.download_wot(str(work_package_id), token, accession)
        except WorkPackageAccessError as error:
            raise HTTPException(403, detail=str(error)) from error
        return _wot_response(sealed, runtime)

    @app.post("/work-packages/{work_package_id}/boxes/{box_id}/work-order-tokens")
    def create_upload_wot(
        work_package_id: UUID4, box_id: UUID4, body: WorkOrderTokenRequest, token: Wpat
    ) -> JSONResponse:
        """201 sealed upload-path WOT; ``box_id`` is the RDUB id (403 if not)."""
        try:
            sealed = service.upload_wot(
                str(work_package_id),
                token,
                rdub_id=str(box_id),
                work_type=body.work_type,
                alias=body.alias,
                file_id=None if body.file_id is None else str(body.file_id),
            )
        except WorkPackageAccessError as error:
            raise HTTPException(403, detail=str(error)) from error
        return _wot_response(sealed, runtime)

    return app
