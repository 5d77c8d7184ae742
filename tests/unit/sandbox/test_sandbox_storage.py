"""``S3Storage.copy`` against embedded moto: one ``CopyObject`` or a multipart copy.

Archival and staging copy whole objects server-side; from ``copy_threshold`` bytes the
copy is split into ``UploadPartCopy`` requests, so that no single request of a
multi-GiB copy has to outlast the read timeout. Thresholds here are S3's smallest
part (5 MiB) so the multipart path runs on small objects.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from ghga_sandbox.storage import (
    COPY_READ_TIMEOUT,
    MIN_PART_SIZE,
    SINGLE_COPY_LIMIT,
    EmbeddedS3,
    S3Storage,
)

MiB = 1024**2


@pytest.fixture(scope="module")
def s3_url() -> Iterator[str]:
    server = EmbeddedS3()
    server.start()
    yield server.url
    server.stop()


def small_threshold_storage(url: str) -> S3Storage:
    storage = S3Storage(
        url,
        access_key="test",
        secret_key="test",
        copy_threshold=MIN_PART_SIZE,
        copy_part_size=MIN_PART_SIZE,
    )
    storage.ensure_buckets(["HD01"])
    return storage


def count_calls(storage: S3Storage) -> dict[str, int]:
    """Count the copy client's S3 operations by name (botocore ``before-call`` events)."""
    calls: dict[str, int] = {}

    def note(model: Any, **_: Any) -> None:
        calls[model.name] = calls.get(model.name, 0) + 1

    storage._copier().meta.events.register("before-call.s3", note)
    return calls


def put(storage: S3Storage, key: str, data: bytes) -> None:
    storage._client.put_object(Bucket="hd01-permanent", Key=key, Body=data)


def read(storage: S3Storage, bucket: str, key: str) -> bytes:
    stream = storage.open_stream(bucket, key)
    try:
        return bytes(stream.read())
    finally:
        stream.close()


def test_copy_from_the_threshold_is_a_multipart_copy(s3_url: str) -> None:
    storage = small_threshold_storage(s3_url)
    data = os.urandom(2 * MIN_PART_SIZE + 12_345)  # three parts, the last one short
    put(storage, "big", data)
    calls = count_calls(storage)

    storage.copy("hd01-permanent", "big", "hd01-outbox", "big")

    assert calls.get("UploadPartCopy") == 3
    assert calls.get("CompleteMultipartUpload") == 1
    assert "CopyObject" not in calls
    head = storage.head("hd01-outbox", "big")
    assert head is not None and str(head["ETag"]).strip('"').endswith("-3")
    copied = read(storage, "hd01-outbox", "big")
    assert hashlib.sha256(copied).hexdigest() == hashlib.sha256(data).hexdigest()


def test_copy_below_the_threshold_is_one_copy_object(s3_url: str) -> None:
    storage = small_threshold_storage(s3_url)
    data = os.urandom(MIN_PART_SIZE - 1)
    put(storage, "small", data)
    calls = count_calls(storage)

    storage.copy("hd01-permanent", "small", "hd01-outbox", "small")

    assert calls.get("CopyObject") == 1
    assert "UploadPartCopy" not in calls
    assert read(storage, "hd01-outbox", "small") == data


def test_copy_client_waits_longer_than_botocores_default(s3_url: str) -> None:
    storage = S3Storage(s3_url, access_key="test", secret_key="test")
    assert storage._copier().meta.config.read_timeout == COPY_READ_TIMEOUT
    assert storage._client.meta.config.read_timeout == 60  # other calls: unchanged


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"copy_threshold": SINGLE_COPY_LIMIT + 1}, "copy_threshold"),
        ({"copy_part_size": MIN_PART_SIZE - 1}, "copy_part_size"),
    ],
)
def test_copy_settings_outside_s3_limits_are_refused(
    s3_url: str, settings: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        S3Storage(s3_url, access_key="test", secret_key="test", **settings)
