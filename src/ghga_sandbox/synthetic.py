"""Synthetic archived objects: a Crypt4GH body generated on the fly from a seed.

A :class:`SyntheticObject` is ``plain_size`` bytes of seeded plaintext, encrypted under a
data key derived from the seed, as the header-less Crypt4GH body the archive stores
(contract §4.4): segment ``i`` is ``nonce(i) ‖ ChaCha20-Poly1305(key, nonce(i), plain(i))``
with a 12-byte nonce and a 16-byte MAC, 65 564 bytes for a full segment. Any byte range
can be generated without the ones before it, so an S3 server can answer ranged GETs of a
200 GB object it never stored (``ghga-sandbox serve --s3 sink``).

The plaintext of segment ``i`` is a fixed 64 KiB block drawn from SHAKE-256 of the seed,
with its first 16 bytes replaced by ``i`` and the seed (8 bytes big-endian each), so no
two segments are alike (a swapped or repeated segment changes the SHA-256); the last
segment is cut to the object's size. Nothing is random: the same seed and size always give
the same bytes, data key and SHA-256. :func:`plaintext_sha256` streams the plaintext once
(about 1.5 GB/s on one core) and can cache the result in a folder.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ghga_sandbox.c4gh import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE, body_size

__all__ = ["SyntheticObject", "plaintext_sha256"]

NONCE_SIZE = 12
_TAG = b"ghga-sandbox synthetic object"


@dataclass(frozen=True)
class SyntheticObject:
    """``plain_size`` bytes (≥ 0) of plaintext from ``seed`` (0 ≤ seed < 2**64), encrypted."""

    seed: int
    plain_size: int

    def __post_init__(self) -> None:
        if self.plain_size < 0:
            raise ValueError("plain_size must be non-negative")
        if not 0 <= self.seed < 1 << 64:
            raise ValueError("seed must be in [0, 2**64)")

    @cached_property
    def _block(self) -> bytes:
        return hashlib.shake_256(_TAG + self.seed.to_bytes(8, "big")).digest(SEGMENT_SIZE)

    @cached_property
    def data_key(self) -> bytes:
        """The 32-byte Crypt4GH data key (the DRS object's file secret)."""
        return hashlib.sha256(_TAG + b" key " + self.seed.to_bytes(8, "big")).digest()

    @cached_property
    def _aead(self) -> ChaCha20Poly1305:
        return ChaCha20Poly1305(self.data_key)

    @property
    def size(self) -> int:
        """Bytes of the encrypted body (what S3 holds): ``body_size(plain_size)``."""
        return body_size(self.plain_size)

    @property
    def segments(self) -> int:
        """Number of Crypt4GH segments."""
        return -(-self.plain_size // SEGMENT_SIZE)

    def plain_segment(self, index: int) -> bytes:
        """Plaintext of segment ``index`` (65 536 bytes, fewer for the last)."""
        if not 0 <= index < self.segments:
            raise IndexError(f"segment {index} of {self.segments}")
        length = min(SEGMENT_SIZE, self.plain_size - index * SEGMENT_SIZE)
        stamp = index.to_bytes(8, "big") + self.seed.to_bytes(8, "big")
        return (stamp + self._block[16:length])[:length]

    def cipher_segment(self, index: int) -> bytes:
        """Ciphertext of segment ``index``: nonce ‖ encrypted plaintext ‖ MAC."""
        nonce = b"SYNT" + index.to_bytes(8, "big")
        return nonce + self._aead.encrypt(nonce, self.plain_segment(index), None)

    def plaintext(self, chunk_segments: int = 16) -> Iterator[bytes]:
        """The whole plaintext, ``chunk_segments`` segments per chunk."""
        for first in range(0, self.segments, chunk_segments):
            last = min(first + chunk_segments, self.segments)
            yield b"".join(self.plain_segment(i) for i in range(first, last))

    def read(self, start: int, length: int, chunk: int = 1 << 20) -> Iterator[bytes]:
        """Bytes ``start .. start+length-1`` of the encrypted body, about ``chunk`` at a time.

        Raises :class:`ValueError` for a range outside the body.
        """
        if start < 0 or length < 0 or start + length > self.size:
            raise ValueError(f"range {start}+{length} outside a body of {self.size} bytes")
        index, skip = divmod(start, CIPHER_SEGMENT_SIZE)
        remaining = length
        pending: list[bytes] = []
        pending_size = 0
        while remaining > 0:
            segment = self.cipher_segment(index)
            piece = segment[skip : skip + remaining]
            skip = 0
            index += 1
            remaining -= len(piece)
            pending.append(piece)
            pending_size += len(piece)
            if pending_size >= chunk:
                yield b"".join(pending)
                pending, pending_size = [], 0
        if pending:
            yield b"".join(pending)


def plaintext_sha256(obj: SyntheticObject, cache_dir: Path | None = None) -> str:
    """Hex SHA-256 of the object's plaintext, streamed once or read from ``cache_dir``.

    The cache holds one small JSON file per seed and size
    (``synthetic-<seed>-<plain_size>.json``); a missing or unreadable one is recomputed.
    """
    cached = (
        None if cache_dir is None else cache_dir / f"synthetic-{obj.seed}-{obj.plain_size}.json"
    )
    if cached is not None and cached.is_file():
        try:
            return str(json.loads(cached.read_text(encoding="utf-8"))["sha256"])
        except (ValueError, KeyError, OSError):
            pass
    digest = hashlib.sha256()
    for piece in obj.plaintext(64):
        digest.update(piece)
    result = digest.hexdigest()
    if cached is not None:
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_text(
            json.dumps({"seed": obj.seed, "plain_size": obj.plain_size, "sha256": result}) + "\n",
            encoding="utf-8",
        )
    return result
