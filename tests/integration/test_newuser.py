"""A new user's first hour against a real sandbox (issue 16).

* the commands ``ghga-sandbox serve`` prints work as printed in the sandbox's folder,
  with no key options (``./key.pub``, ``./key.sec``) and an empty home folder;
* a second ``serve`` on the same state folder is refused and changes nothing;
* ``ls`` hides deleted uploads unless ``--all``;
* dry runs: an archived box is reported (exit 1); a download dry run shows real sizes
  and whether each file is staged.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BAM = sorted(EXAMPLES.glob("*.bam"))[0]


def connector(*args: str, cwd: Path, home: Path | None = None) -> subprocess.CompletedProcess[str]:
    """``ghga-connector ARGS`` in ``cwd``, without GHGA_CONNECTOR_* variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GHGA_CONNECTOR_", "C4GH_"))}
    if home is not None:
        env["HOME"] = str(home)
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def printed_commands(sandbox: Any) -> dict[str, list[str]]:
    """The ``ghga-connector ...`` lines of the serve output, by command."""
    commands = {}
    for line in sandbox.log_file.read_text().splitlines():
        line = line.strip()
        if line.startswith("ghga-connector "):
            words = shlex.split(line)
            commands[words[1]] = words[1:]
    return commands


def test_printed_commands_work_in_the_sandbox_folder_without_the_export(
    sandbox: Any, tmp_path: Path
) -> None:
    """In the state folder no variable is needed: ./.ghga_connector.yaml and ./key.*."""
    home = tmp_path / "empty-home"
    home.mkdir()
    commands = printed_commands(sandbox)
    wpat = str(sandbox.state_dir / "upload.wpat")
    assert commands["upload"] == ["upload", "--wpat-file", wpat, "FILE..."]
    up = connector(*commands["upload"][:-1], str(BAM), cwd=sandbox.state_dir, home=home)
    assert up.returncode == 0, up.stderr
    assert sandbox.archive().returncode == 0
    out = tmp_path / "out"
    download = [str(out) if word == "OUT" else word for word in commands["download"]]
    down = connector(*download, "--decrypt", cwd=sandbox.state_dir, home=home)
    assert down.returncode == 0, down.stderr
    [plain] = [p for p in out.iterdir() if p.suffix != ".sha256"]
    assert plain.read_bytes() == BAM.read_bytes()


def test_second_serve_on_the_same_state_folder_is_refused(sandbox: Any) -> None:
    before = {
        name: (sandbox.state_dir / name).read_bytes()
        for name in ("upload.wpat", "sandbox.json", ".ghga_connector.yaml")
    }
    port = httpx.URL(sandbox.url).port
    second = subprocess.run(
        [
            sys.executable,
            "-m",
            "ghga_sandbox",
            "serve",
            "--port=0",
            f"--state-dir={sandbox.state_dir}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert second.returncode == 2, second.stdout + second.stderr
    assert "Traceback" not in second.stderr
    assert (
        f"is used by the sandbox running as PID {sandbox.process.pid} on port {port}"
        in second.stderr
    )
    after = {name: (sandbox.state_dir / name).read_bytes() for name in before}
    assert after == before
    assert httpx.get(f"{sandbox.wkvs_api_url}/health", timeout=10).status_code == 200


def test_deleted_upload_is_listed_only_with_all(sandbox: Any) -> None:
    cwd = sandbox.state_dir
    assert connector("upload", "--wpat-file", "upload.wpat", str(BAM), cwd=cwd).returncode == 0
    gone = connector("delete", "--wpat-file", "upload.wpat", "--alias", BAM.name, "--yes", cwd=cwd)
    assert gone.returncode == 0, gone.stderr
    listed = connector("ls", "--json", "--wpat-file", "upload.wpat", cwd=cwd)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == ""
    everything = connector("ls", "--all", "--json", "--wpat-file", "upload.wpat", cwd=cwd)
    rows = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [(r["alias"], r["state"]) for r in rows] == [(BAM.name, "cancelled")]


def test_dry_runs_after_archival(sandbox: Any) -> None:
    cwd = sandbox.state_dir
    assert connector("upload", "--wpat-file", "upload.wpat", str(BAM), cwd=cwd).returncode == 0
    assert sandbox.archive().returncode == 0

    # the box is archived: a dry run says so, as the real upload would fail
    late = connector("upload", "--dry-run", "--wpat-file", "upload.wpat", str(BAM), cwd=cwd)
    assert late.returncode == 1, late.stdout + late.stderr
    assert "archived" in late.stderr

    # not staged yet: ls --details says so instead of an empty size (asking starts staging)
    listing = connector("ls", "--details", "--wpat-file", "download.wpat", cwd=cwd)
    assert listing.returncode == 0, listing.stderr
    assert "no (being staged)" in listing.stdout
    assert "known once staged" in listing.stdout

    [accession] = [o["accession"] for o in sandbox.status()["drs_objects"]]
    assert sandbox.admin("POST", f"/objects/{accession}/stage").status_code < 300
    plan = connector(
        "download", "--dry-run", "--json", "--wpat-file", "download.wpat",
        "--output-dir", str(cwd), cwd=cwd,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    [row] = [json.loads(line) for line in plan.stdout.splitlines()]
    assert row["outcome"] == "planned"
    assert row["staged"] is True
    assert row["bytes"] == BAM.stat().st_size
