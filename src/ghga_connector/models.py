"""Value types exchanged between the layers.

Pydantic models mirror the JSON bodies of the GHGA services (``ghga-api-contract.md``
§1.1, §3); dataclasses describe work and outcomes inside the connector. All sizes are
in bytes, all durations in seconds.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "DrsObject",
    "FileOutcome",
    "FileUploadState",
    "Outcome",
    "Staging",
    "TokenSource",
    "UploadChecksums",
    "UploadListItem",
    "UploadWorkType",
    "WellKnownValues",
    "WorkPackage",
]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class WellKnownValues(_Model):
    """``GET {wkvs}/values`` (contract §1.1): service URLs and Data Hub keys."""

    crypt4gh_public_keys: dict[str, str]
    wps_api_url: str
    ucs_api_url: str
    dcs_api_url: str
    storage_labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("wps_api_url", "ucs_api_url", "dcs_api_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    def data_hub_key(self, storage_alias: str) -> bytes:
        """The Data Hub's 32-byte Crypt4GH public key for ``storage_alias``.

        Raises:
            KeyError: if the alias has no key, or the key is not 32 bytes of base64.
        """
        try:
            key = base64.b64decode(self.crypt4gh_public_keys[storage_alias], validate=True)
        except (binascii.Error, ValueError):
            raise KeyError(storage_alias) from None
        if len(key) != 32:
            raise KeyError(storage_alias)
        return key


class WorkPackage(_Model):
    """``GET {wps}/work-packages/{id}`` (contract §3.1)."""

    type: Literal["download", "upload"]
    files: dict[str, str] | None = None
    research_data_upload_box_id: str | None = None
    file_upload_box_id: str | None = None
    created: str | None = None
    expires: str | None = None


class FileUploadState(StrEnum):
    """States of a file upload in a file upload box (contract §5.1)."""

    INIT = "init"
    INBOX = "inbox"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERROGATED = "interrogated"
    AWAITING_ARCHIVAL = "awaiting_archival"
    ARCHIVED = "archived"

    @property
    def is_absent(self) -> bool:
        """``failed`` and ``cancelled`` count as absent: the alias may be uploaded again."""
        return self in (FileUploadState.FAILED, FileUploadState.CANCELLED)

    @property
    def is_complete(self) -> bool:
        """The upload finished on the client side (anything past ``init`` that is not absent)."""
        return self is not FileUploadState.INIT and not self.is_absent


class UploadListItem(_Model):
    """One item of ``GET {ucs}/boxes/{box_id}/uploads`` (contract §3.3(a))."""

    id: str
    alias: str
    state: FileUploadState
    decrypted_size: int | None = None
    encrypted_size: int | None = None
    part_size: int | None = None
    #: SHA-256 (hex) of the plaintext, as the client sent it at completion (contract §3.3(a)).
    decrypted_sha256: str | None = None


class DrsObject(_Model):
    """The staged DRS object of ``GET {dcs}/objects/{accession}`` (contract §3.4(a))."""

    accession: str
    download_url: str = Field(repr=False)
    size: int
    sha256: str | None = None
    max_age: float | None = None


#: The work types of an upload-path work order token (contract §2.3).
UploadWorkType: TypeAlias = Literal["create", "upload", "close", "delete", "view"]

#: A source of opened work order tokens: called with ``force_new=False`` first and
#: ``True`` after the service rejected the token (401/403).
TokenSource: TypeAlias = Callable[[bool], Awaitable[str]]


@dataclass(frozen=True)
class Staging:
    """A DRS object that is not staged yet (HTTP 202): ask again after ``retry_after`` seconds."""

    retry_after: float


@dataclass(frozen=True)
class UploadChecksums:
    """Body of ``PATCH {ucs}/boxes/{box}/uploads/{file_id}`` (contract §3.3(d), §4.3)."""

    decrypted_sha256: str
    encrypted_md5: str
    encrypted_parts_md5: list[str]
    encrypted_parts_sha256: list[str]


class Outcome(StrEnum):
    """How a file ended."""

    DONE = "done"
    SKIPPED = "skipped"
    FAILED = "failed"
    PLANNED = "planned"
    #: Written, but not compared with a GHGA checksum (none was available).
    UNVERIFIED = "unverified"
    #: Another process is transferring the file right now: nothing is proven yet.
    BUSY = "busy"


@dataclass
class FileOutcome:
    """The result of one file of a batch, as shown in the final summary and ``--json``."""

    name: str
    outcome: Outcome
    size: int = 0
    seconds: float = 0.0
    message: str = ""
    path: Path | None = None
    details: dict[str, str | int | float | None] = field(default_factory=dict)
    #: The stable name of the error that failed the file (``ConnectorError.error_code``),
    #: given in its ``--json`` record; empty for other outcomes.
    error_code: str = ""
    #: Plaintext bytes moved over the network in this run (``None``: all of ``size``);
    #: less than ``size`` when a resumed transfer skipped what was already stored.
    transferred: int | None = None

    @property
    def throughput(self) -> float:
        """Bytes per second of plaintext moved in this run; 0 unless the file is ``done``.

        A failed or skipped file, and a resumed one that moved nothing, have no speed.
        """
        moved = self.size if self.transferred is None else self.transferred
        if self.outcome is not Outcome.DONE or self.seconds <= 0 or moved <= 0:
            return 0.0
        return moved / self.seconds
