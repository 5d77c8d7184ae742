"""Work package access tokens (WPAT) and work order tokens (WOT), contract §2.2–§2.3.

Pure functions: the caller passes keys and the current time (seconds since the epoch).

* WPAT: 24 characters of ``[A-Za-z0-9]`` from :mod:`secrets`; only its SHA-256 hex is
  stored; the user receives ``"<wp uuid4>:" + base64(SealedBox(user_pk).encrypt(token))``.
* WOT: compact JWS, header ``{"alg":"ES256"}``, JOSE raw ``r‖s`` signature (jwcrypto),
  claims = work order fields + ``iat`` + ``exp = iat + lifetime``; sealed to the user key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import string
from typing import Annotated, Any, Literal, TypeVar

from jwcrypto import jwk, jws
from jwcrypto.common import JWException
from nacl.public import PrivateKey, PublicKey, SealedBox
from pydantic import UUID4, AfterValidator, BaseModel, ConfigDict, ValidationError

__all__ = [
    "WPAT_ALPHABET",
    "WPAT_LENGTH",
    "CloseFileWorkOrder",
    "CreateFileWorkOrder",
    "DeleteFileWorkOrder",
    "DownloadWorkOrder",
    "InvalidTokenError",
    "UploadFileWorkOrder",
    "ViewFileBoxWorkOrder",
    "WorkOrder",
    "b64_public_key",
    "decode_public_key",
    "generate_signing_key",
    "generate_wpat",
    "hash_wpat",
    "mint_wot",
    "open_sealed",
    "seal",
    "validate_work_order",
    "verify_wot",
]

WPAT_LENGTH = 24
WPAT_ALPHABET = string.ascii_letters + string.digits


M = TypeVar("M", bound=BaseModel)


class InvalidTokenError(ValueError):
    """A WOT failed signature, expiry or claim validation (→ 401 at UCS/DCS)."""


def generate_wpat() -> str:
    """Return a fresh work package access token: 24 chars of ``[A-Za-z0-9]``."""
    return "".join(secrets.choice(WPAT_ALPHABET) for _ in range(WPAT_LENGTH))


def hash_wpat(token: str) -> str:
    """Return ``sha256(token).hexdigest()``, the only form the WPS stores."""
    return hashlib.sha256(token.encode("ascii", errors="replace")).hexdigest()


def b64_public_key(raw: bytes) -> str:
    """Standard padded base64 of a raw 32-byte X25519 public key."""
    if len(raw) != 32:
        raise ValueError("a Crypt4GH public key has 32 bytes")
    return base64.b64encode(raw).decode("ascii")


def decode_public_key(value: str) -> bytes:
    """Decode a standard base64 public key; raise :class:`ValueError` unless 32 bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError("not standard base64") from error
    if len(raw) != 32:
        raise ValueError("a Crypt4GH public key has 32 bytes")
    return raw


def seal(user_public_key_b64: str, message: bytes) -> str:
    """``base64(SealedBox(user_pk).encrypt(message))`` (libsodium ``crypto_box_seal``).

    Raises :class:`ValueError` for a key that is not base64 of 32 bytes.
    """
    box = SealedBox(PublicKey(decode_public_key(user_public_key_b64)))
    return base64.b64encode(box.encrypt(message)).decode("ascii")


def open_sealed(user_secret_key: bytes, sealed_b64: str) -> bytes:
    """Inverse of :func:`seal` with the user's raw 32-byte secret key (tests, tools)."""
    return SealedBox(PrivateKey(user_secret_key)).decrypt(base64.b64decode(sealed_b64))


def generate_signing_key() -> jwk.JWK:
    """A fresh WPS EC P-256 private JWK (``work_package_signing_key``)."""
    return jwk.JWK.generate(kty="EC", crv="P-256")


def mint_wot(
    signing_key: jwk.JWK, claims: dict[str, Any], *, now: float, lifetime: int = 30
) -> str:
    """Sign ``claims`` plus ``iat = int(now)``, ``exp = iat + lifetime`` as a compact JWS.

    Uses ES256 with a raw ``r‖s`` signature (64 bytes, base64url), as the WPS does.
    Explicit ``iat``/``exp`` in ``claims`` win (used by tests to mint expired tokens).
    """
    iat = int(now)
    payload = {**claims}
    payload.setdefault("iat", iat)
    payload.setdefault("exp", iat + lifetime)
    token = jws.JWS(json.dumps(payload, separators=(",", ":")).encode())
    token.add_signature(signing_key, alg="ES256", protected='{"alg":"ES256"}')
    return str(token.serialize(compact=True))


def verify_wot(public_key: jwk.JWK, token: str, *, now: float, leeway: int = 0) -> dict[str, Any]:
    """Verify an ES256 compact JWS and its ``exp``; return the claims.

    Raises :class:`InvalidTokenError` on a bad signature, a non-JSON payload, missing or
    non-integer ``iat``/``exp``, or ``now > exp + leeway``.
    """
    parsed = jws.JWS()
    try:
        parsed.deserialize(token)
        parsed.verify(public_key, alg="ES256")
        claims = json.loads(parsed.payload)
    except (JWException, ValueError, TypeError) as error:
        raise InvalidTokenError("invalid signature or payload") from error
    if not isinstance(claims, dict):
        raise InvalidTokenError("claims are not an object")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise InvalidTokenError("iat and exp must be integers")
    if now > exp + leeway:
        raise InvalidTokenError("token expired")
    return claims


def _check_key(value: str) -> str:
    decode_public_key(value)
    return value


Crypt4GHKey = Annotated[str, AfterValidator(_check_key)]


class _WorkOrderBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    user_public_crypt4gh_key: Crypt4GHKey
    iat: int
    exp: int


class DownloadWorkOrder(_WorkOrderBase):
    """DCS download WOT (contract §2.3, §3.4)."""

    work_type: Literal["download"]
    file_id: UUID4
    accession: str


class ViewFileBoxWorkOrder(_WorkOrderBase):
    """UCS ``view`` WOT for listing a file upload box."""

    work_type: Literal["view"]
    box_id: UUID4


class CreateFileWorkOrder(_WorkOrderBase):
    """UCS ``create`` WOT for ``POST /boxes/{box_id}/uploads``."""

    work_type: Literal["create"]
    alias: str
    box_id: UUID4


class UploadFileWorkOrder(_WorkOrderBase):
    """UCS ``upload`` WOT for part URLs."""

    work_type: Literal["upload"]
    file_id: UUID4
    box_id: UUID4


class CloseFileWorkOrder(_WorkOrderBase):
    """UCS ``close`` WOT for completing an upload."""

    work_type: Literal["close"]
    file_id: UUID4
    box_id: UUID4


class DeleteFileWorkOrder(_WorkOrderBase):
    """UCS ``delete`` WOT for removing an upload."""

    work_type: Literal["delete"]
    file_id: UUID4
    box_id: UUID4


WorkOrder = (
    DownloadWorkOrder
    | ViewFileBoxWorkOrder
    | CreateFileWorkOrder
    | UploadFileWorkOrder
    | CloseFileWorkOrder
    | DeleteFileWorkOrder
)


def validate_work_order(model: type[M], claims: dict[str, Any]) -> M:
    """Validate verified claims against a work order model.

    Raises :class:`InvalidTokenError` on a missing claim, a wrong ``work_type``, a
    non-UUID4 id or a key that is not base64 of 32 bytes (all 401 at UCS/DCS).
    """
    try:
        return model.model_validate(claims)
    except ValidationError as error:
        raise InvalidTokenError("claims do not match the work order model") from error
