"""Interrupted transfers continue where they stopped (SIGKILL at many points, Ctrl-C).

Bounded: a 128 MiB file in 5 MiB parts (26 parts, 26 ranges), one part in flight, 8
interruptions per direction, each run limited in time. Kills are tied to progress, not
to the clock: a run is killed right after its journal records a new part or range (plus
a small random delay, so kills land at different points of the next part), so every run
is interrupted whatever the machine's speed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import popen_interruptible

pytestmark = [pytest.mark.integration, pytest.mark.posix_only]

SIZE = 128 * 1024 * 1024 + 12345
KILLS = 8


def _env(sandbox, state: Path) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env.update(
        GHGA_CONNECTOR_STATE_DIR=str(state),
        GHGA_CONNECTOR_PART_SIZE=str(5 * 1024 * 1024),
        GHGA_CONNECTOR_MAX_CONCURRENT_UPLOADS="1",
        GHGA_CONNECTOR_MAX_CONCURRENT_DOWNLOADS="1",
    )
    return env


def _command(sandbox, *args: str) -> list[str]:  # type: ignore[no-untyped-def]
    keys = [
        "--my-public-key-path",
        str(sandbox.user_pub),
        "--my-private-key-path",
        str(sandbox.user_sec),
    ]
    return [sys.executable, "-m", "ghga_connector", "--json", *args[:1], *keys, *args[1:]]


def _journal_lines(pattern: str, folder: Path) -> int:
    """Lines (header + entries) of the one journal matching ``pattern`` in ``folder``."""
    journals = list(folder.glob(pattern)) if folder.is_dir() else []
    if not journals:
        return 0
    try:
        return len(journals[0].read_text().splitlines())
    except OSError:
        return 0


def _wait_for_progress(
    process: subprocess.Popen[bytes] | subprocess.Popen[str],
    pattern: str,
    folder: Path,
    lines: int,
    timeout: float = 120.0,
) -> bool:
    """Wait until the journal has at least ``lines`` lines; False if the process ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _journal_lines(pattern, folder) >= lines:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError(f"no progress within {timeout:.0f} s")


def _run_killed(
    command: list[str],
    env: dict[str, str],
    cwd: Path,
    journal: tuple[str, Path],
    jitter: float,
) -> int | None:
    """Start the command, SIGKILL it once its journal gained an entry (+ ``jitter`` s).

    Returns its exit code if it ended first, else ``None``.
    """
    before = _journal_lines(*journal)
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        if not _wait_for_progress(process, *journal, lines=max(before + 1, 2)):
            return process.wait(timeout=30)
        time.sleep(jitter)
        if process.poll() is not None:
            return process.returncode
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        return None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


