"""Pure size arithmetic for Crypt4GH streams, upload parts and download ranges.

All sizes are in bytes. Nothing here performs I/O. Sources: ``ghga-api-contract.md``
§4.1 (object layout), §4.2 (part size) and §5.4 (limits); the Crypt4GH specification
(GA4GH) for segment sizes.
"""

from __future__ import annotations

from ghga_connector.c4gh.layout import (
    CIPHER_DIFF,
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    ByteRange,
)

#: S3 multipart limits (contract §5.4).
MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PART_SIZE = 5 * 1024 * 1024 * 1024
MAX_PART_COUNT = 10_000

#: The smallest and largest segment-aligned part sizes within the S3 limits.
MIN_ALIGNED_PART_SIZE = -(-MIN_PART_SIZE // CIPHER_SEGMENT_SIZE) * CIPHER_SEGMENT_SIZE
MAX_ALIGNED_PART_SIZE = (MAX_PART_SIZE // CIPHER_SEGMENT_SIZE) * CIPHER_SEGMENT_SIZE

__all__ = [
    "CIPHER_DIFF",
    "CIPHER_SEGMENT_SIZE",
    "ENVELOPE_SIZE",
    "MAX_ALIGNED_PART_SIZE",
    "MAX_PART_COUNT",
    "MIN_ALIGNED_PART_SIZE",
    "SEGMENT_SIZE",
    "ByteRange",
    "body_size",
    "byte_ranges",
    "download_range_size",
    "encrypted_size",
    "plaintext_size",
    "segment_count",
    "upload_part_size",
]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _round_up(value: int, multiple: int) -> int:
    return _ceil_div(value, multiple) * multiple


def segment_count(plain_size: int) -> int:
    """Number of Crypt4GH segments for ``plain_size`` bytes of plaintext.

    Raises:
        ValueError: if ``plain_size`` is negative.
    """
    if plain_size < 0:
        raise ValueError("plain_size must not be negative")
    return _ceil_div(plain_size, SEGMENT_SIZE)


def body_size(plain_size: int) -> int:
    """Size of the Crypt4GH body (segments, no envelope) for ``plain_size`` bytes.

    This is the DRS object ``size`` of a downloadable file (contract §4.4).

    Raises:
        ValueError: if ``plain_size`` is negative.
    """
    return plain_size + CIPHER_DIFF * segment_count(plain_size)


def encrypted_size(plain_size: int) -> int:
    """Size of the uploaded object: envelope plus body (contract §4.1 ``encrypted_size``).

    Raises:
        ValueError: if ``plain_size`` is negative.
    """
    return ENVELOPE_SIZE + body_size(plain_size)


def plaintext_size(body: int) -> int:
    """Inverse of :func:`body_size`: plaintext bytes in a body of ``body`` bytes.

    Raises:
        ValueError: if no plaintext size yields a body of that size.
    """
    full, rest = divmod(body, CIPHER_SEGMENT_SIZE)
    if rest and rest <= CIPHER_DIFF:
        raise ValueError(f"{body} bytes is not a valid Crypt4GH body size")
    return full * SEGMENT_SIZE + max(rest - CIPHER_DIFF, 0)


def upload_part_size(configured: int, total_encrypted_size: int) -> int:
    """The part size for an upload, following contract §4.2.

    1. round ``configured`` up to a multiple of the cipher segment size (65,564 bytes);
    2. if that gives 10,000 parts or more, use ``ceil((size - 124) / 9995)`` rounded
       the same way;
    3. clamp to [5,245,120, 5,368,708,140] (S3's 5 MiB .. 5 GiB, segment-aligned).

    Raises:
        ValueError: if ``configured`` is not positive.
    """
    if configured <= 0:
        raise ValueError("part size must be positive")
    size = _round_up(configured, CIPHER_SEGMENT_SIZE)
    if _ceil_div(total_encrypted_size, size) >= MAX_PART_COUNT:
        size = _round_up(
            _ceil_div(total_encrypted_size - ENVELOPE_SIZE, MAX_PART_COUNT - 5),
            CIPHER_SEGMENT_SIZE,
        )
    return min(max(size, MIN_ALIGNED_PART_SIZE), MAX_ALIGNED_PART_SIZE)


def download_range_size(configured: int) -> int:
    """Length of one download Range request: ``configured`` rounded up to whole segments.

    Segment-aligned ranges let each range be authenticated and decrypted on its own.

    Raises:
        ValueError: if ``configured`` is not positive.
    """
    if configured <= 0:
        raise ValueError("part size must be positive")
    return _round_up(configured, CIPHER_SEGMENT_SIZE)


def byte_ranges(total: int, part_size: int) -> list[ByteRange]:
    """Split ``total`` bytes into consecutive ranges of ``part_size`` (the last may be short).

    The ranges tile ``[0, total)`` exactly; ``total == 0`` yields no ranges.

    Raises:
        ValueError: if ``part_size`` is not positive or ``total`` is negative.
    """
    if part_size <= 0 or total < 0:
        raise ValueError("part_size must be positive and total non-negative")
    return [
        ByteRange(part_no=i + 1, start=start, stop=min(start + part_size, total))
        for i, start in enumerate(range(0, total, part_size))
    ]


def plaintext_span(part: ByteRange, plain_size: int) -> tuple[int, int]:
    """The plaintext ``[start, stop)`` whose segments begin inside upload part ``part``.

    ``part`` is a range of the uploaded object (envelope first). The spans of all parts
    tile ``[0, plain_size)``; progress and the ordered SHA-256 use them.
    """
    body_start = max(part.start - ENVELOPE_SIZE, 0)
    body_stop = max(part.stop - ENVELOPE_SIZE, 0)
    first = _ceil_div(body_start, CIPHER_SEGMENT_SIZE) * SEGMENT_SIZE
    stop = _ceil_div(body_stop, CIPHER_SEGMENT_SIZE) * SEGMENT_SIZE
    return min(first, plain_size), min(stop, plain_size)
