"""The Data Hub step against embedded moto S3, in process: results, failures, concurrency.

Inputs are encrypted and outputs decrypted with crypt4gh's own libsodium segment
functions, so the re-encryption (``cryptography``'s ChaCha20-Poly1305) is checked
against the reference implementation.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from ghga_sandbox import datahub as datahub_module
from ghga_sandbox.app import create_app
from ghga_sandbox.c4gh import (
    CIPHER_SEGMENT_SIZE,
    ENVELOPE_SIZE,
    SEGMENT_SIZE,
    body_size,
    decrypt_segment,
    encrypt_segment,
    generate_key_pair,
    make_envelope,
)
from ghga_sandbox.config import SandboxSettings
from ghga_sandbox.datahub import PART_SIZE, DataHub, _PartUploads
from ghga_sandbox.runtime import Runtime
from ghga_sandbox.state import Box, FileUpload, SandboxState, now_utc
from ghga_sandbox.storage import EmbeddedS3, S3Storage
from ghga_sandbox.uploads import UploadController

ALIAS = "HD01"
INBOX, INTERROGATION, PERMANENT = "hd01-inbox", "hd01-interrogation", "hd01-permanent"


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = EmbeddedS3()
    server.start()
    yield server.url
    server.stop()


@pytest.fixture
def s3(s3_url: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=s3_url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture
def runtime(tmp_path: Path, s3_url: str) -> Iterator[Runtime]:
    storage = S3Storage(s3_url, access_key="test", secret_key="test")
    storage.ensure_buckets([ALIAS])
    state = SandboxState.open(tmp_path / "state.sqlite3")
    settings = SandboxSettings(state_dir=tmp_path, public_url="http://127.0.0.1:9999")
    the_runtime: Runtime = create_app(settings, state, storage).state.runtime
    yield the_runtime
    the_runtime.stager.shutdown()
    state.close()


@pytest.fixture
def hub(runtime: Runtime) -> DataHub:
    return DataHub(runtime, UploadController(runtime))


def encrypt_body(plain: bytes, secret: bytes) -> bytes:
    """Header-less Crypt4GH segments of ``plain`` (reference implementation)."""
    out = bytearray()
    buffer = bytearray(CIPHER_SEGMENT_SIZE)
    for offset in range(0, len(plain), SEGMENT_SIZE):
        used = encrypt_segment(plain[offset : offset + SEGMENT_SIZE], secret, buffer)
        out += buffer[:used]
    return bytes(out)


def decrypt_body(body: bytes, secret: bytes) -> bytes:
    """Inverse of :func:`encrypt_body` (reference implementation)."""
    out = bytearray()
    plain = bytearray(SEGMENT_SIZE)
    for offset in range(0, len(body), CIPHER_SEGMENT_SIZE):
        length = decrypt_segment(body[offset : offset + CIPHER_SEGMENT_SIZE], secret, plain)
        out += plain[:length]
    return bytes(out)


def put_inbox(
    runtime: Runtime,
    s3: Any,
    box: Box,
    alias: str,
    plain: bytes,
    *,
    sha256: str | None = None,
    declared_size: int | None = None,
    body_edit: Any = None,
    recipient: bytes | None = None,
) -> FileUpload:
    """An ``inbox`` upload whose object is a Crypt4GH file for the Data Hub key."""
    secret = os.urandom(32)
    hub_public = recipient or runtime.state.datahub_key(ALIAS).public
    envelope = make_envelope(secret, generate_key_pair().secret, hub_public)
    body = encrypt_body(plain, secret)
    if body_edit is not None:
        body = body_edit(body)
    object_id = str(uuid.uuid4())
    s3.put_object(Bucket=INBOX, Key=object_id, Body=envelope + body)
    now = now_utc()
    upload = FileUpload(
        id=str(uuid.uuid4()),
        box_id=box.id,
        alias=alias,
        state="inbox",
        state_updated=now,
        storage_alias=ALIAS,
        bucket_id=INBOX,
        object_id=object_id,
        decrypted_size=len(plain) if declared_size is None else declared_size,
        encrypted_size=ENVELOPE_SIZE + len(body),
        part_size=16 * 1024 * 1024,
        initiated=now,
        decrypted_sha256=sha256 or hashlib.sha256(plain).hexdigest(),
    )
    runtime.state.put_upload(upload)
    return upload


def box_of(runtime: Runtime, box_id: str) -> Box:
    box = runtime.state.get_box(box_id)
    assert box is not None
    return box


def read_object(s3: Any, bucket: str, key: str) -> bytes:
    return bytes(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def exists(s3: Any, bucket: str, key: str) -> bool:
    return any(o["Key"] == key for o in s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def open_multipart_uploads(s3: Any) -> list[str]:
    return [u["Key"] for u in s3.list_multipart_uploads(Bucket=INTERROGATION).get("Uploads", [])]


def check_interrogated(runtime: Runtime, s3: Any, upload: FileUpload, plain: bytes) -> None:
    """State and object of an ``interrogated`` upload are what the step promises."""
    assert upload.state == "interrogated"
    assert upload.bucket_id == INTERROGATION
    body = read_object(s3, INTERROGATION, upload.object_id)
    assert len(body) == upload.encrypted_size == body_size(len(plain))
    parts = [body[i : i + PART_SIZE] for i in range(0, len(body), PART_SIZE)]
    assert upload.encrypted_parts_md5 == [hashlib.md5(p).hexdigest() for p in parts]
    assert upload.encrypted_parts_sha256 == [hashlib.sha256(p).hexdigest() for p in parts]
    assert upload.secret_id is not None
    secret = runtime.state.get_secret(upload.secret_id)
    assert secret is not None
    assert decrypt_body(body, secret) == plain
    assert runtime.state.get_upload(upload.id) == upload


def test_interrogate_many_and_archive(runtime: Runtime, hub: DataHub, s3: Any) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    contents = {
        "a.bam": os.urandom(2 * PART_SIZE + 12_345),  # three parts, short last segment
        "b.vcf.gz": os.urandom(SEGMENT_SIZE),  # exactly one segment
        "c.bam": b"c" * 100,
        "d.bam": os.urandom(5 * SEGMENT_SIZE + 1),
    }
    uploads = [put_inbox(runtime, s3, box, alias, plain) for alias, plain in contents.items()]
    version = box_of(runtime, box.id).version

    results = hub.interrogate_many(uploads)

    assert [r.id for r in results] == [u.id for u in uploads]
    for result in results:
        check_interrogated(runtime, s3, result, contents[result.alias])
    for upload in uploads:
        assert not exists(s3, INBOX, upload.object_id)
    assert box_of(runtime, box.id).version == version + len(uploads)
    assert not set(open_multipart_uploads(s3)) & {r.object_id for r in results}

    runtime.state.set_box_state(box.id, "locked")
    before = {o.accession for o in runtime.state.list_drs_objects()}
    outcomes = hub.archive_box(box.id)

    assert [o.alias for o in outcomes] == sorted(contents)
    accessions = [str(o.accession) for o in outcomes]
    assert accessions == sorted(accessions) and not set(accessions) & before
    for outcome, interrogated in zip(outcomes, sorted(results, key=lambda r: r.alias), strict=True):
        archived = runtime.state.get_upload(outcome.file_id)
        assert archived is not None and archived.state == "archived"
        assert archived.bucket_id == PERMANENT
        drs = runtime.state.get_drs_object(accession=outcome.accession)
        assert drs is not None and drs.object_id == archived.object_id
        assert drs.extension == (".vcf.gz" if archived.alias == "b.vcf.gz" else ".bam")
        assert not exists(s3, INTERROGATION, interrogated.object_id)
        secret = runtime.state.get_secret(drs.secret_id)
        assert secret is not None
        body = read_object(s3, PERMANENT, archived.object_id)
        assert decrypt_body(body, secret) == contents[archived.alias]
    assert box_of(runtime, box.id).state == "archived"


def _flip_byte(position: int) -> Any:
    def edit(body: bytes) -> bytes:
        return body[:position] + bytes([body[position] ^ 1]) + body[position + 1 :]

    return edit


@pytest.mark.parametrize(
    ("plain", "kwargs", "reason"),
    [
        (b"x" * 1000, {"sha256": "0" * 64}, "Decrypted content checksum mismatch (SHA-256)"),
        (b"x" * 1000, {"declared_size": 999}, "Decrypted size 1000 differs from the declared 999"),
        (
            bytes(PART_SIZE + 5),  # corrupt MAC in the second part
            {"body_edit": _flip_byte(PART_SIZE + 40)},
            "Decryption failed: segment does not decrypt with this data key",
        ),
        (
            bytes(SEGMENT_SIZE + 5),  # last segment cut to 28 bytes: no plaintext left
            {"body_edit": lambda body: body[:-5]},
            "Decryption failed: segment does not decrypt with this data key",
        ),
    ],
)
def test_failed_checks(
    runtime: Runtime, hub: DataHub, s3: Any, plain: bytes, kwargs: dict[str, Any], reason: str
) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    upload = put_inbox(runtime, s3, box, "f.bin", plain, **kwargs)
    open_before = set(open_multipart_uploads(s3))

    result = hub.interrogate(upload)

    assert (result.state, result.failure_reason) == ("failed", reason)
    assert runtime.state.get_upload(upload.id) == result
    assert not exists(s3, INBOX, upload.object_id)
    assert set(open_multipart_uploads(s3)) <= open_before  # the new upload was aborted


def test_wrong_envelope_key(runtime: Runtime, hub: DataHub, s3: Any) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    stranger = generate_key_pair().public
    upload = put_inbox(runtime, s3, box, "f.bin", b"data", recipient=stranger)
    result = hub.interrogate(upload)
    assert result.state == "failed"
    assert (result.failure_reason or "").startswith("Cannot open the Crypt4GH envelope: ")


def test_part_upload_error_aborts_and_leaves_the_upload(
    runtime: Runtime, hub: DataHub, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    upload = put_inbox(runtime, s3, box, "big.bin", os.urandom(3 * PART_SIZE))
    real = runtime.storage.upload_part

    def flaky(bucket: str, key: str, upload_id: str, part_no: int, data: Any, **kw: Any) -> str:
        if part_no == 2:
            raise RuntimeError("S3 went away")
        return str(real(bucket, key, upload_id, part_no, data, **kw))

    monkeypatch.setattr(runtime.storage, "upload_part", flaky)
    open_before = set(open_multipart_uploads(s3))
    with pytest.raises(RuntimeError, match="S3 went away"):
        hub.interrogate(upload)
    assert set(open_multipart_uploads(s3)) <= open_before
    assert runtime.state.get_upload(upload.id) == upload  # still inbox
    assert exists(s3, INBOX, upload.object_id)


def test_interrogate_many_raises_the_first_error_and_finishes_the_others(
    runtime: Runtime, hub: DataHub, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    plains = [os.urandom(1000 + i) for i in range(3)]
    uploads = [put_inbox(runtime, s3, box, f"f{i}.bin", p) for i, p in enumerate(plains)]
    broken = uploads[1].object_id
    real = runtime.storage.open_stream

    def open_stream(bucket: str, key: str, start: int = 0) -> Any:
        if key == broken:
            raise RuntimeError("cannot read")
        return real(bucket, key, start)

    monkeypatch.setattr(runtime.storage, "open_stream", open_stream)
    with pytest.raises(RuntimeError, match="cannot read"):
        hub.interrogate_many(uploads)
    states = {u.alias: u.state for u in runtime.state.list_uploads(box.id)}
    assert states["f1.bin"] == "inbox"
    assert set(states.values()) <= {"inbox", "interrogated"}


def test_archive_copy_failure_keeps_sequential_outcome(
    runtime: Runtime, hub: DataHub, s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = runtime.state.create_box(ALIAS, 1 << 40)
    uploads = [put_inbox(runtime, s3, box, f"f{i}.bin", os.urandom(500)) for i in range(4)]
    hub.interrogate_many(uploads)
    runtime.state.set_box_state(box.id, "locked")
    real = runtime.storage.copy
    calls: list[str] = []

    def copy(src_bucket: str, src_key: str, dst_bucket: str, dst_key: str) -> None:
        calls.append(dst_key)
        upload = next(u for u in runtime.state.list_uploads(box.id) if u.object_id == src_key)
        if upload.alias == "f1.bin":
            time.sleep(0.05)  # let the later copies finish first
            raise RuntimeError("copy failed")
        real(src_bucket, src_key, dst_bucket, dst_key)

    monkeypatch.setattr(runtime.storage, "copy", copy)
    permanent_before = {o["Key"] for o in s3.list_objects_v2(Bucket=PERMANENT).get("Contents", [])}
    with pytest.raises(RuntimeError, match="copy failed"):
        hub.archive_box(box.id)
    states = {u.alias: u.state for u in runtime.state.list_uploads(box.id)}
    assert states == {
        "f0.bin": "archived",
        "f1.bin": "awaiting_archival",
        "f2.bin": "awaiting_archival",
        "f3.bin": "awaiting_archival",
    }
    permanent_after = {o["Key"] for o in s3.list_objects_v2(Bucket=PERMANENT).get("Contents", [])}
    archived = next(u for u in runtime.state.list_uploads(box.id) if u.alias == "f0.bin")
    assert permanent_after - permanent_before == {archived.object_id}  # no orphaned copies
    assert len(calls) == 4


def test_part_uploads_bound_parts_in_flight() -> None:
    running = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.01)
        with lock:
            running -= 1

    with _PartUploads(threads=4, in_flight=2) as uploads:
        futures = [uploads.submit(work) for _ in range(10)]
    assert all(f.done() and f.exception() is None for f in futures)
    assert peak == 2


def test_documented_bounds() -> None:
    assert PART_SIZE == 8_392_192
    assert datahub_module.PARTS_IN_FLIGHT >= 1 and datahub_module.FILES_IN_FLIGHT >= 1
