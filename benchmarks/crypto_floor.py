"""The crypto floor: the unavoidable CPU work per GiB on one core, measured in this run.

Upload: Crypt4GH segment encryption (ChaCha20-Poly1305, 64 KiB segments, a random 12-byte
nonce each) plus the plaintext SHA-256 and the per-part MD5 and SHA-256 of the ciphertext
that the completion call needs. Download: segment decryption plus the plaintext SHA-256.
Every AEAD implementation available here (``cryptography``; PyNaCl's libsodium binding if
installed) is measured and the fastest one is the floor. CPU time is this thread's own
(``time.thread_time``), so the number is per core.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["FloorResult", "measure_floor"]

SEGMENT = 65536
PART = 16 * 1024 * 1024
GIB = 1 << 30

Encrypt = Callable[[bytes, bytes, bytes], bytes]
Decrypt = Callable[[bytes, bytes, bytes], bytes]


@dataclass(frozen=True)
class FloorResult:
    """CPU seconds per GiB of plaintext for one direction with the fastest AEAD."""

    direction: str
    aead: str
    bytes: int
    cpu_s: float
    cpu_s_per_gib: float
    all_aeads: dict[str, float]


def _aeads() -> dict[str, tuple[Encrypt, Decrypt]]:
    """Available ChaCha20-Poly1305 (IETF) implementations: name -> (encrypt, decrypt)."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    found: dict[str, tuple[Encrypt, Decrypt]] = {}

    def c_enc(key: bytes, nonce: bytes, data: bytes) -> bytes:
        return ChaCha20Poly1305(key).encrypt(nonce, data, None)

    # One cipher object per key, as a real client would hold it.
    cache: dict[bytes, ChaCha20Poly1305] = {}

    def c_enc_cached(key: bytes, nonce: bytes, data: bytes) -> bytes:
        aead = cache.get(key) or cache.setdefault(key, ChaCha20Poly1305(key))
        return aead.encrypt(nonce, data, None)

    def c_dec_cached(key: bytes, nonce: bytes, data: bytes) -> bytes:
        aead = cache.get(key) or cache.setdefault(key, ChaCha20Poly1305(key))
        return aead.decrypt(nonce, data, None)

    found["cryptography"] = (c_enc_cached, c_dec_cached)
    try:
        from nacl.bindings import (
            crypto_aead_chacha20poly1305_ietf_decrypt,
            crypto_aead_chacha20poly1305_ietf_encrypt,
        )
    except ImportError:  # pragma: no cover - PyNaCl is a dependency of the client
        return found

    def n_enc(key: bytes, nonce: bytes, data: bytes) -> bytes:
        return crypto_aead_chacha20poly1305_ietf_encrypt(data, None, nonce, key)  # type: ignore[no-any-return]

    def n_dec(key: bytes, nonce: bytes, data: bytes) -> bytes:
        return crypto_aead_chacha20poly1305_ietf_decrypt(data, None, nonce, key)  # type: ignore[no-any-return]

    found["libsodium"] = (n_enc, n_dec)
    return found


def _upload_work(enc: Encrypt, key: bytes, plain_part: bytes, parts: int) -> None:
    """Encrypt ``parts`` parts segment by segment with all hashes the upload needs."""
    plain_sha = hashlib.sha256()
    view = memoryview(plain_part)
    for _ in range(parts):
        part_md5 = hashlib.md5()
        part_sha = hashlib.sha256()
        for off in range(0, len(view), SEGMENT):
            seg = view[off : off + SEGMENT]
            plain_sha.update(seg)
            nonce = os.urandom(12)
            ct = enc(key, nonce, bytes(seg))
            part_md5.update(nonce)
            part_md5.update(ct)
            part_sha.update(nonce)
            part_sha.update(ct)
        part_md5.digest()
        part_sha.digest()
    plain_sha.digest()


def _encrypt_part(enc: Encrypt, key: bytes, plain_part: bytes) -> list[bytes]:
    view = memoryview(plain_part)
    out = []
    for off in range(0, len(view), SEGMENT):
        nonce = os.urandom(12)
        out.append(nonce + enc(key, nonce, bytes(view[off : off + SEGMENT])))
    return out


def _download_work(dec: Decrypt, key: bytes, segments: list[bytes], parts: int) -> None:
    """Decrypt ``parts`` copies of one encrypted part and hash the plaintext."""
    plain_sha = hashlib.sha256()
    for _ in range(parts):
        for seg in segments:
            plain_sha.update(dec(key, seg[:12], seg[12:]))
    plain_sha.digest()


def measure_floor(total_bytes: int) -> list[FloorResult]:
    """Measure both directions over ``total_bytes`` of plaintext (a multiple of 16 MiB)."""
    parts = max(1, total_bytes // PART)
    nbytes = parts * PART
    key = os.urandom(32)
    plain = os.urandom(PART)
    up: dict[str, float] = {}
    down: dict[str, float] = {}
    for name, (enc, dec) in _aeads().items():
        t0 = time.thread_time()
        _upload_work(enc, key, plain, parts)
        up[name] = time.thread_time() - t0
        segments = _encrypt_part(enc, key, plain)
        t0 = time.thread_time()
        _download_work(dec, key, segments, parts)
        down[name] = time.thread_time() - t0
    results = []
    for direction, table in (("upload", up), ("download", down)):
        best = min(table, key=lambda n: table[n])
        results.append(
            FloorResult(
                direction=direction,
                aead=best,
                bytes=nbytes,
                cpu_s=table[best],
                cpu_s_per_gib=table[best] * GIB / nbytes,
                all_aeads={n: round(v * GIB / nbytes, 3) for n, v in table.items()},
            )
        )
    return results


if __name__ == "__main__":
    for r in measure_floor(256 * 1024 * 1024):
        print(r)
