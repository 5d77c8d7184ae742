"""Several connector processes on one upload box and one output folder.

* two runs of the same upload command at once: one upload per file in the box, no
  corrupted journal; the run that found a file busy exits 75, the other 0 (issues 11, 21);
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

import contextlib
import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import SandboxProcess, start_sandbox

pytestmark = [
    pytest.mark.integration,
    pytest.mark.posix_only,  # SIGKILL and SIGSTOP are POSIX signals
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


def command(sandbox: SandboxProcess, verb: str, *args: str, json: bool = True) -> list[str]:
    wpat = sandbox.upload_wpat_file if verb == "upload" else sandbox.download_wpat_file
    return [
        sys.executable, "-m", "ghga_connector", *(["--json"] if json else []), verb,
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
    env = env_for(state, part_size=str(5 * MiB), max_concurrent_uploads="1", max_parallel_files="1")
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
    # busy is not done: the second run could not check big.bin, so it exits 75 (EX_TEMPFAIL)
    assert code_2 == 75, err_2
    for run, records in (("first", records_1), ("second", records_2)):
        print(run, [(r["file"], r["outcome"], r.get("message", "")) for r in records])
    second = {r["file"]: r for r in records_2}
    assert second["big.bin"]["outcome"] == "busy"
    assert second["big.bin"]["message"].startswith("big.bin is being uploaded by another process (")
    assert f"pid {first.pid}); not checked yet" in second["big.bin"]["message"]
    # every file was uploaded by exactly one of the two runs; the other proved it identical
    for name in (f.name for f in files):
        outcomes = sorted(r["outcome"] for r in (*records_1, *records_2) if r["file"] == name)
        # files the paused first run had locked (big.bin, and the next file it was
        # preparing) are busy for the second; the others it proved identical later
        expected = (
            [["busy", "done"]] if name == "big.bin" else [["busy", "done"], ["done", "skipped"]]
        )
        assert outcomes in expected, (name, records_1, records_2)
    assert all("same SHA-256" in r["message"] for r in records_1 if r["outcome"] == "skipped"), (
        records_1
    )
    assert live_uploads(sandbox) == {f.name: ["inbox"] for f in files}
    assert not list((state / "uploads").glob("*.jsonl")), "a journal was left behind"

    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    out = tmp_path / "out"
    out.mkdir()
    code, records, err = finish(
        start(
            command(sandbox, "download", "--output-dir", str(out), "--decrypt"),
            env,
            sandbox.state_dir,
        )
    )
    assert code == 0, err
    assert {sha256(p) for p in out.iterdir() if p.suffix != ".sha256"} == {sha256(f) for f in files}


# --- issue 14 item 4: 4 shards, 16 files, one process killed -----------------------------------

SHARDS = 4
#: 15 small files of mixed sizes (tens of KiB to a few MiB) and one of 3 parts.
SIZES = [
    20_000, 45_000, 70_000, 130_000, 260_000, 400_000, 650_000, 900_000,
    1_200_000, 1_600_000, 2_000_000, 2_400_000, 2_900_000, 3_300_000, 3_700_000,
    12 * MiB + 321,
]  # fmt: skip
BIG = "f15.bin"


class OpenUploadWatcher(threading.Thread):
    """Records the most uploads in state ``init`` seen in the box (figure only)."""

    def __init__(self, sandbox: SandboxProcess) -> None:
        super().__init__(daemon=True)
        self.sandbox = sandbox
        self.most = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.05):
            with contextlib.suppress(Exception):
                uploads = self.sandbox.status()["uploads"]
                self.most = max(self.most, sum(u["state"] == "init" for u in uploads))

    def stop(self) -> None:
        self.done.set()
        self.join(timeout=30)


def run_shards(
    sandbox: SandboxProcess,
    verb: str,
    args: list[str],
    env: dict[str, str],
    *,
    kill: tuple[int, Any] | None = None,
) -> dict[int, tuple[int | None, list[dict[str, Any]], str]]:
    """Run the shards 1..4 at once; ``kill=(k, condition)`` SIGKILLs shard k once true."""
    processes = {
        k: start(command(sandbox, verb, *args, "--shard", f"{k}/{SHARDS}"), env, sandbox.state_dir)
        for k in range(1, SHARDS + 1)
    }
    results: dict[int, tuple[int | None, list[dict[str, Any]], str]] = {}
    if kill is not None:
        victim, condition = kill
        wait_for(condition, processes[victim], f"shard {victim} to reach its kill point")
        processes[victim].send_signal(signal.SIGKILL)
        processes[victim].communicate(timeout=60)
        results[victim] = (None, [], "killed")
    for k, process in processes.items():
        if k not in results:
            results[k] = finish(process)
    return results


def test_four_shards_upload_and_download_with_a_kill_and_a_second_pass(
    fast_sandbox, tmp_path: Path
) -> None:
    sandbox = fast_sandbox
    rng = random.Random(14)
    folder = tmp_path / "data"
    folder.mkdir()
    files = []
    for n, size in enumerate(SIZES):
        path = folder / f"f{n:02d}.bin" if n < 15 else folder / BIG
        path.write_bytes(rng.randbytes(size))
        files.append(path)
    manifest = tmp_path / "files.tsv"
    manifest.write_text("".join(f"{p}\t{p.name}\n" for p in files))
    state = tmp_path / "shared-state"
    # defaults otherwise: 4 files at once per process, the box's limit of 5 open uploads
    env = env_for(state, part_size=str(5 * MiB), max_concurrent_uploads="1")
    figures: dict[str, Any] = {"files": len(files), "bytes": sum(SIZES), "processes": SHARDS}

    # Pass 1: shard 1 holds the 3-part file (largest first); kill it after a stored part.
    set_latency(sandbox, 150)
    parts_at_kill: list[int] = []

    def big_part_stored() -> bool:
        parts = journal_parts(state, BIG)
        if parts >= 1:
            parts_at_kill.append(parts)
        return parts >= 1

    watcher = OpenUploadWatcher(sandbox)
    watcher.start()
    try:
        first = run_shards(
            sandbox, "upload", ["--manifest", str(manifest)], env, kill=(1, big_part_stored)
        )
    finally:
        watcher.stop()
    set_latency(sandbox, 0)
    figures["most_open_uploads_seen_in_box"] = watcher.most
    for k in range(2, SHARDS + 1):
        code, records, err = first[k]
        assert code == 0, err
        assert {r["outcome"] for r in records} == {"done"}, records
    assert journal_parts(state, BIG) >= 1, "the killed shard left no journal"
    # the killed shard runs again and finishes its share, continuing the big file
    code, records, err = finish(
        start(command(sandbox, "upload", "--manifest", str(manifest), "--shard", f"1/{SHARDS}"), env, sandbox.state_dir)
    )  # fmt: skip
    assert code == 0, err
    (big,) = [r for r in records if r["file"] == BIG]
    assert big["outcome"] == "done" and int(big["parts_resumed"]) >= 1, big
    figures.update(
        upload_kills=1,
        parts_of_killed_file=big["parts"],
        parts_journaled_at_kill=parts_at_kill[0],
        parts_resumed=big["parts_resumed"],
        # of these, only the part in flight at the kill (one at a time) had been sent before
        parts_sent_in_rerun=int(big["parts"]) - int(big["parts_resumed"]),
    )
    shares = [{r["file"] for r in first[k][1]} for k in range(2, SHARDS + 1)] + [
        {r["file"] for r in records}
    ]
    assert sorted(n for s in shares for n in s) == sorted(p.name for p in files)

    # Pass 2: all shards again upload nothing.
    second = run_shards(sandbox, "upload", ["--manifest", str(manifest)], env)
    for code, records, err in second.values():
        assert code == 0, err
        assert {r["outcome"] for r in records} <= {"skipped"}
    assert sum(len(r[1]) for r in second.values()) == len(files)
    assert live_uploads(sandbox) == {p.name: ["inbox"] for p in files}
    assert not list((state / "uploads").glob("*.jsonl"))

    # Downloads: 4 shards into one folder; shard 1 killed after its first file is final.
    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    out = tmp_path / "out"
    out.mkdir()
    down_env = {
        **env,
        "GHGA_CONNECTOR_MAX_PARALLEL_FILES": "1",
        "GHGA_CONNECTOR_PART_SIZE": str(MiB),
    }
    args = ["--output-dir", str(out), "--decrypt"]
    listing = subprocess.run(
        [*command(sandbox, "ls")], env=down_env, cwd=sandbox.state_dir,
        capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    names = sorted(json.loads(line)["file"] for line in listing.stdout.splitlines())
    share_1 = names[0::SHARDS]  # by count: sorted accessions dealt out in turn
    set_latency(sandbox, 150)
    downloads = run_shards(
        sandbox, "download", args, down_env,
        kill=(1, lambda: any((out / name).exists() for name in share_1)),
    )  # fmt: skip
    set_latency(sandbox, 0)
    for k in range(2, SHARDS + 1):
        code, records, err = downloads[k]
        assert code == 0, err
        assert {r["outcome"] for r in records} == {"done"}
    left = [name for name in share_1 if not (out / name).exists()]
    assert left, "shard 1 was killed after it had finished"
    code, records, err = finish(
        start(command(sandbox, "download", *args, "--shard", f"1/{SHARDS}"), down_env, sandbox.state_dir)
    )  # fmt: skip
    assert code == 0, err
    assert sorted(r["file"] for r in records if r["outcome"] == "done") == left
    again = run_shards(sandbox, "download", args, down_env)
    for code, records, err in again.values():
        assert code == 0, err
        assert {r["outcome"] for r in records} == {"skipped"}
    figures.update(download_kills=1, files_left_by_killed_download=len(left))

    # every file exactly once, byte-identical; nothing else left in the folder
    # A process killed while writing may leave a hidden temporary name of the
    # downloader's (".NAME.part.json.RANDOM.tmp"); no lock, no .part, nothing visible.
    visible = [p for p in out.iterdir() if not p.name.startswith(".") and p.suffix != ".sha256"]
    assert len(visible) == len(files), sorted(p.name for p in out.iterdir())
    assert not [p for p in out.iterdir() if ".lock" in p.name or p.name.endswith(".part")]
    assert sorted(sha256(p) for p in visible) == sorted(sha256(p) for p in files)
    print(json.dumps(figures))


# --- issue 14 item 5: stream to a pipeline ------------------------------------------------------

READER = (
    "import hashlib, sys\n"
    "h = hashlib.sha256(); n = 0\n"
    "for block in iter(lambda: sys.stdin.buffer.read(1 << 16), b''):\n"
    "    h.update(block); n += len(block)\n"
    "print(h.hexdigest(), n)\n"
)


def stream_into_reader(
    sandbox: SandboxProcess, accession: str, env: dict[str, str], cwd: Path
) -> tuple[int, str, str]:
    """``download --file ACC --decrypt --output - | python READER``: (exit, err, reader out)."""
    connector = subprocess.Popen(
        command(sandbox, "download", "--file", accession, "--decrypt", "--output", "-", json=False),
        env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    reader = subprocess.Popen(
        [sys.executable, "-c", READER], stdin=connector.stdout, stdout=subprocess.PIPE, cwd=cwd
    )
    assert connector.stdout is not None and connector.stderr is not None
    connector.stdout.close()  # the reader owns the pipe now
    err = connector.stderr.read().decode()
    connector.wait(timeout=RUN_TIMEOUT)
    out, _ = reader.communicate(timeout=RUN_TIMEOUT)
    return connector.returncode, err, out.decode()


def test_stream_a_real_bam_to_a_reader_and_refuse_a_wrong_checksum(
    fast_sandbox, tmp_path: Path
) -> None:
    sandbox = fast_sandbox
    bam = EXAMPLES / "human_mouse_smaller.bam"
    env = env_for(tmp_path / "state", part_size=str(MiB), max_concurrent_downloads="3")
    code, _, err = finish(start(command(sandbox, "upload", str(bam)), env, sandbox.state_dir))
    assert code == 0, err
    assert sandbox.archive().returncode == 0
    accession = sandbox.status()["drs_objects"][0]["accession"]
    work = tmp_path / "work"
    work.mkdir()
    elsewhere = {**env, "GHGA_CONNECTOR_WKVS_API_URL": sandbox.wkvs_api_url}

    code, err, out = stream_into_reader(sandbox, accession, elsewhere, work)
    assert code == 0, err
    assert out.split() == [sha256(bam), str(bam.stat().st_size)]
    assert "done" in err  # progress and the summary go to standard error
    assert not list(work.iterdir()), "something was written to disk"

    # The archive's checksum no longer matches: the data is streamed, then declared invalid.
    with sqlite3.connect(sandbox.state_dir / "state.sqlite3") as db:
        db.execute(
            "UPDATE drs_objects SET doc = json_set(doc, '$.decrypted_sha256', ?) WHERE accession = ?",
            ("0" * 64, accession),
        )
    code, err, out = stream_into_reader(sandbox, accession, elsewhere, work)
    assert code == 1, err
    assert "the streamed data is invalid" in " ".join(err.split())
    assert out.split()[1] == str(bam.stat().st_size)


def test_stream_into_a_reader_that_stops_early(fast_sandbox, tmp_path: Path) -> None:
    sandbox = fast_sandbox
    bam = EXAMPLES / "N701_small.bam"
    env = env_for(tmp_path / "state", part_size=str(MiB))
    code, _, err = finish(start(command(sandbox, "upload", str(bam)), env, sandbox.state_dir))
    assert code == 0, err
    assert sandbox.archive().returncode == 0
    accession = sandbox.status()["drs_objects"][0]["accession"]
    connector = subprocess.Popen(
        command(sandbox, "download", "--file", accession, "--decrypt", "--output", "-", json=False),
        env=env, cwd=sandbox.state_dir, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert connector.stdout is not None and connector.stderr is not None
    assert connector.stdout.read(1000) == bam.read_bytes()[:1000]
    connector.stdout.close()  # like `| head -c 1000`
    err = connector.stderr.read().decode()
    assert connector.wait(timeout=RUN_TIMEOUT) == 1, err
    assert "closed the pipe before the end" in " ".join(err.split())
    assert "Traceback" not in err and "Exception ignored" not in err, err
