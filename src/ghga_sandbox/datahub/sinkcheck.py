"""The Data Hub check of an upload the sink S3 did not keep (``serve --s3 sink``).

Without the bytes the content cannot be decrypted, so the SHA-256 of the plaintext
cannot be checked. What the sink recorded is checked instead (docs/sandbox.md, "--s3 sink"):

1. the object exists and its size is the declared encrypted size, which is the Crypt4GH
   size of the declared plaintext size (124-byte envelope + 28 bytes per segment);
2. part count and sizes: every part but the last has the upload's part size, the last
   is not larger, and the count is ``ceil(size / part_size)`` (≤ 10 000);
3. the per-part MD5 list the client sent at completion equals the MD5s the sink computed
   from the bytes it received (each also checked against the part's ``ETag``), and the
   client sent one SHA-256 per part;
4. the envelope (kept with the first bytes of part 1) opens with the Data Hub key, and
   every whole segment among the kept first bytes decrypts and authenticates with its
   data key; a file that fits entirely into the kept bytes is decrypted in full and its
   SHA-256 compared.

The interrogated object is the uploaded body without its envelope (a copy of extents,
still without bytes); its file secret is the upload's own data key (nothing is
re-encrypted). Reading it back answers 501: downloads at scale use synthetic objects.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from ghga_sandbox.c4gh import (
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    body_size,
    encrypted_size,
    open_envelope,
)
from ghga_sandbox.sinks3 import SinkError, SinkStore
from ghga_sandbox.state import FileUpload
from ghga_sandbox.storage import bucket_name

__all__ = ["SinkCheckError", "SinkInterrogation", "check_sink_upload"]

MAX_PARTS = 10_000


class SinkCheckError(Exception):
    """What the sink recorded contradicts what the client declared."""


@dataclass
class SinkInterrogation:
    """The result of a passed check: where the body is, its size, the secret, part digests."""

    bucket: str
    key: str
    size: int
    secret: bytes
    parts_md5: list[str] = field(default_factory=list)
    parts_sha256: list[str] = field(default_factory=list)
    checked_segments: int = 0


def check_sink_upload(
    store: SinkStore, upload: FileUpload, datahub_secret: bytes
) -> SinkInterrogation:
    """Check one ``inbox`` upload against the sink's records; copy its body for archival.

    Raises :class:`SinkCheckError` with the reason for the first check that fails.
    """
    try:
        obj = store.get(upload.bucket_id, upload.object_id)
    except SinkError as error:
        raise SinkCheckError(f"the uploaded object is missing: {error}") from error
    declared = encrypted_size(upload.decrypted_size)
    if obj.size != upload.encrypted_size or obj.size != declared:
        raise SinkCheckError(
            f"size {obj.size} differs from the declared encrypted size {upload.encrypted_size}"
            f" (Crypt4GH size of {upload.decrypted_size} plaintext bytes: {declared})"
        )
    sizes, part_size = obj.part_sizes, upload.part_size
    expected_parts = max(-(-obj.size // part_size), 1)
    if len(sizes) != expected_parts or len(sizes) > MAX_PARTS:
        raise SinkCheckError(f"{len(sizes)} parts, expected {expected_parts} of {part_size} bytes")
    if any(s != part_size for s in sizes[:-1]) or sizes[-1] > part_size:
        raise SinkCheckError(f"part sizes differ from the part size {part_size}")
    if list(upload.encrypted_parts_md5 or []) != obj.parts_md5:
        raise SinkCheckError("the per-part MD5s sent at completion differ from the received parts")
    if len(upload.encrypted_parts_sha256 or []) != len(sizes):
        raise SinkCheckError("the completion did not list one SHA-256 per part")
    head = obj.head()
    try:
        data_key = open_envelope(head[:ENVELOPE_SIZE], datahub_secret)
    except ValueError as error:
        raise SinkCheckError(f"Cannot open the Crypt4GH envelope: {error}") from error
    checked = _check_segments(head[ENVELOPE_SIZE:], data_key, upload)
    key = str(uuid.uuid4())
    bucket = bucket_name(upload.storage_alias, "interrogation")
    store.copy((upload.bucket_id, upload.object_id), (bucket, key), ENVELOPE_SIZE)
    return SinkInterrogation(
        bucket=bucket,
        key=key,
        size=body_size(upload.decrypted_size),
        secret=data_key,
        parts_md5=list(obj.parts_md5),
        parts_sha256=list(upload.encrypted_parts_sha256 or []),
        checked_segments=checked,
    )


def _check_segments(kept: bytes, data_key: bytes, upload: FileUpload) -> int:
    """Decrypt the whole segments in ``kept``; the full SHA-256 if the file fits in them."""
    aead = ChaCha20Poly1305(data_key)
    whole = len(kept) // CIPHER_SEGMENT_SIZE
    body = body_size(upload.decrypted_size)
    complete = len(kept) >= body
    digest = hashlib.sha256()
    count = 0
    offset = 0
    while offset < min(len(kept), body):
        segment = kept[offset : offset + CIPHER_SEGMENT_SIZE]
        if len(segment) < CIPHER_SEGMENT_SIZE and not complete:
            break
        try:
            plain = aead.decrypt(segment[:12], segment[12:], None)
        except InvalidTag as error:
            raise SinkCheckError(f"segment {count} does not decrypt") from error
        digest.update(plain)
        count += 1
        offset += CIPHER_SEGMENT_SIZE
    if complete:
        if count * SEGMENT_SIZE < upload.decrypted_size - SEGMENT_SIZE:  # pragma: no cover
            raise SinkCheckError("Decrypted size is inconsistent")
        if digest.hexdigest() != upload.decrypted_sha256:
            raise SinkCheckError("Decrypted content checksum mismatch (SHA-256)")
    elif count < whole:  # pragma: no cover - loop invariant
        raise SinkCheckError("segments were skipped")
    return count
