"""The Crypt4GH object layout: segment and envelope sizes and the byte range type.

All sizes are in bytes. Sources: the Crypt4GH specification (GA4GH) for segment sizes,
``ghga-api-contract.md`` §4.1 for the one-recipient envelope. This module imports
nothing from the rest of the connector, so :mod:`ghga_connector.c4gh` stays a leaf;
:mod:`ghga_connector.core.planning` re-exports everything here.
"""

from __future__ import annotations

from dataclasses import dataclass

import crypt4gh

__all__ = [
    "CIPHER_DIFF",
    "CIPHER_SEGMENT_SIZE",
    "ENVELOPE_SIZE",
    "SEGMENT_SIZE",
    "ByteRange",
]

#: Plaintext bytes per Crypt4GH segment (65,536).
SEGMENT_SIZE: int = int(crypt4gh.SEGMENT_SIZE)
#: Nonce (12) plus MAC (16) added to each segment (28).
CIPHER_DIFF: int = int(crypt4gh.CIPHER_DIFF)
#: Bytes of a full encrypted segment (65,564).
CIPHER_SEGMENT_SIZE: int = int(crypt4gh.CIPHER_SEGMENT_SIZE)

#: Size of the Crypt4GH envelope (header) for one recipient: 16-byte preamble plus one
#: 108-byte data-encryption-parameters packet.
ENVELOPE_SIZE = 124


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A half-open byte range ``[start, stop)`` with its 1-based part number."""

    part_no: int
    start: int
    stop: int

    @property
    def length(self) -> int:
        """Number of bytes in the range."""
        return self.stop - self.start

    @property
    def http_range(self) -> str:
        """The HTTP ``Range`` header value (inclusive end), e.g. ``bytes=0-99``."""
        return f"bytes={self.start}-{self.stop - 1}"
