"""GHGA API round trips of small files through the real CLI: exactly what the protocol needs.

``--debug`` logs every request the connector makes (method, URL without query, status),
so the test counts them. Upload: 4 per run (well-known values, work package, ``view``
WOT, box listing) and 6 per file (``create`` WOT, create, ``upload`` WOT, part URL,
``close`` WOT, completion) for a one-part file. Download of staged files: 2 per run
(well-known values, work package) and 3 per file (download WOT, DRS object, envelope),
also when there are more files than in flight and every file was asked for first (the
staging request's DRS answer is used for the download).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

FILES = 4
#: A request line of ``--debug`` (adapters/http.py LoggingTransport); S3 hosts excluded below.
REQUEST = re.compile(r" (GET|POST|PATCH|PUT|DELETE) (https?://\S+) -> (\d+)")


def _run(sandbox, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    keys = ["--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path",
            str(sandbox.user_sec)]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env.update(
        GHGA_CONNECTOR_STATE_DIR=str(cwd / "state"),
        GHGA_CONNECTOR_WKVS_API_URL=sandbox.wkvs_api_url,
        GHGA_CONNECTOR_MAX_PARALLEL_FILES="1",  # 2 files in flight, fewer than FILES
    )
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", "--json", args[0], "--debug", *keys, *args[1:]],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _api_calls(sandbox, stderr: str) -> Counter[str]:  # type: ignore[no-untyped-def]
    """GHGA API requests by kind (S3 requests left out), e.g. ``"GET /ucs/.../parts/1"``."""
    calls: Counter[str] = Counter()
    for method, url, _ in REQUEST.findall(stderr):
        if not url.startswith(sandbox.url):
            continue
        path = url[len(sandbox.url) :]
        path = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}", "ID", path)
        calls[f"{method} {re.sub(r'GHGAF[0-9]+', 'ACC', path)}"] += 1
    return calls


def test_small_files_cost_only_the_protocols_round_trips(sandbox, tmp_path: Path) -> None:
    rng = random.Random(13)
    sources = []
    for index in range(FILES):
        source = tmp_path / f"small{index}.bin"
        source.write_bytes(rng.randbytes(100_000 + index))
        sources.append(str(source))
    up = _run(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), *sources,
              cwd=tmp_path)  # fmt: skip
    assert up.returncode == 0, up.stderr
    calls = _api_calls(sandbox, up.stderr)
    assert sum(calls.values()) == 4 + 6 * FILES, calls
    assert calls["POST /wps/work-packages/ID/boxes/ID/work-order-tokens"] == 1 + 3 * FILES
    assert calls["GET /ucs/boxes/ID/uploads/ID/parts/1"] == FILES

    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    listed = _run(sandbox, "ls", "--wpat-file", str(sandbox.download_wpat_file), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    accessions = [json.loads(line)["accession"] for line in listed.stdout.splitlines()]
    assert len(accessions) == FILES
    # a plain ls asks the download service nothing: at GHGA each DRS request stages a file
    assert not [c for c in _api_calls(sandbox, listed.stderr) if "/objects/" in c]
    for accession in accessions:  # staged now: no 202 rounds, whatever the timing
        assert sandbox.admin("POST", f"/objects/{accession}/stage").status_code == 200
    detailed = _run(sandbox, "ls", "--details", "--wpat-file", str(sandbox.download_wpat_file),
                    cwd=tmp_path)  # fmt: skip
    assert detailed.returncode == 0, detailed.stderr
    rows = [json.loads(line) for line in detailed.stdout.splitlines()]
    assert all(row["staged"] and len(row["sha256"]) == 64 for row in rows), rows
    assert _api_calls(sandbox, detailed.stderr)["GET /ga4gh/drs/v1/objects/ACC"] == FILES

    out = tmp_path / "out"
    out.mkdir()
    down = _run(sandbox, "download", "--wpat-file", str(sandbox.download_wpat_file),
                "--output-dir", str(out), "--decrypt", cwd=tmp_path)  # fmt: skip
    assert down.returncode == 0, down.stderr
    assert sorted(p.read_bytes() for p in out.iterdir() if p.suffix != ".sha256") == sorted(
        Path(s).read_bytes() for s in sources
    )
    calls = _api_calls(sandbox, down.stderr)
    assert calls["GET /ga4gh/drs/v1/objects/ACC"] == FILES  # one DRS request per file
    assert calls["GET /ga4gh/drs/v1/objects/ACC/envelopes"] == FILES
    assert sum(calls.values()) == 2 + 3 * FILES, calls


def test_a_named_state_folder_keeps_its_mode(sandbox, tmp_path: Path) -> None:
    """GHGA_CONNECTOR_STATE_DIR shared by a team is not chmod'ed to 0700 by an upload."""
    state = tmp_path / "state"  # the folder _run names in GHGA_CONNECTOR_STATE_DIR
    state.mkdir()
    state.chmod(0o2775)
    source = tmp_path / f"state-mode-{random.Random().randrange(10**9)}.bin"
    source.write_bytes(random.Random(7).randbytes(50_000))
    up = _run(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source),
              cwd=tmp_path)  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert state.stat().st_mode & 0o7777 == 0o2775
    assert (state / "uploads").stat().st_mode & 0o777 == 0o700  # created by the connector
    assert "can be listed by every user" in up.stderr
