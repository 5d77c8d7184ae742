"""The Data Hub and archival step (contract §6.4), as one sandbox worker.

Upstream this is the Data Hub file service plus FIS, EKSS and IFRS; here:

1. :meth:`DataHub.interrogate` — for an ``inbox`` upload: read the 124-byte envelope,
   open it with the storage alias's Data Hub secret key, stream-decrypt the segments
   and compare SHA-256 and size with the upload (mismatch or decryption error →
   ``failed`` with a reason); re-encrypt every segment with a **new** random secret
   into ``<alias>-interrogation`` under a new uuid4 key **without** header; store the
   secret; state ``interrogated``; delete the inbox object.
2. :meth:`DataHub.archive_box` — ``locked`` box without ``init``/``inbox`` uploads:
   ``interrogated`` → ``awaiting_archival`` → copy to ``<alias>-permanent`` under a new
   uuid4 → ``archived``; register a DRS object with a new accession.

What runs concurrently, and the bounds (sizes in bytes):

* **Within one file** (:meth:`DataHub.interrogate`): a reader thread fetches the next
  ciphertext part of ``PART_SIZE`` (128 cipher segments = 8 392 192 bytes) from S3
  while the calling thread decrypts, hashes (SHA-256) and re-encrypts the current one;
  each re-encrypted part goes to a pool of ``UPLOAD_THREADS`` (4) threads that compute
  its MD5 and SHA-256 and send it with ``UploadPart`` (with ``Content-MD5`` instead of
  a SigV4 payload hash, see :meth:`~ghga_sandbox.storage.S3Storage.upload_part`). At
  most ``PARTS_IN_FLIGHT`` (4) parts are queued or uploading at once; the calling
  thread waits for a free slot. Part numbers and the per-part MD5/SHA-256 lists follow
  the file order. On any error the parts in flight finish (or are cancelled), then the
  multipart upload is aborted.
* **Across files** (:meth:`DataHub.interrogate_many`, used by
  :meth:`DataHub.archive_everything`): up to ``FILES_IN_FLIGHT`` (3) uploads are
  interrogated at once, each with its own reader thread; they share the upload threads
  and the ``PARTS_IN_FLIGHT`` bound. State writes (secret, upload, box version) of one
  file happen together under :attr:`~ghga_sandbox.state.SandboxState.lock`.
* **Archival** (:meth:`DataHub.archive_box`): up to ``COPIES_IN_FLIGHT`` (4)
  server-side copies to permanent storage run at once; deleting the interrogation
  objects, allocating accessions and registering DRS objects then happen in upload
  (alias) order, so every file gets the accession it got when this was sequential.

Segment crypto uses ``cryptography``'s ChaCha20-Poly1305 (IETF, the Crypt4GH cipher:
12-byte nonce ‖ ciphertext ‖ 16-byte MAC per 65 536-byte plaintext segment), which,
like ``hashlib`` and socket I/O, releases the GIL, so these threads run in parallel.

Memory is bounded: per file being interrogated up to three parts (one being read,
one being decrypted, its re-encryption) plus ``PARTS_IN_FLIGHT`` parts in flight in
all, i.e. at most (3 × 3 + 4) × 8 392 192 bytes ≈ 109 MB (≈ 59 MB for a single file),
plus one 65 536-byte plaintext segment per file.
"""

from ghga_sandbox.datahub.archival import COPIES_IN_FLIGHT, Archiver, FileOutcome, file_extension
from ghga_sandbox.datahub.hub import ArchiveReport, DataHub
from ghga_sandbox.datahub.interrogation import FILES_IN_FLIGHT, InterrogationError, Interrogator
from ghga_sandbox.datahub.pipeline import (
    PART_SIZE,
    PARTS_IN_FLIGHT,
    SEGMENTS_PER_PART,
    UPLOAD_THREADS,
    _PartUploads,
)
from ghga_sandbox.datahub.reencrypt import NONCE_SIZE

__all__ = [
    "COPIES_IN_FLIGHT",
    "FILES_IN_FLIGHT",
    "NONCE_SIZE",
    "PARTS_IN_FLIGHT",
    "PART_SIZE",
    "SEGMENTS_PER_PART",
    "UPLOAD_THREADS",
    "ArchiveReport",
    "Archiver",
    "DataHub",
    "FileOutcome",
    "InterrogationError",
    "Interrogator",
    "_PartUploads",
    "file_extension",
]
