"""``ghga-sandbox serve --s3 sink`` end to end: our client uploads through the sink, the
Data Hub step checks the sink's records, and a synthetic object downloads and verifies."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import SandboxProcess, start_sandbox

pytestmark = pytest.mark.integration

SYNTHETIC_SIZE = 300 * 1024 * 1024 + 12345  # above the 256 MiB copy threshold: part copies


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[SandboxProcess]:
    running = start_sandbox(tmp_path / "sandbox", "--staging-delay", "0", s3="sink")
    try:
        yield running
    finally:
        running.stop()


def _client(sandbox: SandboxProcess, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env["GHGA_CONNECTOR_STATE_DIR"] = str(sandbox.state_dir / "client-state")
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *args],
        cwd=sandbox.state_dir, env=env, capture_output=True, timeout=300, check=False,
    )  # fmt: skip


def test_sink_upload_is_checked_and_a_synthetic_object_downloads_verified(
    sink: SandboxProcess, tmp_path: Path
) -> None:
    made = sink.admin("POST", "/synthetic-objects", {"size": SYNTHETIC_SIZE, "seed": 3})
    assert made.status_code == 201, made.text
    synthetic = made.json()
    source = tmp_path / "twenty.bin"
    source.write_bytes(os.urandom(20 * 1024 * 1024))  # two parts; only 1 MiB of part 1 is kept
    uploaded = _client(sink, "upload", "--wpat-file", str(sink.upload_wpat_file), str(source))
    assert uploaded.returncode == 0, uploaded.stderr.decode()
    archived = sink.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    status = sink.status()
    assert [u["state"] for u in status["uploads"]] == ["archived"]
    assert status["uploads"][0]["parts"] == 2
    assert status["sink"]["parts"] == 2
    # archived: the body without its 124-byte envelope
    assert status["sink"]["bytes"] == status["uploads"][0]["encrypted_size"] + 124

    streamed = _client(
        sink, "download", "--wpat-file", str(sink.download_wpat_file),
        "--file", synthetic["accession"], "--decrypt", "--output", "-",
    )  # fmt: skip
    assert streamed.returncode == 0, streamed.stderr.decode()
    assert len(streamed.stdout) == SYNTHETIC_SIZE
    assert hashlib.sha256(streamed.stdout).hexdigest() == synthetic["decrypted_sha256"]
