"""Crypt4GH pieces the sandbox needs: size math, key pairs, envelopes, segment crypto.

All sizes are in bytes and derive from ``crypt4gh.SEGMENT_SIZE`` (65 536) and
``crypt4gh.CIPHER_DIFF`` (28 = nonce 12 + MAC 16); the envelope (one recipient, one
data-key packet) is 124 bytes (contract §4.1, §4.4).
"""

from __future__ import annotations

import contextlib
import io
import secrets
from pathlib import Path

import crypt4gh
from crypt4gh import header, sodium
from crypt4gh.keys import c4gh

__all__ = [
    "CIPHER_DIFF",
    "CIPHER_SEGMENT_SIZE",
    "ENVELOPE_SIZE",
    "SEGMENT_SIZE",
    "KeyPair",
    "body_size",
    "decrypt_segment",
    "encrypt_segment",
    "encrypted_size",
    "generate_key_pair",
    "make_envelope",
    "make_envelope_two_packets",
    "open_envelope",
    "plain_size",
    "public_key_of",
    "write_user_key_files",
]

SEGMENT_SIZE: int = crypt4gh.SEGMENT_SIZE
CIPHER_DIFF: int = crypt4gh.CIPHER_DIFF
CIPHER_SEGMENT_SIZE: int = crypt4gh.CIPHER_SEGMENT_SIZE
ENVELOPE_SIZE = 124
"""Crypt4GH header with one X25519 data-key packet: 16 preamble + 108 packet bytes."""


def body_size(decrypted_size: int) -> int:
    """Ciphertext bytes of the segments (no header): ``n + 28·ceil(n/65536)``."""
    if decrypted_size < 0:
        raise ValueError("sizes are non-negative")
    segments = -(-decrypted_size // SEGMENT_SIZE)
    return decrypted_size + CIPHER_DIFF * segments


def encrypted_size(decrypted_size: int) -> int:
    """Size of an upload object, envelope included: ``body_size(n) + 124``."""
    return body_size(decrypted_size) + ENVELOPE_SIZE


def plain_size(body: int) -> int:
    """Inverse of :func:`body_size`: plaintext bytes of a header-less ciphertext body.

    Raises :class:`ValueError` for a size no plaintext encrypts to (a last segment of
    1–28 bytes).
    """
    full, rest = divmod(body, CIPHER_SEGMENT_SIZE)
    if 0 < rest <= CIPHER_DIFF:
        raise ValueError(f"{body} bytes is not a valid Crypt4GH body size")
    return full * SEGMENT_SIZE + max(rest - CIPHER_DIFF, 0)


class KeyPair:
    """An X25519 key pair as raw 32-byte values."""

    __slots__ = ("public", "secret")

    def __init__(self, secret: bytes) -> None:
        if len(secret) != 32:
            raise ValueError("an X25519 secret key has 32 bytes")
        self.secret = bytes(secret)
        self.public = public_key_of(self.secret)


def public_key_of(secret: bytes) -> bytes:
    """Raw X25519 public key for a raw 32-byte secret key."""
    return bytes(sodium.derive_pk(secret))


def generate_key_pair() -> KeyPair:
    """A fresh random X25519 key pair (Data Hub or central key)."""
    return KeyPair(secrets.token_bytes(32))


def write_user_key_files(secret_path: Path, public_path: Path) -> None:
    """Write a passphrase-less Crypt4GH key pair in the standard PEM-like format.

    Demo only: the secret key is not encrypted. Both files end up with mode 0600.
    Uses ``crypt4gh.keys.c4gh.generate`` (its "not encrypted" warning is swallowed).
    """
    with contextlib.redirect_stderr(io.StringIO()):
        c4gh.generate(str(secret_path), str(public_path), passphrase=b"", comment=b"ghga-sandbox")
    secret_path.chmod(0o600)
    public_path.chmod(0o600)


def make_envelope(secret: bytes, writer_secret_key: bytes, recipient_public_key: bytes) -> bytes:
    """A 124-byte Crypt4GH header carrying the data key ``secret`` for one recipient."""
    packet = header.make_packet_data_enc(0, secret)
    packets = header.encrypt(packet, [(0, writer_secret_key, recipient_public_key)])
    serialized = bytes(header.serialize(packets))
    if len(serialized) != ENVELOPE_SIZE:  # pragma: no cover - format invariant
        raise RuntimeError(f"unexpected envelope size {len(serialized)}")
    return serialized


def make_envelope_two_packets(
    secret: bytes, writer_secret_key: bytes, recipient_public_key: bytes
) -> bytes:
    """A 232-byte header with two packets: one for the recipient, one for a random key.

    Valid Crypt4GH, but not the one-packet envelope GHGA sends (``envelope_two_packets``
    fault).
    """
    stranger_public = public_key_of(secrets.token_bytes(32))
    packet = header.make_packet_data_enc(0, secret)
    packets = header.encrypt(
        packet,
        [(0, writer_secret_key, recipient_public_key), (0, writer_secret_key, stranger_public)],
    )
    return bytes(header.serialize(packets))


def open_envelope(envelope: bytes, recipient_secret_key: bytes) -> bytes:
    """Return the single data key of a Crypt4GH header.

    Raises :class:`ValueError` if the header cannot be decrypted with the key, holds an
    edit list, or holds other than exactly one data key.
    """
    session_keys, edit_list = header.deconstruct(
        io.BytesIO(envelope), keys=[(0, recipient_secret_key, None)], sender_pubkey=None
    )
    if edit_list is not None:
        raise ValueError("envelopes with an edit list are not supported")
    if len(session_keys) != 1:
        raise ValueError(f"expected exactly one data key, found {len(session_keys)}")
    return bytes(session_keys[0])


def decrypt_segment(
    ciphertext: bytes | bytearray | memoryview, key: bytes, out: bytearray | memoryview
) -> int:
    """Decrypt one ciphertext segment into ``out``; return the plaintext length.

    Raises :class:`ValueError` if the MAC does not verify.
    """
    try:
        return int(sodium.chacha20poly1305_decrypt(out, ciphertext, key))
    except Exception as error:
        raise ValueError("segment does not decrypt with this data key") from error


def encrypt_segment(
    plaintext: bytes | bytearray | memoryview, key: bytes, out: bytearray | memoryview
) -> int:
    """Encrypt up to 65 536 plaintext bytes into ``out`` (nonce ‖ ciphertext ‖ MAC).

    Returns the ciphertext length (plaintext + 28).
    """
    return int(sodium.chacha20poly1305_encrypt(out, plaintext, key))
