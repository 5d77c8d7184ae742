"""``S3Storage.copy`` in parts on real SeaweedFS (the back end whose long copies timed out).

A single ``CopyObject`` of several GiB outlasted botocore's read timeout on SeaweedFS;
from ``copy_threshold`` bytes the sandbox copies with ``UploadPartCopy`` instead. Here
the threshold and the part size are S3's smallest part (5 MiB), so a 10 MiB object
takes the multipart path and SeaweedFS must assemble the same bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from ghga_sandbox.seaweed import SeaweedFS
from ghga_sandbox.storage import MIN_PART_SIZE, S3Storage

pytestmark = pytest.mark.integration


def test_multipart_copy_on_seaweedfs(weed: Path, tmp_path: Path) -> None:
    seaweed = SeaweedFS(tmp_path, weed=weed)
    seaweed.start()
    try:
        storage = S3Storage(
            seaweed.url,
            access_key=seaweed.access_key,
            secret_key=seaweed.secret_key,
            copy_threshold=MIN_PART_SIZE,
            copy_part_size=MIN_PART_SIZE,
        )
        storage.ensure_buckets(["HD01"])
        data = os.urandom(2 * MIN_PART_SIZE + 4321)  # three parts, the last one short
        storage._client.put_object(Bucket="hd01-interrogation", Key="src", Body=data)
        calls: dict[str, int] = {}

        def note(model: Any, **_: Any) -> None:
            calls[model.name] = calls.get(model.name, 0) + 1

        storage._copier().meta.events.register("before-call.s3", note)

        storage.copy("hd01-interrogation", "src", "hd01-permanent", "dst")

        assert calls.get("UploadPartCopy") == 3 and "CopyObject" not in calls
        stream = storage.open_stream("hd01-permanent", "dst")
        try:
            copied = bytes(stream.read())
        finally:
            stream.close()
        assert len(copied) == len(data)
        assert hashlib.sha256(copied).hexdigest() == hashlib.sha256(data).hexdigest()
    finally:
        seaweed.stop()
