"""The Crypt4GH envelope (header) of an upload, and opening a download envelope.

Upload (contract §4.1): one data-encryption packet holding a random 32-byte secret,
encrypted for the Data Hub's public key (``crypt4gh_public_keys[storage_alias]``) and
written with the user's secret key; serialised to 124 bytes.

Download (contract §4.4): the download controller returns a 124-byte envelope made for
the user's key; opening it yields the secret that decrypts the body.
"""

from __future__ import annotations

import io
import os

from crypt4gh import header as c4gh_header

from ghga_connector.c4gh.layout import ENVELOPE_SIZE

__all__ = [
    "EnvelopeError",
    "MalformedEnvelopeError",
    "check_envelope_shape",
    "make_envelope",
    "new_data_secret",
    "open_envelope",
]

_X25519_CHACHA20_POLY1305 = 0
_MAGIC = b"crypt4gh"
_VERSION = 1
#: Length of the one header packet GHGA sends (its own 4-byte length field included).
_PACKET_SIZE = ENVELOPE_SIZE - 16


class EnvelopeError(ValueError):
    """The envelope is malformed or not meant for this key."""


class MalformedEnvelopeError(EnvelopeError):
    """The envelope is not exactly one well-formed 124-byte Crypt4GH header."""


def check_envelope_shape(envelope: bytes) -> None:
    """Check that ``envelope`` is exactly one Crypt4GH header with one packet.

    Layout (Crypt4GH §3.2): ``"crypt4gh"`` ‖ version 1 (uint32 LE) ‖ packet count 1
    (uint32 LE) ‖ one packet whose uint32 LE length field says 108 bytes = 124 bytes.
    The body downloaded from S3 starts right after it, so any other length would shift
    the written file.

    Raises:
        MalformedEnvelopeError: with what is wrong (sizes and counts only).
    """
    size = len(envelope)
    if size < 16 or envelope[:8] != _MAGIC:
        raise MalformedEnvelopeError(f"not a Crypt4GH header ({size} bytes)")
    version = int.from_bytes(envelope[8:12], "little")
    packets = int.from_bytes(envelope[12:16], "little")
    if version != _VERSION:
        raise MalformedEnvelopeError(f"Crypt4GH version {version}, expected {_VERSION}")
    if packets != 1:
        raise MalformedEnvelopeError(f"{packets} header packets, expected exactly 1")
    first = int.from_bytes(envelope[16:20], "little") if size >= 20 else 0
    if first != _PACKET_SIZE or size != ENVELOPE_SIZE:
        raise MalformedEnvelopeError(
            f"{size} bytes with a packet of {first} bytes, expected one {ENVELOPE_SIZE}-byte header"
        )


def new_data_secret() -> bytes:
    """A fresh random 32-byte ChaCha20-Poly1305 data key for one file."""
    return os.urandom(32)


def make_envelope(secret: bytes, writer_secret_key: bytes, recipient_public_key: bytes) -> bytes:
    """Build the 124-byte Crypt4GH envelope that carries ``secret`` to the recipient.

    Raises:
        ValueError: if a key is not 32 bytes.
    """
    if len(secret) != 32 or len(writer_secret_key) != 32 or len(recipient_public_key) != 32:
        raise ValueError("Crypt4GH keys and secrets are 32 bytes")
    packet = c4gh_header.make_packet_data_enc(_X25519_CHACHA20_POLY1305, secret)
    packets = c4gh_header.encrypt(
        packet, [(_X25519_CHACHA20_POLY1305, writer_secret_key, recipient_public_key)]
    )
    envelope = bytes(c4gh_header.serialize(packets))
    if len(envelope) != ENVELOPE_SIZE:  # pragma: no cover - guaranteed by the format
        raise ValueError(f"unexpected envelope size {len(envelope)}")
    return envelope


def open_envelope(envelope: bytes, user_secret_key: bytes) -> bytes:
    """Return the single data secret in a Crypt4GH envelope made for the user's key.

    Raises:
        MalformedEnvelopeError: the envelope is not exactly one 124-byte header
            (:func:`check_envelope_shape`).
        EnvelopeError: if the envelope cannot be opened, or does not hold exactly one
            data key, or carries an edit list (not used by GHGA).
    """
    check_envelope_shape(envelope)
    try:
        secrets, edit_list = c4gh_header.deconstruct(
            io.BytesIO(envelope), [(_X25519_CHACHA20_POLY1305, user_secret_key, None)]
        )
    except Exception as error:
        raise EnvelopeError("the Crypt4GH envelope could not be opened with your key") from error
    if len(secrets) != 1 or edit_list is not None:
        raise EnvelopeError("the Crypt4GH envelope does not hold exactly one data key")
    return bytes(secrets[0])
