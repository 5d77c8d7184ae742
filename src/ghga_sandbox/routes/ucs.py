"""Upload Controller Service, mounted at ``/ucs`` (contract §3.2, §3.3).

Each route verifies its WOT (401), compares claims with the path (403
``notAuthorized``), then calls :class:`~ghga_sandbox.uploads.UploadController`.
Unexpected errors become 500 ``internalError`` bodies.
"""

import logging
from datetime import datetime
from typing import Annotated, Self

from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import UUID4, BaseModel, Field, model_validator

from ghga_sandbox.errors import DomainError, internal_error_body
from ghga_sandbox.routes.auth import work_order_dependency
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import FileUpload
from ghga_sandbox.tokens import (
    CloseFileWorkOrder,
    CreateFileWorkOrder,
    DeleteFileWorkOrder,
    UploadFileWorkOrder,
    ViewFileBoxWorkOrder,
)
from ghga_sandbox.uploads import MAX_PART_SIZE, MIN_PART_SIZE, UploadController

__all__ = ["create_ucs_app"]

log = logging.getLogger(__name__)


def not_authorized() -> DomainError:
    """403 ``notAuthorized``: WOT claims disagree with the path."""
    return DomainError(403, "notAuthorized", "Not authorized")


class FileUploadModel(BaseModel):
    """A listed file upload (contract §3.3(a))."""

    id: UUID4
    box_id: UUID4
    alias: str
    state: str
    state_updated: datetime
    storage_alias: str
    bucket_id: str
    object_id: UUID4
    decrypted_size: int
    encrypted_size: int
    part_size: int
    secret_id: str | None
    decrypted_sha256: str | None
    encrypted_parts_md5: list[str] | None
    encrypted_parts_sha256: list[str] | None
    failure_reason: str | None
    s3_upload_id: str | None
    initiated: datetime
    completed: datetime | None

    @classmethod
    def of(cls, upload: FileUpload) -> Self:
        """Convert a state record."""
        fields = {name: getattr(upload, name) for name in cls.model_fields}
        return cls.model_validate(fields)


_SORT_KEY = "-?(?:" + "|".join(sorted(FileUploadModel.model_fields)) + ")"
#: ``sort``: comma-separated listed fields, each optionally prefixed with ``-``.
SORT_PATTERN = f"^{_SORT_KEY}(?:,{_SORT_KEY})*$"


class FileUploadPage(BaseModel):
    """``{"items": [...], "total_count": n}``."""

    items: list[FileUploadModel]
    total_count: int


class FileUploadCreationRequest(BaseModel):
    """Body of ``POST /boxes/{box_id}/uploads``."""

    alias: str
    decrypted_size: int = Field(ge=1)
    encrypted_size: int
    part_size: int = Field(ge=MIN_PART_SIZE, le=MAX_PART_SIZE)
    overwrite: bool = False

    @model_validator(mode="after")
    def _encrypted_larger(self) -> Self:
        if self.encrypted_size <= self.decrypted_size:
            raise ValueError("encrypted_size must be larger than decrypted_size")
        return self


class FileUploadCreationResponse(BaseModel):
    """201 body of create."""

    file_id: UUID4
    alias: str
    storage_alias: str


class FileUploadCompletionRequest(BaseModel):
    """Body of ``PATCH /boxes/{box_id}/uploads/{file_id}``."""

    decrypted_sha256: str
    encrypted_md5: str
    encrypted_parts_md5: list[str]
    encrypted_parts_sha256: list[str]


#: The only UCS errors whose ``description`` is not empty in the real service.
DESCRIBED_ERRORS = frozenset({"notAuthorized", "internalError"})


async def _ucs_domain_error(request: Request, exc: Exception) -> JSONResponse:
    """A :class:`DomainError` as UCS 15.0.0 sends it.

    ``description`` is ``""`` except for ``notAuthorized`` and ``internalError``.
    """
    assert isinstance(exc, DomainError)
    body = exc.body()
    if exc.exception_id not in DESCRIBED_ERRORS:
        body["description"] = ""
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error in a UCS route", exc_info=exc)
    return JSONResponse(internal_error_body(), status_code=500)


