"""Acceptance: the released ``ghga-connector==4.0.1`` from PyPI, unchanged, against the sandbox.

A session fixture installs 4.0.1 into its own virtual environment under
``<repo>/.cache/venv-401/`` (reused while ``.complete`` exists there; skipped with a reason
if PyPI cannot be reached). 4.0.1 has no token option: the access token is piped to its
``input()`` prompt. Its ``ubox`` shell needs a terminal and is driven through a
pseudo-terminal. The second test runs this repository's client over the same sandbox.
"""

from __future__ import annotations

import hashlib
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import cached_tool_venv
from ghga_sandbox.bootstrap import read_user_public_key

pytestmark = [pytest.mark.integration, pytest.mark.posix_only]  # a pseudo-terminal

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
EXAMPLE_FILES = sorted([*EXAMPLES.glob("*.bam"), *EXAMPLES.glob("*.vcf.gz")])
VENV_401 = REPO / ".cache" / "venv-401"
REQUIREMENT = "ghga-connector==4.0.1"
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 300

ANSI = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b[()][0-9A-Za-z]|\x1b[=>]|\r|\x08")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the 4.0.1 virtual environment ---------------------------------------------------


@pytest.fixture(scope="session")
def connector_401() -> Path:
    """``ghga-connector`` of a venv with the released 4.0.1 (created once, then cached)."""
    return cached_tool_venv(VENV_401, REQUIREMENT, "ghga-connector", INSTALL_TIMEOUT)


# --- helpers -------------------------------------------------------------------------


