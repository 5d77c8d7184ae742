"""Several connector processes on one upload box and one output folder.

* two runs of the same upload command at once: one upload per file in the box, no
  corrupted journal, both exit 0 (issue 11 item 15);
* 4 processes with ``--shard k/4`` upload 16 files of mixed sizes at once into one box
  (open-upload limit at its default of 5, so creates are refused with 429 and retried),
  one of them SIGKILLed after its journal shows a stored part and run again; a second
  pass uploads nothing; the same for ``download --shard``; every file once in the box and
  byte-identical after download (issue 14 item 4);
* ``download --file ACCESSION --decrypt --output -`` streams a real BAM into a reader
  (issue 14 item 5).

Kills are deterministic: the test waits for a state on disk (a journal line, a final
file), and the sandbox adds latency to every API call so that the next state is at
least one call away.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import SandboxProcess, start_sandbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.name != "posix", reason="SIGKILL and SIGSTOP are POSIX signals"),
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT = 300
MiB = 1024 * 1024


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def env_for(state: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env["GHGA_CONNECTOR_STATE_DIR"] = str(state)
    env.update({f"GHGA_CONNECTOR_{k.upper()}": v for k, v in settings.items()})
    return env


def command(sandbox: SandboxProcess, verb: str, *args: str) -> list[str]:
    wpat = sandbox.upload_wpat_file if verb == "upload" else sandbox.download_wpat_file
    return [
        sys.executable, "-m", "ghga_connector", "--json", verb,
        "--wpat-file", str(wpat),
        "--my-public-key-path", str(sandbox.user_pub),
        "--my-private-key-path", str(sandbox.user_sec),
        *args,
    ]  # fmt: skip


def start(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, list[dict[str, Any]], str]:
    out, err = process.communicate(timeout=RUN_TIMEOUT)
    records = [json.loads(line) for line in out.splitlines() if line.strip()]
    return process.returncode, records, err


def wait_for(condition: Any, process: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition()`` every 5 ms until true; fail if ``process`` ends first."""
    deadline = time.monotonic() + RUN_TIMEOUT
    while not condition():
        if process.poll() is not None:
            _, err = process.communicate()
            pytest.fail(f"the process ended before {what}:\n{err[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)


def journal_parts(state: Path, alias: str) -> int:
    """Parts recorded in the upload journal of ``alias`` (-1: no journal)."""
    for path in (state / "uploads").glob("*.jsonl"):
        try:
            lines = path.read_text().splitlines()
            if lines and json.loads(lines[0])["alias"] == alias:
                return len(lines) - 1
        except (OSError, ValueError, KeyError):
            continue
    return -1


def live_uploads(sandbox: SandboxProcess) -> dict[str, list[str]]:
    """alias -> states of its uploads that count (not cancelled or failed)."""
    found: dict[str, list[str]] = {}
    for upload in sandbox.status()["uploads"]:
        if upload["state"] not in {"cancelled", "failed"}:
            found.setdefault(upload["alias"], []).append(upload["state"])
    return found


def set_latency(sandbox: SandboxProcess, ms: int) -> None:
    response = sandbox.admin("POST", "/faults", json={"api_latency_ms": ms})
    assert response.status_code == 200, response.text


@pytest.fixture
def fast_sandbox(tmp_path: Path):  # type: ignore[no-untyped-def]
    running = start_sandbox(tmp_path / "sandbox", "--staging-delay", "0")
    try:
        yield running
    finally:
        running.stop()


# --- issue 11 item 15: the same command twice at once ----------------------------------------


def test_two_runs_of_the_same_upload_command_at_once(fast_sandbox, tmp_path: Path) -> None:
    sandbox = fast_sandbox
    big = tmp_path / "big.bin"
    big.write_bytes(random.Random(15).randbytes(21 * MiB + 5))
    files = [big, *sorted(EXAMPLES.glob("*.bam")), *sorted(EXAMPLES.glob("*.vcf.gz"))]
    state = tmp_path / "shared-state"
    env = env_for(
        state, part_size=str(5 * MiB), max_concurrent_uploads="1", max_parallel_files="1"
    )
    upload = command(sandbox, "upload", *map(str, files))
    set_latency(sandbox, 100)

    first = start(upload, env, sandbox.state_dir)
    # Deterministic overlap: the first run stored a part of big.bin and holds its lock;
    # it is paused while the second run goes through the whole command.
    wait_for(lambda: journal_parts(state, "big.bin") >= 1, first, "a stored part of big.bin")
    first.send_signal(signal.SIGSTOP)
    try:
        code_2, records_2, err_2 = finish(start(upload, env, sandbox.state_dir))
    finally:
        first.send_signal(signal.SIGCONT)
    code_1, records_1, err_1 = finish(first)
    set_latency(sandbox, 0)

    assert code_1 == 0, err_1
    assert code_2 == 0, err_2
    for run, records in (("first", records_1), ("second", records_2)):
        print(run, [(r["file"], r["outcome"], r.get("message", "")) for r in records])
    second = {r["file"]: r for r in records_2}
    assert second["big.bin"]["outcome"] == "skipped"
    assert second["big.bin"]["message"].startswith("big.bin is being uploaded by another process (")
    assert second["big.bin"]["message"].endswith(f"pid {first.pid}); skipped")
    # every file was uploaded by exactly one of the two runs
    for name in (f.name for f in files):
        outcomes = sorted(r["outcome"] for r in (*records_1, *records_2) if r["file"] == name)
        assert outcomes == ["done", "skipped"], (name, records_1, records_2)
    assert live_uploads(sandbox) == {f.name: ["inbox"] for f in files}
    assert not list((state / "uploads").glob("*.jsonl")), "a journal was left behind"

    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    out = tmp_path / "out"
    out.mkdir()
    code, records, err = finish(
        start(command(sandbox, "download", "--output-dir", str(out), "--decrypt"), env, sandbox.state_dir)
    )
    assert code == 0, err
    assert {sha256(p) for p in out.iterdir()} == {sha256(f) for f in files}