def test_upload_and_download_survive_sigkill_at_random_points(sandbox, tmp_path: Path) -> None:
    rng = random.Random(20261123)
    source = tmp_path / "big.bin"
    source.write_bytes(rng.randbytes(SIZE))
    state = tmp_path / "state"
    env = _env(sandbox, state)
    upload = _command(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source))

    interrupted = 0
    stored_after_kill = []
    for _ in range(KILLS):
        code = _run_killed(
            upload, env, sandbox.state_dir, ("*.jsonl", state / "uploads"), rng.uniform(0, 0.05)
        )
        if code is None:
            interrupted += 1
            journals = list((state / "uploads").glob("*.jsonl"))
            stored_after_kill.append(
                len(journals[0].read_text().splitlines()) - 1 if journals else 0
            )
        elif code == 0:
            break
    final = subprocess.run(
        upload, env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    record = json.loads(final.stdout.splitlines()[-1])
    assert record["outcome"] in {"done", "skipped"}
    assert interrupted == KILLS, f"only {interrupted} of {KILLS} runs were interrupted"
    assert max(stored_after_kill) > 0, "no run was killed after storing a part: nothing resumed"
    assert record["parts_resumed"] == stored_after_kill[-1], "the final run re-sent stored parts"
    print(
        json.dumps(
            {
                "upload_interruptions": interrupted,
                "parts_stored_after_each_kill": stored_after_kill,
                "parts_total": record.get("parts"),
                "parts_resumed_in_final_run": record.get("parts_resumed"),
            }
        )
    )
    assert not list((state / "uploads").glob("*.jsonl")), "journal left after success"

    listing = subprocess.run(
        _command(sandbox, "ls", "--wpat-file", str(sandbox.upload_wpat_file)),
        env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    live = [
        r for r in rows if r["alias"] == "big.bin" and r["state"] not in {"cancelled", "failed"}
    ]
    assert len(live) == 1 and live[0]["state"] == "inbox", rows

    assert sandbox.archive().returncode == 0
    out = tmp_path / "out"
    out.mkdir()
    download = _command(
        sandbox,
        "download",
        "--wpat-file",
        str(sandbox.download_wpat_file),
        "--output-dir",
        str(out),
        "--decrypt",
    )
    interrupted = 0
    ranges_after_kill = []
    for _ in range(KILLS):
        code = _run_killed(
            download, env, sandbox.state_dir, ("*.part.json", out), rng.uniform(0, 0.05)
        )
        if code is None:
            interrupted += 1
            journals = list(out.glob("*.part.json"))
            ranges_after_kill.append(
                len(journals[0].read_text().splitlines()) - 1 if journals else 0
            )
        elif code == 0:
            break
    final = subprocess.run(
        download, env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300
    )
    assert final.returncode == 0, final.stderr
    assert interrupted == KILLS, f"only {interrupted} of {KILLS} runs were interrupted"
    assert max(ranges_after_kill) > 0, "no run was killed after writing a range: nothing resumed"
    print(
        json.dumps(
            {"download_interruptions": interrupted, "ranges_after_each_kill": ranges_after_kill}
        )
    )
    result = next(p for p in out.iterdir() if not p.name.endswith((".part", ".json", ".sha256")))
    assert (
        hashlib.sha256(result.read_bytes()).hexdigest()
        == hashlib.sha256(source.read_bytes()).hexdigest()
    )
    assert not list(out.glob("*.part*"))


def test_ctrl_c_pauses_an_upload_and_exits_130(sandbox, tmp_path: Path) -> None:
    source = tmp_path / "pause.bin"
    source.write_bytes(random.Random(7).randbytes(SIZE))
    state = tmp_path / "state"
    env = _env(sandbox, state)
    env["GHGA_CONNECTOR_MAX_CONCURRENT_UPLOADS"] = "1"
    command = _command(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source))
    # SIGINT at its default in the child even if this suite runs with it ignored.
    process = popen_interruptible(
        command,
        env=env,
        cwd=sandbox.state_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Ctrl-C once the first part is stored: 25 of 26 parts are still to go.
    assert _wait_for_progress(process, "*.jsonl", state / "uploads", lines=2)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "upload paused; run the same command again" in stderr
    assert "Traceback" not in stderr
    journals = list((state / "uploads").glob("*.jsonl"))
    assert journals, "the journal must survive Ctrl-C"
    paused_file_id = json.loads(journals[0].read_text().splitlines()[0])["file_id"]
    resumed = subprocess.run(
        command, env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout.splitlines()[-1])
    assert record["outcome"] == "done"
    assert record["file_id"] == paused_file_id, "the paused upload must be continued, not replaced"


def test_sigterm_pauses_an_upload_like_ctrl_c_and_exits_143(sandbox, tmp_path: Path) -> None:
    """A batch scheduler's SIGTERM: the same pause as Ctrl-C, exit 143, resumable."""
    source = tmp_path / "term.bin"
    source.write_bytes(random.Random(8).randbytes(SIZE))
    state = tmp_path / "state"
    env = _env(sandbox, state)
    command = _command(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source))
    process = subprocess.Popen(
        command,
        env=env,
        cwd=sandbox.state_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert _wait_for_progress(process, "*.jsonl", state / "uploads", lines=2)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert "upload paused; run the same command again" in stderr
    assert "Traceback" not in stderr
    paused_file_id = json.loads(
        next((state / "uploads").glob("*.jsonl")).read_text().splitlines()[0]
    )["file_id"]
    resumed = subprocess.run(
        command, env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads(resumed.stdout.splitlines()[-1])
    assert record["outcome"] == "done"
    assert record["file_id"] == paused_file_id


def test_changed_file_is_not_resumed_without_restart(sandbox, tmp_path: Path) -> None:
    source = tmp_path / "changing.bin"
    source.write_bytes(random.Random(11).randbytes(SIZE))
    state = tmp_path / "state"
    env = _env(sandbox, state)
    command = _command(sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(source))
    process = subprocess.Popen(
        command,
        env=env,
        cwd=sandbox.state_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list((state / "uploads").glob("*.jsonl")):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    with source.open("r+b") as handle:  # the file changes while the upload is paused
        handle.write(b"changed")
    refused = subprocess.run(
        command, env=env, cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300
    )
    assert refused.returncode == 1
    assert (
        "has changed since the interrupted upload; run again with --restart" in refused.stdout
    )  # the --json record
    assert "--restart" in refused.stdout
    restarted = subprocess.run(
        [*command, "--restart"],
        env=env,
        cwd=sandbox.state_dir,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restarted.returncode == 0, restarted.stderr
    record = json.loads(restarted.stdout.splitlines()[-1])
    assert record["decrypted_sha256"] == hashlib.sha256(source.read_bytes()).hexdigest()
