"""Downloads are verified or loudly not: each check provoked by a sandbox fault switch.

One sandbox for the module; the setup uploads a few files under their own aliases and
archives them, and each test downloads its own accession (staging happens once per
accession, so a switch such as ``swap_segments`` affects only the file it was armed
for). Every test arms its switches through ``POST /admin/faults``, runs the real CLI
and checks how many faults fired: nothing in the client is monkeypatched.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import popen_interruptible

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIG = EXAMPLES / "human_mouse_smaller.bam"  # 17 MB: several 5 MiB ranges
SMALL = EXAMPLES / "N701_small.bam"  # 4.2 MB: 65 Crypt4GH segments
ALIASES = ("big.bam", "nochecksum.bam", "wrongsum.bam", "swapped.bam", "twopackets.bam", "links.bam", "cut.bam", "paused.bam")  # fmt: skip
SEGMENT = 65_564
HOSTILE = "run[/2].bin"  # Rich markup if printed carelessly


def _env(work: Path, sandbox: Any) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env["GHGA_CONNECTOR_STATE_DIR"] = str(work / "state")
    env["GHGA_CONNECTOR_PART_SIZE"] = str(5 * 1024 * 1024)
    env["GHGA_CONNECTOR_WKVS_API_URL"] = sandbox.wkvs_api_url
    return env


def run_cli(sandbox: Any, work: Path, *args: str, json_output: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    command, rest = args[0], list(args[1:])
    keys = ["--my-private-key-path", str(sandbox.user_sec)]
    if command != "decrypt":
        keys += ["--my-public-key-path", str(sandbox.user_pub)]
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *(["--json"] if json_output else []), command, *keys, *rest],
        cwd=work, env=_env(work, sandbox), capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def download(sandbox: Any, work: Path, accession: str, out: Path, *extra: str, json_output: bool = False) -> subprocess.CompletedProcess[str]:  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    return run_cli(
        sandbox, work, "download", "--wpat-file", str(sandbox.download_wpat_file),
        "--output-dir", str(out), "--file", accession, *extra, json_output=json_output,
    )  # fmt: skip


def arm(sandbox: Any, **switches: object) -> None:
    response = sandbox.admin("POST", "/faults", json=switches)
    assert response.status_code == 200, response.text


def fired(sandbox: Any) -> dict[str, int]:
    return dict(sandbox.admin("GET", "/faults").json()["injected"])


def records(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


@pytest.fixture(scope="module")
def uploaded(
    sandbox_module: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[subprocess.CompletedProcess[str], dict[str, str]]:
    """The upload run and alias -> accession of the files archived for this module."""
    work = tmp_path_factory.mktemp("upload")
    manifest = work / "files.tsv"
    lines = []
    for alias in ALIASES:
        copy = work / alias
        shutil.copy(BIG if alias == "big.bam" else SMALL, copy)
        lines.append(f"{copy}\t{alias}\n")
    shutil.copy(SMALL, work / "hostile.bin")
    lines.append(f"{work / 'hostile.bin'}\t{HOSTILE}\n")
    manifest.write_text("".join(lines))
    up = run_cli(
        sandbox_module, work, "upload", "--wpat-file", str(sandbox_module.upload_wpat_file),
        "--manifest", str(manifest),
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert sandbox_module.archive().returncode == 0
    status = sandbox_module.status()
    file_ids = {u["alias"]: u["id"] for u in status["uploads"]}
    accessions = {o["file_id"]: o["accession"] for o in status["drs_objects"]}
    return up, {alias: accessions[file_ids[alias]] for alias in (*ALIASES, HOSTILE)}


@pytest.fixture(scope="module")
def archived(
    uploaded: tuple[subprocess.CompletedProcess[str], dict[str, str]],
) -> dict[str, str]:
    """alias -> accession of the files uploaded and archived for this module."""
    return uploaded[1]


def test_markup_in_an_alias_is_printed_literally(
    uploaded: tuple[subprocess.CompletedProcess[str], dict[str, str]],
) -> None:
    result, _ = uploaded
    assert result.returncode == 0, result.stderr
    assert f"{HOSTILE}: done" in result.stderr
    assert "Traceback" not in result.stderr and "MarkupError" not in result.stderr


def test_drs_object_without_checksum_is_unverified(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["nochecksum.bam"]
    before = fired(sandbox_module).get("drs_no_checksum", 0)
    arm(sandbox_module, drs_no_checksum=1)
    result = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert result.returncode == 1, result.stderr
    [record] = records(result)
    assert record["outcome"] == "unverified"
    assert record["verified"] is False
    assert f"GHGA sent no SHA-256 checksum for {accession}" in result.stderr
    assert "--allow-unverified" in result.stderr
    assert fired(sandbox_module)["drs_no_checksum"] == before + 1
    target = tmp_path / "out" / f"{accession}.bam.c4gh"
    # never under the final name: kept as X.unverified, and no checksum file vouches for it
    assert not target.exists()
    assert (tmp_path / "out" / f"{accession}.bam.c4gh.unverified").exists()
    assert not (tmp_path / "out" / f"{accession}.bam.sha256").exists()
    # the same command again: unverified again, exit 1 (was: "skipped (exists already)", exit 0)
    arm(sandbox_module, drs_no_checksum=1)
    again = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert again.returncode == 1, again.stderr
    assert [r["outcome"] for r in records(again)] == ["unverified"]
    assert not target.exists()
    # once the archive sends its checksum, the next run verifies and names it
    done = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert done.returncode == 0, done.stderr
    assert [r["outcome"] for r in records(done)] == ["done"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        f"{accession}.bam.c4gh",
        f"{accession}.bam.sha256",
    ]
    # and the run after that skips it, unread (its checksum file vouches for it)
    skipped = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert skipped.returncode == 0, skipped.stderr
    assert [r["outcome"] for r in records(skipped)] == ["skipped"]

    arm(sandbox_module, drs_no_checksum=1)
    accepted = download(
        sandbox_module, tmp_path, accession, tmp_path / "out2", "--allow-unverified", "--decrypt"
    )
    assert accepted.returncode == 0, accepted.stderr
    assert "unverified" in accepted.stderr
    assert (tmp_path / "out2" / f"{accession}.bam").read_bytes() == SMALL.read_bytes()


def test_wrong_archive_checksum_fails(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["wrongsum.bam"]
    arm(sandbox_module, drs_wrong_checksum=1)
    result = download(sandbox_module, tmp_path, accession, tmp_path / "out", "--decrypt")
    assert result.returncode == 1, result.stderr
    assert "does not match the archive's checksum" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert fired(sandbox_module).get("drs_wrong_checksum", 0) >= 1


def test_swapped_segments_are_never_reported_done(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["swapped.bam"]
    arm(sandbox_module, swap_segments=1)  # consumed when this accession is staged
    failed = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert fired(sandbox_module).get("swap_segments", 0) == 1
    assert failed.returncode == 1, failed.stderr
    assert [r["outcome"] for r in records(failed)] == ["failed"]
    assert list((tmp_path / "out").iterdir()) == []
    # Without the archive's checksum the swap decrypts cleanly: it must say unverified.
    arm(sandbox_module, drs_no_checksum=1)
    unverified = download(sandbox_module, tmp_path, accession, tmp_path / "out", json_output=True)
    assert unverified.returncode == 1, unverified.stderr
    assert [r["outcome"] for r in records(unverified)] == ["unverified"]


def test_envelope_with_two_packets_is_refused_before_data(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["twopackets.bam"]
    arm(sandbox_module, envelope_two_packets=1)
    result = download(sandbox_module, tmp_path, accession, tmp_path / "out")
    assert result.returncode == 1, result.stderr
    assert "malformed Crypt4GH envelope" in result.stderr
    assert "2 header packets" in result.stderr
    assert list((tmp_path / "out").iterdir()) == []
    assert fired(sandbox_module).get("envelope_two_packets", 0) == 1
    again = download(sandbox_module, tmp_path, accession, tmp_path / "out")
    assert again.returncode == 0, again.stderr


def test_206_with_another_range_is_fetched_again(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    before = fired(sandbox_module).get("wrong_content_range", 0)
    arm(sandbox_module, wrong_content_range=2)
    result = download(sandbox_module, tmp_path, archived["big.bam"], tmp_path / "out", "--decrypt")
    assert result.returncode == 0, result.stderr
    assert fired(sandbox_module)["wrong_content_range"] == before + 2
    [output] = [p for p in (tmp_path / "out").iterdir() if p.suffix != ".sha256"]
    assert hashlib.sha256(output.read_bytes()).digest() == hashlib.sha256(BIG.read_bytes()).digest()


@pytest.mark.parametrize("planted", ["{x}.bam.c4gh", "{x}.bam.c4gh.part", "{x}.bam.c4gh.part.json", "{x}.bam.sha256"])  # fmt: skip
def test_planted_symlink_is_refused(sandbox_module: Any, archived: dict[str, str], tmp_path: Path, planted: str) -> None:  # fmt: skip
    accession = archived["links.bam"]
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    link = out / planted.format(x=accession)
    link.symlink_to(victim)
    for extra in ((), ("--overwrite",), ("--verify",)):
        result = download(sandbox_module, tmp_path, accession, out, *extra)
        assert result.returncode == 1, result.stderr
        assert "is a symbolic link; refusing to write through it" in result.stderr
        assert "Traceback" not in result.stderr
        assert victim.read_text() == "precious"
        assert link.is_symlink()


def test_decrypt_of_a_cut_file(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["cut.bam"]
    done = download(sandbox_module, tmp_path, accession, tmp_path / "dl")
    assert done.returncode == 0, done.stderr
    encrypted = tmp_path / "dl" / f"{accession}.bam.c4gh"
    sidecar = tmp_path / "dl" / f"{accession}.bam.sha256"
    assert sidecar.read_text().splitlines()[0].endswith(f"  {accession}.bam")

    # cut at a segment boundary (Crypt4GH alone cannot notice), sidecar left behind
    cut = tmp_path / "cut"
    cut.mkdir()
    (cut / encrypted.name).write_bytes(encrypted.read_bytes()[: 124 + 10 * SEGMENT])
    unverified = run_cli(sandbox_module, tmp_path, "decrypt", "--input-dir", str(cut))
    assert unverified.returncode == 1, unverified.stderr
    assert "unverified" in unverified.stderr
    assert "--allow-unverified" in unverified.stderr
    # kept under the marker name; the same command again is unverified again, exit 1
    assert not (cut / f"{accession}.bam").exists()
    assert (cut / f"{accession}.bam.unverified").exists()
    again = run_cli(sandbox_module, tmp_path, "decrypt", "--input-dir", str(cut))
    assert again.returncode == 1, again.stderr
    assert "unverified" in again.stderr
    accepted = run_cli(
        sandbox_module, tmp_path, "decrypt", "--input-dir", str(cut), "--overwrite",
        "--allow-unverified",
    )  # fmt: skip
    assert accepted.returncode == 0, accepted.stderr
    assert (cut / f"{accession}.bam").read_bytes() == SMALL.read_bytes()[: 10 * 65536]

    # with the checksum beside it, the cut file fails and leaves nothing
    shutil.copy(sidecar, cut / sidecar.name)
    (cut / f"{accession}.bam").unlink()
    failed = run_cli(sandbox_module, tmp_path, "decrypt", "--input-dir", str(cut))
    assert failed.returncode == 1, failed.stderr
    assert "does not match the checksum" in failed.stderr
    assert not (cut / f"{accession}.bam").exists()

    # the old sidecar name (X.bam.c4gh.sha256) is still read
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(encrypted, old / encrypted.name)
    shutil.copy(sidecar, old / f"{encrypted.name}.sha256")
    verified = run_cli(
        sandbox_module, tmp_path, "decrypt", "--input-dir", str(old), json_output=True
    )
    assert verified.returncode == 0, verified.stderr
    assert (old / f"{accession}.bam").read_bytes() == SMALL.read_bytes()
    assert ((old / f"{accession}.bam").stat().st_mode & 0o777) == 0o600


@pytest.mark.posix_only  # sends SIGINT
def test_ctrl_c_says_how_to_continue_the_download(sandbox_module: Any, archived: dict[str, str], tmp_path: Path) -> None:  # fmt: skip
    accession = archived["paused.bam"]
    out = tmp_path / "out"
    out.mkdir()
    # the one range GET is answered 503 with a long Retry-After: the download is certainly
    # still running when Ctrl-C arrives (no timing assumption about the transfer itself)
    before = fired(sandbox_module).get("status:s3:503", 0)
    arm(sandbox_module, status_rules=[{"service": "s3", "status": 503, "count": 1, "retry_after": 120}])  # fmt: skip
    command = [
        sys.executable, "-m", "ghga_connector", "download",
        "--my-private-key-path", str(sandbox_module.user_sec),
        "--my-public-key-path", str(sandbox_module.user_pub),
        "--wpat-file", str(sandbox_module.download_wpat_file),
        "--output-dir", str(out), "--file", accession, "--decrypt",
    ]  # fmt: skip
    env = _env(tmp_path, sandbox_module)
    # SIGINT at its default in the child even if this suite runs with it ignored.
    process = popen_interruptible(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while fired(sandbox_module).get("status:s3:503", 0) <= before:
            assert time.monotonic() < deadline, "the range request never arrived"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, stderr
    assert "download paused; run the same command again to continue" in stderr
    assert "Traceback" not in stderr
    assert (out / f"{accession}.bam.part").exists()
    resumed = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert (out / f"{accession}.bam").read_bytes() == SMALL.read_bytes()
