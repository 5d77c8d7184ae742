"""Bearer-token handling shared by WPS, UCS and DCS routes (contract §2.3, §3.0).

* no ``Authorization`` header, or not ``Bearer`` → **401** ``{"detail":"Not
  authenticated"}``, with ``WWW-Authenticate: Bearer`` from WPS and DCS (FastAPI's
  ``HTTPBearer``) but without it from UCS (``HTTPBearer(auto_error=False)`` and the
  ghga-service-commons policy raise their own 401);
* a WOT failing signature, expiry or claim validation (missing claim, wrong
  ``work_type``, non-UUID4 id, key not base64 of 32 bytes) → **401**
  ``{"detail":"Invalid authentication credentials"}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fastapi import HTTPException, Request
from jwcrypto import jwk
from pydantic import BaseModel

from ghga_sandbox.runtime import Runtime
from ghga_sandbox.tokens import InvalidTokenError, validate_work_order, verify_wot

__all__ = ["bearer_token", "work_order_dependency"]

M = TypeVar("M", bound=BaseModel)


def bearer_token(request: Request, *, challenge: bool = True) -> str:
    """The credentials of an ``Authorization: Bearer …`` header, else raise 401.

    ``challenge``: add ``WWW-Authenticate: Bearer`` to the 401 (not on UCS).
    """
    value = request.headers.get("authorization", "")
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        raise HTTPException(
            status_code=401,
            detail="Not authenticated",
            headers={"WWW-Authenticate": "Bearer"} if challenge else None,
        )
    return credentials.strip()


def work_order_dependency(
    runtime: Runtime, model: type[M], *, challenge: bool = True
) -> Callable[[Request], M]:
    """A FastAPI dependency that verifies the Bearer WOT and validates it as ``model``.

    ``challenge=False`` (UCS): a missing token's 401 has no ``WWW-Authenticate``.
    """
    public_key = jwk.JWK.from_json(runtime.state.signing_key().export_public())

    def dependency(request: Request) -> M:
        token = bearer_token(request, challenge=challenge)
        try:
            claims = verify_wot(
                public_key, token, now=runtime.clock(), leeway=runtime.settings.wot_leeway
            )
            return validate_work_order(model, claims)
        except InvalidTokenError as error:
            raise HTTPException(
                status_code=401, detail="Invalid authentication credentials"
            ) from error

    return dependency
