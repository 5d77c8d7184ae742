"""An in-memory GHGA implementing the service ports of ``ghga_connector.core.ports``.

:class:`MemoryGhga` is the upload controller (UCS), the download controller (DCS) and
the S3 object storage at once, so one object is passed as ``ucs=``, ``dcs=`` and
``storage=``. It stores real bytes (uploaded parts with their MD5 ETags, archived
Crypt4GH bodies whose envelopes open with the user's key) and has one switch per
failure the transfer engine must handle:

=========================  ==============================================================
switch                     effect
=========================  ==============================================================
``wrong_etags``            the next N part PUTs answer a wrong ETag
``fail_put_of_part``       the first PUT of that part number fails (connection reset)
``expire_put_urls``        the next N part PUTs answer 403 (:class:`PresignedUrlExpired`)
``fail_complete``          the next N completions fail (connection reset)
``reject_complete``        completion is refused with this ``exception_id``
``fail_delete``            deletes fail (connection reset)
``staging_rounds``         per accession: answer 202 (:class:`Staging`) N times first
``refuse_download``        accessions answered 404 (:class:`FileNotDownloadableError`)
``expire_ranges``          the next N ranged GETs answer 403 (:class:`PresignedUrlExpired`)
``break_ranges``           the next N ranged GETs break off (:class:`BodyBrokenError`)
``corrupt_ranges``         the next N ranged GETs flip one byte (a failed Crypt4GH MAC)
=========================  ==============================================================

``tests/unit/connector/test_conn_fakes.py`` checks that it satisfies the ports (mypy)
and drives the engine against it.
"""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Callable

from crypt4gh import lib as c4gh_lib
from nacl.public import PrivateKey

from ghga_connector.c4gh.envelope import make_envelope, new_data_secret
from ghga_connector.c4gh.keys import KeyPair
from ghga_connector.c4gh.layout import SEGMENT_SIZE
from ghga_connector.c4gh.segments import SegmentCipher
from ghga_connector.core.ports import DcsPort, ObjectStoragePort, PartBody, UcsPort
from ghga_connector.errors import (
    BodyBrokenError,
    FileNotDownloadableError,
    PresignedUrlExpired,
    ServiceUnreachableError,
    UploadRejectedError,
)
from ghga_connector.models import (
    DrsObject,
    Staging,
    TokenSource,
    UploadChecksums,
    UploadListItem,
    WellKnownValues,
)

__all__ = ["ArchivedFile", "MemoryGhga", "encrypt_body"]

#: The presigned-URL query every fake URL carries; it must never reach output or logs.
URL_SECRET = "X-Amz-Signature=secret"


def encrypt_body(secret: bytes, plain: bytes) -> bytes:
    """The Crypt4GH body (segments only, no envelope) of ``plain`` under ``secret``."""
    cipher = SegmentCipher(secret)
    out = bytearray()
    for index, start in enumerate(range(0, len(plain), SEGMENT_SIZE)):
        chunk = plain[start : start + SEGMENT_SIZE]
        buffer = bytearray(len(chunk) + 28)
        cipher.encrypt_segment_into(index, memoryview(chunk), memoryview(buffer))
        out += buffer
    return bytes(out)


class ArchivedFile:
    """One file in the outbox: body, envelope for the user, SHA-256 of the plaintext."""

    def __init__(self, keys: KeyPair, plain: bytes, *, checksum: bool = True) -> None:
        self.plain = plain
        self.secret = new_data_secret()
        self.body = encrypt_body(self.secret, plain)
        self.envelope = make_envelope(self.secret, keys.secret, keys.public)
        self.sha256: str | None = hashlib.sha256(plain).hexdigest() if checksum else None