def run_401(
    exe: Path, *args: str, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env.update({"COLUMNS": "200", "TERM": "dumb"})
    return subprocess.run(
        [str(exe), *args],
        cwd=cwd,
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT,
        check=False,
    )


class PtySession:
    """A child process on a pseudo-terminal, driven by expected text (ANSI stripped)."""

    def __init__(self, argv: list[str], cwd: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        import pty  # POSIX only (the module is marked posix_only)

        self.master, slave = pty.openpty()
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
        env.update({"TERM": "xterm", "COLUMNS": "200", "LINES": "50"})
        self.process = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=env,
            start_new_session=True,
        )
        os.close(slave)
        self.raw = b""
        self.seen = 0  # offset into the cleaned text already consumed by expect()

    @property
    def text(self) -> str:
        return ANSI.sub(b"", self.raw).decode(errors="replace")

    def _pump(self, wait: float) -> bool:
        ready, _, _ = select.select([self.master], [], [], wait)
        if not ready:
            return True
        try:
            chunk = os.read(self.master, 65536)
        except OSError:  # EIO: the child closed the terminal
            return False
        if not chunk:
            return False
        if b"\x1b[6n" in chunk:  # prompt_toolkit asks for the cursor position
            os.write(self.master, b"\x1b[1;1R")
        self.raw += chunk
        return True

    def expect(self, needle: str) -> str:
        """Read until ``needle`` appears after the last match; return the text up to it."""
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            text = self.text
            found = text.find(needle, self.seen)
            if found >= 0:
                chunk = text[self.seen : found + len(needle)]
                self.seen = found + len(needle)
                return chunk
            if not self._pump(0.2):
                break
        raise AssertionError(f"{needle!r} not seen; output so far:\n{self.text[-3000:]}")

    def send(self, line: str) -> None:
        os.write(self.master, line.encode() + b"\r")

    def close(self) -> int:
        deadline = time.monotonic() + self.timeout
        while self.process.poll() is None and time.monotonic() < deadline:
            self._pump(0.2)
        if self.process.poll() is None:
            self.process.kill()
        code = self.process.wait(timeout=10)
        os.close(self.master)
        return code


def extension(path: Path) -> str:
    """The file extension the sandbox gives an accession (``.bam``, ``.vcf.gz``)."""
    return ".vcf.gz" if path.name.endswith(".vcf.gz") else path.suffix


def archived_by_alias(sandbox: Any) -> dict[str, str]:
    """Alias → accession of all archived files, from ``/admin/status``."""
    status = sandbox.status()
    alias_of = {u["id"]: u["alias"] for u in status["uploads"]}
    return {alias_of[o["file_id"]]: o["accession"] for o in status["drs_objects"]}


# --- tests ---------------------------------------------------------------------------


def test_released_401_round_trip(connector_401: Path, sandbox_module: Any, tmp_path: Path) -> None:
    sb = sandbox_module
    # Unchanged, from the sandbox's folder: its .ghga_connector.yaml holds only what
    # 4.0.1 accepts (wkvs_api_url), and its keys have 4.0.1's default names, so no
    # key options are needed.
    cwd = sb.state_dir
    assert (cwd / ".ghga_connector.yaml").read_text() == f"wkvs_api_url: {sb.wkvs_api_url}\n"
    assert (cwd / "key.pub").is_file() and (cwd / "key.sec").is_file()
    keys: list[str] = []
    upload_token = sb.upload_wpat_file.read_text().strip()

    # batch-upload: the example files plus a scratch file removed again with ubox
    scratch = tmp_path / "scratch.bin"
    scratch.write_bytes(os.urandom(100_000))
    tsv = tmp_path / "files.tsv"
    tsv.write_text("".join(f"{p}\t{p.name}\n" for p in EXAMPLE_FILES) + f"{scratch}\tscratch.bin\n")
    up = run_401(
        connector_401, "batch-upload", "--tsv", str(tsv), *keys, cwd=cwd, stdin=upload_token + "\n"
    )
    assert up.returncode == 0, up.stdout + up.stderr
    assert "All files uploaded successfully" in up.stdout, up.stdout + up.stderr
    states = {u["alias"]: u["state"] for u in sb.status()["uploads"]}
    assert states == {**{p.name: "inbox" for p in EXAMPLE_FILES}, "scratch.bin": "inbox"}

    # ubox: list, remove the scratch file, list with deleted files, exit
    shell = PtySession([str(connector_401), "ubox", *keys], cwd=cwd)
    try:
        shell.expect("access token")
        shell.send(upload_token)
        shell.expect("ubox>")
        shell.send("ls")
        listing = shell.expect("scratch.bin")
        listing += shell.expect("ubox>")
        for path in EXAMPLE_FILES:
            assert path.name in listing
        assert "re-encrypting..." in listing  # 4.0.1's label for `inbox`
        shell.send("rm scratch.bin")
        shell.expect("Deleted 'scratch.bin' from the upload box.")
        shell.expect("ubox>")
        shell.send("ls")
        after_rm = shell.expect("ubox>")
        assert "scratch.bin" not in after_rm
        shell.send("ls --show-deleted")
        shell.expect("scratch.bin")
        deleted = shell.expect("ubox>")
        assert "deleted" in deleted
        shell.send("exit")
    finally:
        code = shell.close()
    assert code == 0, shell.text[-3000:]
    states = {u["alias"]: u["state"] for u in sb.status()["uploads"]}
    assert states["scratch.bin"] == "cancelled"

    # Data Hub step and archival; download work package for user.pub
    archived = sb.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr
    accessions = archived_by_alias(sb)
    assert set(accessions) == {p.name for p in EXAMPLE_FILES}
    download_token = sb.download_wpat_file.read_text().strip()

    encrypted = tmp_path / "encrypted"
    encrypted.mkdir()
    down = run_401(
        connector_401, "download", "--output-dir", str(encrypted), *keys,
        cwd=cwd, stdin=download_token + "\n",
    )  # fmt: skip
    assert down.returncode == 0, down.stdout + down.stderr
    assert sorted(p.name for p in encrypted.iterdir()) == sorted(
        f"{accessions[p.name]}{extension(p)}.c4gh" for p in EXAMPLE_FILES
    )

    plain = tmp_path / "plain"
    dec = run_401(
        connector_401, "decrypt", "--input-dir", str(encrypted), "--output-dir", str(plain),
        cwd=cwd,
    )  # fmt: skip
    assert dec.returncode == 0, dec.stdout + dec.stderr
    assert "Successfully decrypted" in dec.stdout, dec.stdout + dec.stderr
    for path in EXAMPLE_FILES:
        out = plain / f"{accessions[path.name]}{extension(path)}"
        assert out.read_bytes() == path.read_bytes(), path.name


def test_our_client_round_trip_on_the_same_sandbox(sandbox_module: Any, tmp_path: Path) -> None:
    sb = sandbox_module
    user_key = read_user_public_key(sb.user_pub)
    box = sb.admin("POST", "/upload-boxes", json={"user_public_key": user_key})
    assert box.status_code == 201, box.text
    wpat = tmp_path / "upload.wpat"
    wpat.write_text(box.json()["work_package"]["access_token"] + "\n")
    keys = ["--my-public-key-path", str(sb.user_pub), "--my-private-key-path", str(sb.user_sec)]

    def ours(*args: str) -> subprocess.CompletedProcess[str]:
        env: dict[str, Any] = {k: v for k, v in os.environ.items() if k != "GHGA_CONNECTOR_WPAT"}
        env["GHGA_CONNECTOR_WKVS_API_URL"] = sb.wkvs_api_url
        return subprocess.run(
            [sys.executable, "-m", "ghga_connector", "--json", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    up = ours("upload", "--wpat-file", str(wpat), *keys, *map(str, EXAMPLE_FILES))
    assert up.returncode == 0, up.stdout + up.stderr
    # the Data Hub and archival steps for this box only (admin API)
    box_id = box.json()["file_upload_box_id"]
    locked = sb.admin("POST", f"/boxes/{box_id}/lock", json={"force": False})
    assert locked.status_code == 200, locked.text
    for step in ("interrogate", "archive"):
        done = sb.admin("POST", f"/boxes/{box_id}/{step}")
        assert done.status_code == 200, done.text
    files = {f["alias"]: f["accession"] for f in done.json()}
    assert set(files) == {p.name for p in EXAMPLE_FILES}
    package = sb.admin(
        "POST",
        "/work-packages",
        json={"type": "download", "user_public_key": user_key, "accessions": list(files.values())},
    )
    assert package.status_code == 201, package.text
    down_wpat = tmp_path / "download.wpat"
    down_wpat.write_text(package.json()["access_token"] + "\n")

    out = tmp_path / "out"
    out.mkdir()
    down = ours(
        "download", "--wpat-file", str(down_wpat), *keys, "--output-dir", str(out), "--decrypt"
    )
    assert down.returncode == 0, down.stdout + down.stderr
    for path in EXAMPLE_FILES:
        matches = [
            p
            for p in out.iterdir()
            if p.name.startswith(files[path.name]) and p.suffix != ".sha256"
        ]
        assert len(matches) == 1, sorted(out.iterdir())
        assert sha256(matches[0]) == sha256(path), path.name
