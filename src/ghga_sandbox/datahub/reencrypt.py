"""Crypt4GH segment re-encryption: decrypt with the upload's data key, seal with a new secret."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ghga_sandbox.c4gh import CIPHER_DIFF, CIPHER_SEGMENT_SIZE, SEGMENT_SIZE

__all__ = ["NONCE_SIZE"]

NONCE_SIZE = 12
"""ChaCha20-Poly1305 (IETF) nonce bytes at the start of every cipher segment."""


class _Reencryptor:
    """Decrypts Crypt4GH cipher segments with one key and encrypts them with another.

    Standard Crypt4GH segments (12-byte nonce ‖ ciphertext ‖ 16-byte MAC; a fresh
    random nonce per output segment) through ``cryptography``'s ChaCha20-Poly1305,
    which releases the GIL. Feeds the plaintext to :attr:`digest` (SHA-256) and counts
    it in :attr:`decrypted`. One 65 536-byte plaintext buffer per instance.
    """

    def __init__(self, data_key: bytes, new_secret: bytes) -> None:
        self._open = ChaCha20Poly1305(data_key)
        self._seal = ChaCha20Poly1305(new_secret)
        self._into = hasattr(self._open, "decrypt_into")  # cryptography >= 45
        self._plain = bytearray(SEGMENT_SIZE)
        self.digest = hashlib.sha256()
        self.decrypted = 0

    def part(self, chunk: bytes) -> bytearray:
        """Re-encrypt whole cipher segments (the last one may be short), same size out.

        Raises :class:`ValueError` if a segment is too short or its MAC does not verify.
        """
        source = memoryview(chunk)
        out = bytearray(len(chunk))
        target = memoryview(out)
        nonces = os.urandom(NONCE_SIZE * -(-len(chunk) // CIPHER_SEGMENT_SIZE))
        for index, offset in enumerate(range(0, len(chunk), CIPHER_SEGMENT_SIZE)):
            segment = source[offset : offset + CIPHER_SEGMENT_SIZE]
            length = len(segment) - CIPHER_DIFF
            plain = self._decrypt(segment, length)
            self.digest.update(plain)
            self.decrypted += length
            nonce = nonces[index * NONCE_SIZE : (index + 1) * NONCE_SIZE]
            sealed = target[offset : offset + len(segment)]
            sealed[:NONCE_SIZE] = nonce
            if self._into:
                self._seal.encrypt_into(nonce, plain, None, sealed[NONCE_SIZE:])
            else:  # pragma: no cover - older cryptography
                sealed[NONCE_SIZE:] = self._seal.encrypt(nonce, plain, None)
        return out

    def _decrypt(self, segment: memoryview, length: int) -> memoryview | bytes:
        try:
            if length <= 0:  # as libsodium: a segment needs at least one plaintext byte
                raise ValueError("segment too short")
            nonce, sealed = segment[:NONCE_SIZE], segment[NONCE_SIZE:]
            if self._into:
                plain = memoryview(self._plain)[:length]
                self._open.decrypt_into(nonce, sealed, None, plain)
                return plain
            return self._open.decrypt(nonce, sealed, None)  # pragma: no cover - older cryptography
        except Exception as error:
            raise ValueError("segment does not decrypt with this data key") from error
