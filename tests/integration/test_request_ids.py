"""Request ids users can report: every error about a failed GHGA request ends with the
server's ``X-Request-Id``, in plain and ``--json`` output, and ``--debug`` logs the id of
every request. The sandbox's admin API lists the ids of the faults it injected, so the
test compares what the connector printed with what the sandbox sent.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

BAM = Path(__file__).resolve().parents[2] / "examples" / "N701_small.bam"
NOTE = re.compile(r"\(request id ([0-9a-f-]{36}); quote it when you contact the GHGA helpdesk\)")


def _run(
    sandbox, *args: str, cwd: Path, json_output: bool = False
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    keys = ["--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path",
            str(sandbox.user_sec)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env.update(
        GHGA_CONNECTOR_STATE_DIR=str(cwd / "state"),
        GHGA_CONNECTOR_WKVS_API_URL=sandbox.wkvs_api_url,
        GHGA_CONNECTOR_CLIENT_NUM_RETRIES="3",
        GHGA_CONNECTOR_CLIENT_EXPONENTIAL_BACKOFF_MAX="1",
    )
    flags = ["--json"] if json_output else []
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *flags, args[0], *keys, *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=240, check=False,
    )  # fmt: skip


def _fault_ids(sandbox) -> list[str]:  # type: ignore[no-untyped-def]
    return list(sandbox.admin("GET", "/faults").json()["request_ids"])


def test_a_forced_500_prints_the_request_id_the_sandbox_sent(sandbox, tmp_path: Path) -> None:
    # plain output, a run-level failure: the work package cannot be read (3 attempts)
    sandbox.admin("POST", "/faults", {"status_rules": [
        {"service": "wps", "status": 500, "count": 3, "method": "GET"}]})  # fmt: skip
    plain = _run(
        sandbox, "upload", "--debug", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM),
        cwd=tmp_path,
    )  # fmt: skip
    assert plain.returncode == 1, plain.stderr
    ids = _fault_ids(sandbox)
    assert len(ids) == 3
    shown = NOTE.findall(plain.stderr)
    assert shown and set(shown) == {ids[-1]}  # the id of the answer that ended the run
    assert plain.stderr.rstrip().endswith(
        f"(request id {ids[-1]}; quote it when you contact the GHGA helpdesk)"
    )
    # --debug logs every attempt with the id the server answered with
    for request_id in ids:
        assert f"(request id {request_id})" in plain.stderr

    # --json output, a per-file failure: every part URL request fails (3 attempts)
    sandbox.admin("POST", "/faults", {"status_rules": [
        {"service": "ucs", "status": 500, "count": 3, "path_contains": "/parts/"}]})  # fmt: skip
    as_json = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM),
        cwd=tmp_path, json_output=True,
    )  # fmt: skip
    assert as_json.returncode == 1, as_json.stderr
    records = [json.loads(line) for line in as_json.stdout.splitlines() if line.strip()]
    assert [r["attempt"] for r in records if r.get("event") == "retry"] == [2, 3]
    (record,) = [r for r in records if "file" in r]
    assert record["outcome"] == "failed"
    match = NOTE.search(record["message"])
    assert match is not None and record["message"].endswith(match.group(0))
    assert match.group(1) == _fault_ids(sandbox)[-1]


def test_missing_secret_on_download_is_reported_with_its_request_id(
    sandbox, tmp_path: Path
) -> None:
    """Issue 15 (7): DCS's 500 "Internal Server Error." fails that file with a clear line."""
    up = _run(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(BAM), cwd=tmp_path
    )
    assert up.returncode == 0, up.stderr
    assert sandbox.archive().returncode == 0
    sandbox.admin("POST", "/faults", {"dcs_missing_secret": 3})
    out = tmp_path / "out"
    out.mkdir()
    down = _run(
        sandbox, "download", "--wpat-file", str(sandbox.download_wpat_file), "--output-dir",
        str(out), cwd=tmp_path,
    )  # fmt: skip
    assert down.returncode == 1
    assert "Traceback" not in down.stderr
    assert "internal error" in down.stderr
    assert NOTE.search(down.stderr)
    assert sandbox.admin("GET", "/faults").json()["injected"]["dcs_missing_secret"] == 3
    assert not list(out.iterdir())
