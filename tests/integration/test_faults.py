"""Transfers survive server faults injected by the sandbox (bounded counts, deterministic).

Each test arms the sandbox's fault switches through its admin API, runs the real CLI,
checks the files come back byte-identical, and checks how many faults actually fired.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BAM = EXAMPLES / "human_mouse_smaller.bam"


def _run(sandbox, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    keys = [
        "--my-public-key-path",
        str(sandbox.user_pub),
        "--my-private-key-path",
        str(sandbox.user_sec),
    ]
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env["GHGA_CONNECTOR_STATE_DIR"] = str(cwd / "state")
    env["GHGA_CONNECTOR_PART_SIZE"] = str(5 * 1024 * 1024)
    env["GHGA_CONNECTOR_WKVS_API_URL"] = sandbox.wkvs_api_url
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", args[0], *keys, *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _arm(sandbox, **switches: object) -> None:  # type: ignore[no-untyped-def]
    response = sandbox.admin("POST", "/faults", json=switches)
    assert response.status_code == 200, response.text


def _fired(sandbox) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return dict(sandbox.admin("GET", "/faults").json()["injected"])


def test_upload_and_download_survive_api_faults(sandbox, tmp_path: Path) -> None:
    _arm(
        sandbox,
        status_rules=[
            {"service": "ucs", "status": 503, "count": 2, "path_contains": "/parts/"},
            {"service": "ucs", "status": 500, "count": 1, "method": "PATCH"},
            {"service": "wps", "status": 429, "count": 2, "retry_after": 1},
        ],
    )
    up = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    assert "Retried requests" in up.stderr
    fired_upload = _fired(sandbox)
    assert fired_upload.get("status:ucs:503", 0) == 2
    assert fired_upload.get("status:wps:429", 0) == 2

    assert sandbox.archive().returncode == 0
    _arm(
        sandbox,
        status_rules=[
            {"service": "dcs", "status": 500, "count": 2},
            {"service": "wps", "status": 503, "count": 1},
        ],
        dcs_force_202=2,
    )
    out = tmp_path / "out"
    out.mkdir()
    down = _run(
        sandbox, "download", "--decrypt", "--wpat-file", str(sandbox.download_wpat_file),
        "--output-dir", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    result = next(p for p in out.iterdir() if p.suffix != ".sha256")
    assert (
        hashlib.sha256(result.read_bytes()).hexdigest()
        == hashlib.sha256(BAM.read_bytes()).hexdigest()
    )
    fired = _fired(sandbox)
    assert fired.get("status:dcs:500", 0) == 2
    assert fired.get("dcs_force_202", 0) == 2
    print(json.dumps({"faults_fired": fired}))


def test_checksum_mismatch_at_completion_is_reported_and_not_resumed(
    sandbox, tmp_path: Path
) -> None:
    _arm(sandbox, etag_mismatch=1)
    up = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert up.returncode == 1
    assert "does not match its checksums" in up.stderr
    assert "Traceback" not in up.stderr
    assert not list((tmp_path / "state" / "uploads").glob("*.jsonl")), (
        "a rejected upload is not resumable"
    )
    again = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr


def test_server_errors_that_do_not_stop_are_reported_per_file(sandbox, tmp_path: Path) -> None:
    """A part URL that keeps failing makes that file fail (exit 1), resumable later."""
    _arm(
        sandbox,
        status_rules=[{"service": "ucs", "status": 503, "count": 5, "path_contains": "/parts/"}],
    )
    env_retries = {"GHGA_CONNECTOR_CLIENT_NUM_RETRIES": "2"}
    os.environ.update(env_retries)
    try:
        up = _run(
            sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
        )
    finally:
        for key in env_retries:
            os.environ.pop(key, None)
    assert up.returncode == 1, up.stderr
    assert "Run the same command again" in up.stderr
    resumed = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert resumed.returncode == 0, resumed.stderr


def test_object_storage_faults_dropped_connections_and_expired_urls(
    sandbox, tmp_path: Path
) -> None:
    """S3 5xx, bodies cut mid-way in both directions, presigned URLs expiring early."""
    _arm(
        sandbox,
        status_rules=[
            {"service": "s3", "status": 503, "count": 2, "method": "PUT"},
            {"service": "s3", "status": 500, "count": 2, "method": "GET"},
        ],
        drop_connections={"count": 1, "after_bytes": 1_000_000, "method": "PUT"},
    )
    up = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    assert sandbox.archive().returncode == 0
    _arm(
        sandbox,
        drop_connections={"count": 2, "after_bytes": 1_000_000, "method": "GET"},
        url_expiry={"seconds": 1, "count": 2, "kind": "download"},
    )
    out = tmp_path / "out"
    out.mkdir()
    down = _run(
        sandbox, "download", "--decrypt", "--wpat-file", str(sandbox.download_wpat_file),
        "--output-dir", str(out), cwd=tmp_path,
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    result = next(p for p in out.iterdir() if p.suffix != ".sha256")
    assert (
        hashlib.sha256(result.read_bytes()).hexdigest()
        == hashlib.sha256(BAM.read_bytes()).hexdigest()
    )
    fired = _fired(sandbox)
    print(json.dumps({"faults_fired": fired}))
    assert fired.get("status:s3:503", 0) == 2
    assert fired.get("drop:s3:PUT", 0) == 1
    assert fired.get("drop:s3:GET", 0) >= 1


def test_a_part_answered_with_a_wrong_etag_is_never_taken_as_stored(
    sandbox, tmp_path: Path
) -> None:
    """S3 answers a part PUT with an ETag that is not the part's MD5: the part is sent
    again; if that keeps happening the file fails and is never completed."""
    small = tmp_path / "small.bam"
    small.write_bytes(BAM.read_bytes()[: 3 * 1024 * 1024])
    _arm(sandbox, put_wrong_etag=3)  # every attempt of the one part
    failed = _run(
        sandbox, "upload", "--json", "--wpat-file", str(sandbox.upload_wpat_file), str(small),
        cwd=tmp_path,
    )  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    record = json.loads(failed.stdout.splitlines()[-1])
    assert record["outcome"] == "failed"
    assert "could not be stored intact" in record["message"]
    assert _fired(sandbox).get("put_wrong_etag") == 3

    _arm(sandbox, put_wrong_etag=1)  # once: the part is sent again and the file completes
    done = _run(
        sandbox, "upload", "--json", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM),
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["outcome"] == "done"
    assert _fired(sandbox).get("put_wrong_etag") == 4
