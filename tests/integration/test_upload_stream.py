"""Streamed upload parts through the real CLI, httpx and the sandbox's S3.

A part is streamed when it is larger than its part buffer, which the part size makes
happen only for files above ~168 GB. Here a launcher gives the uploader a part buffer
of four cipher segments (windows of two), so the 5 MiB parts of a 10 MiB file are sent
as streams of 128 KiB windows through real sockets, with two parts in flight (one fed
to the file's SHA-256 while sent, one read again after its PUT). The Data Hub step of
``ghga-sandbox archive`` decrypts what S3 stored and checks the SHA-256, and the file is
downloaded and decrypted again and compared with the original.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PART = 5 * 1024 * 1024
SEGMENT = 65_564
LAUNCHER = """
import functools, sys
import ghga_connector.inject as inject
inject.Uploader = functools.partial(inject.Uploader, part_buffer=int(sys.argv.pop(1)))
from ghga_connector.cli import run
sys.argv[0] = "ghga-connector"
run()
"""


def _run(
    sandbox, args: list[str], *, part_buffer: int | None = None
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env.update(
        GHGA_CONNECTOR_STATE_DIR=str(sandbox.state_dir / "connector-state"),
        GHGA_CONNECTOR_PART_SIZE=str(PART),
        GHGA_CONNECTOR_MAX_CONCURRENT_UPLOADS="2",
    )
    keys = [
        "--my-public-key-path",
        str(sandbox.user_pub),
        "--my-private-key-path",
        str(sandbox.user_sec),
    ]
    launch = ["-c", LAUNCHER, str(part_buffer)] if part_buffer else ["-m", "ghga_connector"]
    return subprocess.run(
        [sys.executable, *launch, "--json", args[0], *keys, *args[1:]],
        cwd=sandbox.state_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_streamed_parts_are_stored_exactly(sandbox, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    source = tmp_path / "large.bam"
    source.write_bytes(random.Random(5).randbytes(2 * PART + 12_345))
    digest = hashlib.sha256(source.read_bytes()).hexdigest()

    up = _run(
        sandbox,
        ["upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source)],
        part_buffer=4 * SEGMENT,
    )
    assert up.returncode == 0, up.stdout + up.stderr
    (record,) = [json.loads(line) for line in up.stdout.splitlines() if line.strip()]
    assert record["outcome"] == "done"
    assert record["decrypted_sha256"] == digest
    assert record["parts"] == 3 and record["part_size"] > 4 * SEGMENT

    archived = sandbox.archive()  # the Data Hub decrypts the stored object, checks the SHA-256
    assert archived.returncode == 0, archived.stdout + archived.stderr

    out = tmp_path / "out"
    out.mkdir()
    down = _run(
        sandbox,
        [
            "download",
            "--decrypt",
            "--wpat-file",
            str(sandbox.download_wpat_file),
            "--output-dir",
            str(out),
        ],
    )
    assert down.returncode == 0, down.stdout + down.stderr
    (plain,) = [p for p in out.iterdir() if p.is_file() and p.suffix != ".sha256"]
    assert hashlib.sha256(plain.read_bytes()).hexdigest() == digest
