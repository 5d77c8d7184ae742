"""Benchmark inputs, generated on the fly, and SHA-256 checks of outputs.

Random inputs are a seeded ChaCha20 key stream (fast, reproducible, incompressible); the
"BAM" input repeats a real BAM from ``examples/`` up to the wanted size.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

__all__ = [
    "CHUNK",
    "InputFile",
    "make_bam_repeat",
    "make_random",
    "sha256_file",
    "verify_outputs",
]

CHUNK = 8 * 1024 * 1024
"""Bytes per write when generating files."""

HASH_CHUNK = 1024 * 1024
"""Bytes per read when hashing files (fits the CPU cache better than ``CHUNK``)."""


@dataclass(frozen=True)
class InputFile:
    """One generated input file."""

    path: Path
    size: int
    sha256: str


def _keystream(seed: str) -> Cipher:  # type: ignore[type-arg]
    key = hashlib.sha256(seed.encode()).digest()
    return Cipher(algorithms.ChaCha20(key, b"\0" * 16), mode=None)


def make_random(path: Path, size: int, seed: str) -> InputFile:
    """Write ``size`` pseudo-random bytes derived from ``seed`` to ``path``."""
    enc = _keystream(seed).encryptor()
    zeros = bytes(CHUNK)
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            n = min(CHUNK, left)
            block = enc.update(zeros[:n] if n < CHUNK else zeros)
            digest.update(block)
            fh.write(block)
            left -= n
    return InputFile(path, size, digest.hexdigest())


def make_bam_repeat(path: Path, size: int, source: Path) -> InputFile:
    """Write ``size`` bytes made by repeating the real file ``source`` (a BAM)."""
    unit = source.read_bytes()
    if not unit:
        raise ValueError(f"{source} is empty")
    reps = max(1, CHUNK // len(unit))
    block = unit * reps
    digest = hashlib.sha256()
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        left = size
        while left > 0:
            piece = block[: min(len(block), left)]
            digest.update(piece)
            fh.write(piece)
            left -= len(piece)
    return InputFile(path, size, digest.hexdigest())


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file (read into one reused 1 MiB buffer: no copies)."""
    digest = hashlib.sha256()
    buf = bytearray(HASH_CHUNK)
    view = memoryview(buf)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            digest.update(view[:n])
    return digest.hexdigest()


def verify_outputs(expected: Iterable[InputFile], outputs: Iterable[Path]) -> str | None:
    """Compare outputs with inputs as multisets of SHA-256 digests.

    Output names differ per tool (aliases, accessions), so contents are matched instead
    of names: every input must come back exactly once and nothing else may appear.
    Returns ``None`` if they match, else a short description of the difference.
    """
    want = Counter(f.sha256 for f in expected)
    paths = list(outputs)
    # hashlib releases the GIL: many files are hashed on all cores (nothing is measured now)
    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1))) as pool:
        got = Counter(pool.map(sha256_file, paths))
    if want == got:
        return None
    missing = sum((want - got).values())
    extra = sum((got - want).values())
    return (
        f"SHA-256 mismatch: {len(paths)} output files, {missing} expected contents missing, "
        f"{extra} unexpected contents"
    )
