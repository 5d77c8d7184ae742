"""Persistent sandbox state in one SQLite file (``<state dir>/state.sqlite3``).

Holds what the GHGA services keep in MongoDB and the key store keeps in Vault: file
upload boxes, file uploads, work packages (token hashes only), DRS objects with their
accessions, file secrets, and the service keys (WPS signing key, one Data Hub Crypt4GH
key pair per storage alias, the central EKSS key pair), created on first use and reused
on restart.

Thread-safe: one connection guarded by :attr:`SandboxState.lock` (an ``RLock``) that
callers may also hold around compound read-check-write sequences.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jwcrypto import jwk

from ghga_sandbox.c4gh import KeyPair, generate_key_pair
from ghga_sandbox.tokens import generate_signing_key

__all__ = [
    "COUNTED_STATES",
    "UPLOAD_STATES",
    "Box",
    "DrsObject",
    "FileUpload",
    "SandboxState",
    "WorkPackage",
    "now_utc",
]

BoxState = Literal["open", "locked", "archived"]
UploadState = Literal[
    "init", "inbox", "failed", "cancelled", "interrogated", "awaiting_archival", "archived"
]
UPLOAD_STATES: tuple[str, ...] = (
    "init",
    "inbox",
    "failed",
    "cancelled",
    "interrogated",
    "awaiting_archival",
    "archived",
)
COUNTED_STATES = frozenset({"inbox", "interrogated", "awaiting_archival", "archived"})
"""Upload states whose decrypted sizes make up a box's ``size`` (contract §5.2)."""


def now_utc() -> datetime:
    """The current time, UTC, millisecond precision (as the GHGA services store it)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value is not None else None


@dataclass(frozen=True)
class Box:
    """A file upload box (FUB) and the research data upload box (RDUB) it belongs to."""

    id: str
    rdub_id: str
    version: int
    state: BoxState
    storage_alias: str
    max_size: int
    created: datetime


@dataclass(frozen=True)
class FileUpload:
    """A file upload as UCS lists it (contract §3.3(a)), plus bookkeeping."""

    id: str
    box_id: str
    alias: str
    state: UploadState
    state_updated: datetime
    storage_alias: str
    bucket_id: str
    object_id: str
    decrypted_size: int
    encrypted_size: int
    part_size: int
    initiated: datetime
    secret_id: str | None = None
    decrypted_sha256: str | None = None
    encrypted_parts_md5: list[str] | None = None
    encrypted_parts_sha256: list[str] | None = None
    failure_reason: str | None = None
    s3_upload_id: str | None = None
    completed: datetime | None = None
    last_activity: datetime | None = None

    def with_state(self, state: UploadState, **changes: Any) -> FileUpload:
        """A copy in ``state`` with ``state_updated`` set to now and other changes."""
        return replace(self, state=state, state_updated=now_utc(), **changes)


@dataclass(frozen=True)
class WorkPackage:
    """A WPS work package; the access token itself is never stored, only its hash."""

    id: str
    type: Literal["upload", "download"]
    user_public_key: str
    token_hash: str
    created: datetime
    expires: datetime
    files: dict[str, str] = field(default_factory=dict)
    rdub_id: str | None = None
    fub_id: str | None = None
    revoked: bool = False


@dataclass(frozen=True)
class DrsObject:
    """A registered, archived file (DCS DRS object) with its accession."""

    accession: str
    file_id: str
    secret_id: str
    decrypted_sha256: str
    decrypted_size: int
    encrypted_size: int
    creation_date: datetime
    storage_alias: str
    object_id: str
    extension: str
    staging_requested_at: float | None = None
    staged_at: float | None = None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS boxes (
    id TEXT PRIMARY KEY, rdub_id TEXT NOT NULL UNIQUE, version INTEGER NOT NULL,
    state TEXT NOT NULL, storage_alias TEXT NOT NULL, max_size INTEGER NOT NULL,
    created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS uploads (
    id TEXT PRIMARY KEY, box_id TEXT NOT NULL, alias TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS uploads_box ON uploads (box_id);
CREATE TABLE IF NOT EXISTS work_packages (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS drs_objects (
    accession TEXT PRIMARY KEY, file_id TEXT NOT NULL UNIQUE, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS file_secrets (id TEXT PRIMARY KEY, secret TEXT NOT NULL);
"""

_DATETIME_FIELDS = {
    "state_updated",
    "initiated",
    "completed",
    "last_activity",
    "created",
    "expires",
    "creation_date",
}


def _to_doc(obj: Any) -> str:
    raw = asdict(obj)
    return json.dumps({k: _ts(v) if k in _DATETIME_FIELDS else v for k, v in raw.items()})


