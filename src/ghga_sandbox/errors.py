"""Error types of the sandbox and their wire format (contract §3.0).

* :class:`DomainError` → ``{"data": {...}, "description": "...", "exception_id": "..."}``
  with its status, as UCS and DCS send them (httpyexpect style).
* :class:`SandboxStateError` → raised by the state and Data Hub layers; routes translate
  it into a :class:`DomainError`.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

__all__ = [
    "DomainError",
    "SandboxStateError",
    "domain_error_handler",
    "internal_error_body",
]


class DomainError(Exception):
    """An HTTP error with a GHGA ``exception_id`` body."""

    def __init__(
        self,
        status_code: int,
        exception_id: str,
        description: str,
        data: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{status_code} {exception_id}: {description}")
        self.status_code = status_code
        self.exception_id = exception_id
        self.description = description
        self.data = data or {}
        self.headers = headers

    def body(self) -> dict[str, Any]:
        """The JSON body ``{data, description, exception_id}``."""
        return {
            "data": self.data,
            "description": self.description,
            "exception_id": self.exception_id,
        }


class SandboxStateError(Exception):
    """A state transition that is not allowed (box locked, incomplete uploads, …).

    ``exception_id``/``data``/``status_code`` follow the UCS names so that admin routes
    can pass them through unchanged.
    """

    def __init__(
        self, exception_id: str, description: str, data: dict[str, Any], status_code: int = 409
    ) -> None:
        super().__init__(description)
        self.exception_id = exception_id
        self.description = description
        self.data = data
        self.status_code = status_code

    def to_domain(self) -> DomainError:
        """The same error as an HTTP :class:`DomainError`."""
        return DomainError(self.status_code, self.exception_id, self.description, self.data)


def internal_error_body() -> dict[str, Any]:
    """Body of an unexpected error in a UCS route (contract §3.0)."""
    return {
        "exception_id": "internalError",
        "description": "An internal server error has occurred.",
        "data": {},
    }


async def domain_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI exception handler rendering a :class:`DomainError`."""
    if isinstance(exc, SandboxStateError):
        exc = exc.to_domain()
    assert isinstance(exc, DomainError)
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=exc.headers)
