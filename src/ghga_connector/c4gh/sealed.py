"""Opening libsodium sealed boxes: the wrapping of WPATs and work order tokens.

The work package service seals each token to the user's public key with
``crypto_box_seal`` (X25519 + XSalsa20-Poly1305) and sends it as standard padded
base64 (contract §2.2, §2.3).
"""

from __future__ import annotations

import base64
import binascii

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox

__all__ = ["SealedBoxError", "open_sealed_b64"]


class SealedBoxError(ValueError):
    """The text is not base64, or the box was not sealed to this key."""


def open_sealed_b64(sealed_b64: str, secret_key: bytes) -> bytes:
    """Open a base64-encoded sealed box with the user's 32-byte X25519 secret key.

    Raises:
        SealedBoxError: if the text is not base64 or was sealed for another key.
    """
    try:
        sealed = base64.b64decode(sealed_b64, validate=True)
    except (binascii.Error, ValueError) as error:
        raise SealedBoxError("not valid base64") from error
    try:
        return bytes(SealedBox(PrivateKey(secret_key)).decrypt(sealed))
    except CryptoError as error:
        raise SealedBoxError("sealed for another key or damaged") from error