def _from_doc(doc: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(doc)
    return {k: _dt(v) if k in _DATETIME_FIELDS else v for k, v in raw.items()}


class SandboxState:
    """Repository over the SQLite file; construct with :meth:`open`."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: Path) -> SandboxState:
        """Open (creating if needed) the state database at ``path``."""
        path.parent.mkdir(parents=True, exist_ok=True)
        # Created 0600 before SQLite opens it: SQLite gives the -wal and -shm files (which
        # hold keys and file secrets too) the mode of the database file.
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600))
        path.chmod(0o600)
        for sidecar in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if sidecar.exists() and not sidecar.is_symlink():
                sidecar.chmod(0o600)  # left by an earlier version with the default mode
        connection = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        connection.row_factory = sqlite3.Row
        connection.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: no fsync per write (safe against a crash of the process; a power
        # loss may drop the last writes, which a local sandbox can afford).
        connection.execute("PRAGMA synchronous=NORMAL")
        connection.executescript(_SCHEMA)
        return cls(connection)

    def close(self) -> None:
        """Close the database connection."""
        with self.lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def discard_data(self) -> int:
        """Forget boxes, uploads, work packages, DRS objects and file secrets.

        Keys and the accession counter stay. Used at start with the in-memory S3,
        whose objects did not survive the restart. Returns the number of boxes dropped.
        """
        with self._tx() as db:
            dropped = int(db.execute("SELECT COUNT(*) FROM boxes").fetchone()[0])
            for table in ("boxes", "uploads", "work_packages", "drs_objects", "file_secrets"):
                db.execute(f"DELETE FROM {table}")  # noqa: S608 - fixed names
        return dropped

    # --- meta and keys -------------------------------------------------------------

    def get_meta(self, key: str) -> str | None:
        """A value of the ``meta`` table, or ``None``."""
        with self.lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row["value"])

    def set_meta(self, key: str, value: str) -> None:
        """Insert or replace a ``meta`` value."""
        with self.lock:
            self._db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def _get_or_create(self, key: str, make: Any) -> str:
        with self.lock:
            value = self.get_meta(key)
            if value is None:
                value = str(make())
                self.set_meta(key, value)
            return value

    def signing_key(self) -> jwk.JWK:
        """The WPS EC P-256 private JWK, created on first use."""
        exported = self._get_or_create(
            "wps_signing_key", lambda: generate_signing_key().export_private()
        )
        return jwk.JWK.from_json(exported)

    def _key_pair(self, name: str) -> KeyPair:
        encoded = self._get_or_create(
            name, lambda: base64.b64encode(generate_key_pair().secret).decode()
        )
        return KeyPair(base64.b64decode(encoded))

    def datahub_key(self, storage_alias: str) -> KeyPair:
        """The Data Hub Crypt4GH key pair of a storage alias, created on first use."""
        return self._key_pair(f"datahub_key:{storage_alias}")

    def central_key(self) -> KeyPair:
        """The central (EKSS) Crypt4GH key pair, writer of download envelopes."""
        return self._key_pair("central_key")

    # --- boxes ---------------------------------------------------------------------

    def create_box(self, storage_alias: str, max_size: int) -> Box:
        """Create an open file upload box with a linked research data upload box id."""
        box = Box(
            id=str(uuid.uuid4()),
            rdub_id=str(uuid.uuid4()),
            version=0,
            state="open",
            storage_alias=storage_alias,
            max_size=max_size,
            created=now_utc(),
        )
        with self._tx() as db:
            db.execute(
                "INSERT INTO boxes VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    box.id,
                    box.rdub_id,
                    box.version,
                    box.state,
                    box.storage_alias,
                    box.max_size,
                    _ts(box.created),
                ),
            )
        return box

    @staticmethod
    def _box(row: sqlite3.Row) -> Box:
        created = _dt(row["created"])
        assert created is not None
        return Box(
            id=row["id"],
            rdub_id=row["rdub_id"],
            version=row["version"],
            state=row["state"],
            storage_alias=row["storage_alias"],
            max_size=row["max_size"],
            created=created,
        )

    def get_box(self, box_id: str) -> Box | None:
        """A box by its FUB id, or ``None``."""
        with self.lock:
            row = self._db.execute("SELECT * FROM boxes WHERE id = ?", (box_id,)).fetchone()
        return None if row is None else self._box(row)

    def list_boxes(self) -> list[Box]:
        """All boxes, oldest first."""
        with self.lock:
            rows = self._db.execute("SELECT * FROM boxes ORDER BY created, id").fetchall()
        return [self._box(row) for row in rows]

    def set_box_state(self, box_id: str, state: BoxState) -> Box:
        """Change a box's state and bump its version; raise ``KeyError`` if absent."""
        with self._tx() as db:
            cursor = db.execute(
                "UPDATE boxes SET state = ?, version = version + 1 WHERE id = ?", (state, box_id)
            )
            if cursor.rowcount != 1:
                raise KeyError(box_id)
        box = self.get_box(box_id)
        assert box is not None
        return box

    def bump_box_version(self, box_id: str) -> None:
        """Increase a box's version (every change of its contents counts)."""
        with self.lock:
            self._db.execute("UPDATE boxes SET version = version + 1 WHERE id = ?", (box_id,))

    def box_size(self, box_id: str) -> int:
        """Sum of decrypted sizes of uploads in counted states (contract §5.2)."""
        return sum(u.decrypted_size for u in self.list_uploads(box_id) if u.state in COUNTED_STATES)

    # --- uploads -------------------------------------------------------------------

    def put_upload(self, upload: FileUpload) -> None:
        """Insert or replace a file upload."""
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO uploads (id, box_id, alias, doc) VALUES (?, ?, ?, ?)",
                (upload.id, upload.box_id, upload.alias, _to_doc(upload)),
            )

    def delete_upload(self, file_id: str) -> None:
        """Remove a file upload record (replacement of a failed/cancelled alias)."""
        with self.lock:
            self._db.execute("DELETE FROM uploads WHERE id = ?", (file_id,))

    def get_upload(self, file_id: str) -> FileUpload | None:
        """A file upload by ``file_id`` (regardless of box, as UCS does), or ``None``."""
        with self.lock:
            row = self._db.execute("SELECT doc FROM uploads WHERE id = ?", (file_id,)).fetchone()
        return None if row is None else FileUpload(**_from_doc(row["doc"]))

    def list_uploads(self, box_id: str | None = None) -> list[FileUpload]:
        """Uploads of one box (or all), ordered by alias."""
        with self.lock:
            if box_id is None:
                rows = self._db.execute("SELECT doc FROM uploads ORDER BY alias, id").fetchall()
            else:
                rows = self._db.execute(
                    "SELECT doc FROM uploads WHERE box_id = ? ORDER BY alias, id", (box_id,)
                ).fetchall()
        return [FileUpload(**_from_doc(row["doc"])) for row in rows]

    # --- work packages -------------------------------------------------------------

    def put_work_package(self, package: WorkPackage) -> None:
        """Insert or replace a work package."""
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO work_packages (id, doc) VALUES (?, ?)",
                (package.id, _to_doc(package)),
            )

    def get_work_package(self, package_id: str) -> WorkPackage | None:
        """A work package by id, or ``None``."""
        with self.lock:
            row = self._db.execute(
                "SELECT doc FROM work_packages WHERE id = ?", (package_id,)
            ).fetchone()
        return None if row is None else WorkPackage(**_from_doc(row["doc"]))

    def list_work_packages(self) -> list[WorkPackage]:
        """All work packages, oldest first."""
        with self.lock:
            rows = self._db.execute("SELECT doc FROM work_packages").fetchall()
        packages = [WorkPackage(**_from_doc(row["doc"])) for row in rows]
        return sorted(packages, key=lambda p: p.created)

    # --- DRS objects and accessions -----------------------------------------------------

    def next_accession(self) -> str:
        """Allocate the next accession ``GHGAF`` + 14 digits (sequential)."""
        with self.lock:
            number = int(self.get_meta("accession_counter") or "0") + 1
            self.set_meta("accession_counter", str(number))
        return f"GHGAF{number:014d}"

    def put_drs_object(self, obj: DrsObject) -> None:
        """Insert or replace a DRS object."""
        with self.lock:
            self._db.execute(
                "INSERT OR REPLACE INTO drs_objects (accession, file_id, doc) VALUES (?, ?, ?)",
                (obj.accession, obj.file_id, _to_doc(obj)),
            )

    def get_drs_object(
        self, *, accession: str | None = None, file_id: str | None = None
    ) -> DrsObject | None:
        """A DRS object by accession or by file id, or ``None``."""
        column, value = ("accession", accession) if accession is not None else ("file_id", file_id)
        with self.lock:
            row = self._db.execute(
                f"SELECT doc FROM drs_objects WHERE {column} = ?",  # noqa: S608 - fixed names
                (value,),
            ).fetchone()
        return None if row is None else DrsObject(**_from_doc(row["doc"]))

    def list_drs_objects(self) -> list[DrsObject]:
        """All DRS objects ordered by accession."""
        with self.lock:
            rows = self._db.execute("SELECT doc FROM drs_objects ORDER BY accession").fetchall()
        return [DrsObject(**_from_doc(row["doc"])) for row in rows]

    # --- file secrets (EKSS) -------------------------------------------------------------

    def put_secret(self, secret: bytes) -> str:
        """Store a 32-byte file secret; return its new ``secret_id``."""
        secret_id = secrets.token_urlsafe(16)
        with self.lock:
            self._db.execute(
                "INSERT INTO file_secrets (id, secret) VALUES (?, ?)",
                (secret_id, base64.b64encode(secret).decode()),
            )
        return secret_id

    def get_secret(self, secret_id: str) -> bytes | None:
        """A stored file secret, or ``None``."""
        with self.lock:
            row = self._db.execute(
                "SELECT secret FROM file_secrets WHERE id = ?", (secret_id,)
            ).fetchone()
        return None if row is None else base64.b64decode(row["secret"])
