"""Downloads under pressure: a full disk, and files that take too long to be staged."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import start_sandbox

pytestmark = pytest.mark.integration

BAM = Path(__file__).resolve().parents[2] / "examples" / "human_mouse_smaller.bam"


def _download(
    sandbox, out: Path, env_extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
    env.update(GHGA_CONNECTOR_STATE_DIR=str(out.parent / "state"), **(env_extra or {}))
    return subprocess.run(
        [
            sys.executable, "-m", "ghga_connector", "download", "--decrypt",
            "--wpat-file", str(sandbox.download_wpat_file),
            "--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path", str(sandbox.user_sec),
            "--output-dir", str(out),
        ],
        cwd=sandbox.state_dir, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def _upload_and_archive(sandbox) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [
            sys.executable, "-m", "ghga_connector", "upload", "--wpat-file", str(sandbox.upload_wpat_file),
            "--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path", str(sandbox.user_sec),
            str(BAM),
        ],
        cwd=sandbox.state_dir, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sandbox.archive().returncode == 0


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB tmpfs (Linux; as root, or through passwordless ``sudo``)."""
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    mounted = subprocess.run(
        [*sudo, "mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount_point)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    if sudo:
        subprocess.run([*sudo, "chown", str(os.getuid()), str(mount_point)], check=False)
    try:
        yield mount_point
    finally:
        subprocess.run([*sudo, "umount", str(mount_point)], check=False)


@pytest.mark.linux_only
def test_full_disk_keeps_the_partial_file_and_resumes(sandbox, small_disk: Path) -> None:
    _upload_and_archive(sandbox)
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (14 * 1024 * 1024))  # leaves ~10 MiB for a 17 MiB file
    out = small_disk / "out"
    out.mkdir()
    failed = _download(sandbox, out)
    assert failed.returncode == 1, failed.stderr
    assert "No space left on device" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert list(out.glob("*.part")), "the partial download keeps its temporary name"
    assert not [p for p in out.iterdir() if not p.name.endswith((".part", ".part.json"))]
    filler.unlink()  # space freed
    resumed = _download(sandbox, out)
    assert resumed.returncode == 0, resumed.stderr
    final = [p for p in out.iterdir() if not p.name.endswith((".part", ".part.json", ".sha256"))]
    assert len(final) == 1
    assert (out / f"{final[0].name}.sha256").is_file(), "the verified file has its checksum file"
    assert (
        hashlib.sha256(final[0].read_bytes()).hexdigest()
        == hashlib.sha256(BAM.read_bytes()).hexdigest()
    )


def test_staging_that_takes_too_long_times_out_clearly(tmp_path: Path) -> None:
    slow = start_sandbox(tmp_path / "slow", "--staging-delay", "60")
    try:
        _upload_and_archive(slow)
        out = tmp_path / "out"
        out.mkdir()
        result = _download(slow, out, {"GHGA_CONNECTOR_MAX_WAIT_TIME": "3"})
        assert result.returncode == 1, result.stderr
        assert "was not ready for download within 3 seconds" in result.stderr
        assert "being staged, next check in" in result.stderr  # the countdown is shown
        assert not list(out.iterdir())
    finally:
        slow.stop()