def create_ucs_app(runtime: Runtime, controller: UploadController) -> FastAPI:
    """The UCS sub-application over a shared :class:`UploadController`."""
    app = FastAPI(title="Upload Controller Service (ghga-sandbox)", version="15.0.0")
    app.add_exception_handler(DomainError, _ucs_domain_error)
    app.add_exception_handler(Exception, _unexpected_error)
    View = Annotated[
        ViewFileBoxWorkOrder,
        Depends(work_order_dependency(runtime, ViewFileBoxWorkOrder, challenge=False)),
    ]
    Create = Annotated[
        CreateFileWorkOrder,
        Depends(work_order_dependency(runtime, CreateFileWorkOrder, challenge=False)),
    ]
    Upload = Annotated[
        UploadFileWorkOrder,
        Depends(work_order_dependency(runtime, UploadFileWorkOrder, challenge=False)),
    ]
    Close = Annotated[
        CloseFileWorkOrder,
        Depends(work_order_dependency(runtime, CloseFileWorkOrder, challenge=False)),
    ]
    Delete = Annotated[
        DeleteFileWorkOrder,
        Depends(work_order_dependency(runtime, DeleteFileWorkOrder, challenge=False)),
    ]

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: 200 ``{"status":"OK"}``."""
        return {"status": "OK"}

    @app.get("/boxes/{box_id}/uploads", response_model=FileUploadPage)
    def list_uploads(
        box_id: UUID4,
        work_order: View,
        skip: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=0, le=1000)] = 10,
        sort: Annotated[str, Query(pattern=SORT_PATTERN)] = "alias",
        with_checksums: bool = False,
    ) -> FileUploadPage:
        """Page through a box's uploads (WOT ``view``).

        A bad ``skip``, ``limit`` or ``sort`` is FastAPI's own 422 ``{"detail": [...]}``.
        """
        if work_order.box_id != box_id:
            raise not_authorized()
        page, total = controller.list_uploads(
            str(box_id), skip=skip, limit=limit, sort=sort, with_checksums=with_checksums
        )
        return FileUploadPage(items=[FileUploadModel.of(u) for u in page], total_count=total)

    @app.post("/boxes/{box_id}/uploads", status_code=201, response_model=FileUploadCreationResponse)
    def create_upload(
        box_id: UUID4, body: FileUploadCreationRequest, work_order: Create
    ) -> FileUploadCreationResponse:
        """Create a file upload (WOT ``create``; claims ``box_id`` and ``alias``)."""
        if work_order.box_id != box_id or work_order.alias != body.alias:
            raise not_authorized()
        upload = controller.create(
            str(box_id),
            alias=body.alias,
            decrypted_size=body.decrypted_size,
            encrypted_size=body.encrypted_size,
            part_size=body.part_size,
            overwrite=body.overwrite,
        )
        return FileUploadCreationResponse(
            file_id=upload.id,  # type: ignore[arg-type]
            alias=upload.alias,
            storage_alias=upload.storage_alias,
        )

    @app.get("/boxes/{box_id}/uploads/{file_id}/parts/{part_no}")
    def get_part_url(
        box_id: UUID4, file_id: UUID4, part_no: int, work_order: Upload
    ) -> JSONResponse:
        """Presigned part URL as a JSON string (WOT ``upload``)."""
        if work_order.box_id != box_id or work_order.file_id != file_id:
            raise not_authorized()
        return JSONResponse(controller.part_url(str(file_id), part_no))

    @app.patch("/boxes/{box_id}/uploads/{file_id}", status_code=204)
    def complete_upload(
        box_id: UUID4, file_id: UUID4, body: FileUploadCompletionRequest, work_order: Close
    ) -> Response:
        """Complete the upload; 204 (WOT ``close``)."""
        if work_order.box_id != box_id or work_order.file_id != file_id:
            raise not_authorized()
        controller.complete(
            str(box_id),
            str(file_id),
            decrypted_sha256=body.decrypted_sha256,
            encrypted_md5=body.encrypted_md5,
            encrypted_parts_md5=body.encrypted_parts_md5,
            encrypted_parts_sha256=body.encrypted_parts_sha256,
        )
        return Response(status_code=204)

    @app.delete("/boxes/{box_id}/uploads/{file_id}", status_code=204)
    def delete_upload(box_id: UUID4, file_id: UUID4, work_order: Delete) -> Response:
        """Cancel the upload; 204, also on repeat (WOT ``delete``)."""
        if work_order.box_id != box_id or work_order.file_id != file_id:
            raise not_authorized()
        controller.delete(str(box_id), str(file_id))
        return Response(status_code=204)

    return app