class MemoryGhga:
    """UCS, DCS and S3 in memory: parts stored by number, real MD5 ETags, failure switches.

    Implements :class:`UcsPort`, :class:`DcsPort` and :class:`ObjectStoragePort`.
    """

    def __init__(self) -> None:
        self.hub = PrivateKey.generate()
        # upload side
        self.parts: dict[int, bytes] = {}
        self.puts: list[int] = []
        #: Every PUT body as received, by part number (retries included).
        self.bodies: dict[int, list[bytes]] = {}
        self.completed: list[UploadChecksums] = []
        self.deleted: list[str] = []
        self.listing: list[UploadListItem] = []
        self.wrong_etags = 0
        self.fail_put_of_part: int | None = None
        self.expire_put_urls = 0
        self.fail_complete = 0
        self.reject_complete: str | None = None
        self.fail_delete = False
        self.url_requests = 0
        self.on_put: Callable[[int], None] | None = None
        self.file_id = "11111111-2222-4333-8444-555555555555"
        # download side
        self.outbox: dict[str, ArchivedFile] = {}
        self.staging_rounds: dict[str, int] = {}
        self.retry_after = 3.0
        self.refuse_download: set[str] = set()
        self.expire_ranges = 0
        self.break_ranges = 0
        self.corrupt_ranges = 0
        self.url_max_age: float | None = None
        self.drs_requests: list[str] = []
        self.range_requests = 0
        self.tokens_forced = 0

    # --- the well-known values the uploader needs -------------------------------------

    @property
    def values(self) -> WellKnownValues:
        """Well-known values naming this hub's Crypt4GH public key."""
        key = base64.b64encode(bytes(self.hub.public_key)).decode()
        return WellKnownValues(
            crypt4gh_public_keys={"hub": key}, wps_api_url="w", ucs_api_url="u", dcs_api_url="d"
        )

    # --- UcsPort ----------------------------------------------------------------------

    async def list_uploads(self, box_id: str, token: TokenSource) -> list[UploadListItem]:
        await token(False)
        return list(self.listing)

    async def create_upload(
        self,
        box_id: str,
        token: TokenSource,
        *,
        alias: str,
        decrypted_size: int,
        encrypted_size: int,
        part_size: int,
        overwrite: bool,
    ) -> tuple[str, str]:
        return self.file_id, "hub"

    async def get_part_url(
        self, box_id: str, file_id: str, part_no: int, token: TokenSource
    ) -> str:
        assert file_id == self.file_id
        self.url_requests += 1
        return f"http://s3/{file_id}/{part_no}"

    async def complete_upload(
        self, box_id: str, file_id: str, checksums: UploadChecksums, token: TokenSource
    ) -> None:
        assert file_id == self.file_id
        if self.fail_complete:
            self.fail_complete -= 1
            raise ServiceUnreachableError("connection reset")
        if self.reject_complete:
            raise UploadRejectedError(
                "Upload integrity checksum mismatch.",
                exception_id=self.reject_complete,
                status_code=400,
            )
        self.completed.append(checksums)

    async def delete_upload(self, box_id: str, file_id: str, token: TokenSource) -> None:
        self.deleted.append(file_id)
        if self.fail_delete:
            raise ServiceUnreachableError("connection reset")
        self.parts.clear()

    # --- DcsPort ----------------------------------------------------------------------

    def add_file(
        self, accession: str, keys: KeyPair, plain: bytes, *, checksum: bool = True
    ) -> ArchivedFile:
        """Archive ``plain`` under ``accession``, readable with ``keys``."""
        archived = ArchivedFile(keys, plain, checksum=checksum)
        self.outbox[accession] = archived
        return archived

    async def get_drs_object(self, accession: str, token: TokenSource) -> DrsObject | Staging:
        await token(False)
        self.drs_requests.append(accession)
        if accession in self.refuse_download or accession not in self.outbox:
            raise FileNotDownloadableError(f"Requesting {accession}: not found", status_code=404)
        if self.staging_rounds.get(accession, 0) > 0:
            self.staging_rounds[accession] -= 1
            return Staging(self.retry_after)
        archived = self.outbox[accession]
        return DrsObject(
            accession=accession,
            download_url=f"http://s3/outbox/{accession}?{URL_SECRET}",
            size=len(archived.body),
            sha256=archived.sha256,
            max_age=self.url_max_age,
        )

    async def get_envelope(self, accession: str, token: TokenSource) -> bytes:
        await token(False)
        if accession not in self.outbox:
            raise FileNotDownloadableError(f"Requesting {accession}: not found", status_code=404)
        return self.outbox[accession].envelope

    # --- ObjectStoragePort ------------------------------------------------------------

    async def put_part(self, url: str, data: memoryview | bytes | PartBody) -> str | None:
        if not isinstance(data, memoryview | bytes):
            # A part produced while it is sent: read it as HTTP would, chunk by chunk.
            size = data.size
            data = b"".join([bytes(chunk) async for chunk in data])
            assert len(data) == size, "the body differs from its Content-Length"
        _, file_id, number = url.rsplit("/", 2)
        assert file_id == self.file_id
        part_no = int(number)
        if self.expire_put_urls:
            self.expire_put_urls -= 1
            raise PresignedUrlExpired
        if part_no == self.fail_put_of_part:
            self.fail_put_of_part = None
            raise ServiceUnreachableError("connection reset")
        self.puts.append(part_no)
        self.parts[part_no] = bytes(data)
        self.bodies.setdefault(part_no, []).append(bytes(data))
        if self.on_put is not None:
            self.on_put(part_no)
        if self.wrong_etags:
            self.wrong_etags -= 1
            return "0" * 32
        return hashlib.md5(bytes(data)).hexdigest()

    async def get_range(self, url: str, start: int, stop: int, into: memoryview) -> None:
        self.range_requests += 1
        accession = url.split("/outbox/", 1)[1].split("?", 1)[0]
        if self.expire_ranges:
            self.expire_ranges -= 1
            raise PresignedUrlExpired
        if self.break_ranges:
            self.break_ranges -= 1
            raise BodyBrokenError("The download broke off.")
        body = self.outbox[accession].body
        into[: stop - start] = body[start:stop]
        if self.corrupt_ranges:
            self.corrupt_ranges -= 1
            into[0] ^= 0xFF

    # --- inspection -------------------------------------------------------------------

    def plaintext(self) -> bytes:
        """The uploaded object decrypted with the Data Hub's key (reference library)."""
        stream = b"".join(self.parts[n] for n in sorted(self.parts))
        out = io.BytesIO()
        c4gh_lib.decrypt([(0, bytes(self.hub), None)], io.BytesIO(stream), out)
        return out.getvalue()


def _conforms(ghga: MemoryGhga) -> tuple[UcsPort, DcsPort, ObjectStoragePort]:
    """Checked by mypy only: :class:`MemoryGhga` satisfies the three ports."""
    return ghga, ghga, ghga
