"""Hostile ``Retry-After`` values from the sandbox (``nan``, negative, huge) on 503 and on
the DCS 202: the connector clamps them (adapters/retry.py) and the transfer completes.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BAM = Path(__file__).resolve().parents[2] / "examples" / "human_mouse_smaller.bam"


def _run(sandbox, *args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    keys = ["--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path",
            str(sandbox.user_sec)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env["GHGA_CONNECTOR_STATE_DIR"] = str(cwd / "state")
    env["GHGA_CONNECTOR_WKVS_API_URL"] = sandbox.wkvs_api_url
    env.update({f"GHGA_CONNECTOR_{k.upper()}": v for k, v in settings.items()})
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", args[0], *keys, *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def test_nan_negative_and_huge_retry_after_are_clamped(sandbox, tmp_path: Path) -> None:
    armed = sandbox.admin(
        "POST",
        "/faults",
        {
            "status_rules": [
                {"service": "wps", "status": 503, "retry_after": "1e12"},
                {"service": "ucs", "status": 503, "retry_after": "nan", "path_contains": "/parts/"},
                {"service": "s3", "status": 503, "retry_after": "-5", "method": "PUT"},
            ]
        },
    )
    assert armed.status_code == 200, armed.text
    started = time.monotonic()
    up = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path,
        client_exponential_backoff_max="2",
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    # every wait is at most client_exponential_backoff_max (2 s), never 300 s or forever
    assert time.monotonic() - started < 120
    fired = sandbox.admin("GET", "/faults").json()["injected"]
    assert fired["status:wps:503"] == fired["status:ucs:503"] == fired["status:s3:503"] == 1

    assert sandbox.archive().returncode == 0
    armed = sandbox.admin(
        "POST", "/faults", {"dcs_force_202": 1, "dcs_retry_after": {"value": "1e12"}}
    )
    assert armed.status_code == 200, armed.text
    out = tmp_path / "out"
    out.mkdir()
    down = _run(
        sandbox, "download", "--wpat-file", str(sandbox.download_wpat_file), "--output-dir",
        str(out), "--decrypt", cwd=tmp_path, max_wait_time="4",
    )  # fmt: skip
    # the 202 said "come back in 10^12 s": clamped to 300 s, the wait ends at max_wait_time
    # (4 s) with one more check, which finds the file staged
    assert down.returncode == 0, down.stderr
    assert sandbox.admin("GET", "/faults").json()["injected"]["dcs_retry_after"] == 1
    (result,) = [p for p in out.iterdir() if p.suffix != ".sha256"]
    assert hashlib.sha256(result.read_bytes()).digest() == hashlib.sha256(BAM.read_bytes()).digest()


def test_invalid_retry_after_switch_is_refused(sandbox) -> None:
    bad = sandbox.admin(
        "POST",
        "/faults",
        {"status_rules": [{"service": "ucs", "status": 503, "retry_after": "a\r\nb"}]},
    )
    assert bad.status_code == 422
