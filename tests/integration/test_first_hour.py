"""A new user's first hour with the sandbox, as the README tells it.

* ``ghga-sandbox serve`` while port 8080 is taken (a second sandbox) takes a free port
  and says so; a ``--port`` that is taken is a one-line error;
* the ``export`` line and the commands ``serve`` prints work as printed from the user's
  own folder (relative file names, an output folder that does not exist yet), and the
  connector names the services it uses;
* ``ghga-connector ls --json`` into a reader that closed its end exits quietly (141);
* a retried request is visible: a warning line, and a ``retry`` event with ``--json``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import start_sandbox

from ghga_sandbox.bootstrap import read_user_public_key

pytestmark = [pytest.mark.integration, pytest.mark.posix_only]  # bash runs the printed lines

REPO = Path(__file__).resolve().parents[2]
BAM = REPO / "examples" / "N701_small.bam"
BIN = Path(sys.executable).parent


@contextlib.contextmanager
def port_8080_taken() -> Iterator[None]:
    """Hold port 8080 on loopback (if something else already holds it, so much the better)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(OSError):
            sock.bind(("127.0.0.1", 8080))
            sock.listen(1)
        yield
    finally:
        sock.close()


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env.pop("C4GH_PASSPHRASE", None)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def _bash(script: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", script],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        **kwargs,
    )


@pytest.fixture(scope="module")
def second_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A sandbox started without --port while 8080 is taken."""
    state = tmp_path_factory.mktemp("second") / "state dir"  # a space: the line is quoted
    with port_8080_taken():
        running = start_sandbox(state, "--staging-delay", "0", port=None)
    try:
        yield running
    finally:
        running.stop()


def _printed(sandbox: Any) -> list[str]:
    return [line.strip() for line in sandbox.log_file.read_text().splitlines()]


def test_serve_takes_a_free_port_when_8080_is_taken(second_sandbox: Any) -> None:
    port = int(second_sandbox.url.rsplit(":", 1)[1])
    assert port != 8080
    lines = _printed(second_sandbox)
    assert f"note: port 8080 is taken (another sandbox?); using the free port {port} instead (pass --port to choose one)" in lines  # fmt: skip
    assert any(line.startswith(f"ghga-sandbox listening on http://127.0.0.1:{port}") for line in lines)  # fmt: skip


def test_a_taken_port_named_with_port_is_an_error(tmp_path: Path) -> None:
    with port_8080_taken():
        done = subprocess.run(
            [sys.executable, "-m", "ghga_sandbox", "serve", "--port", "8080",
             "--state-dir", str(tmp_path / "s")],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "cannot listen on 127.0.0.1:8080: the port is already in use" in done.stderr
    assert "--port 0" in done.stderr


def test_the_printed_lines_work_from_the_users_own_folder(
    second_sandbox: Any, tmp_path: Path
) -> None:
    lines = _printed(second_sandbox)
    (export,) = [line for line in lines if line.startswith("export ")]
    commands = [
        line for line in lines if line.startswith(("ghga-connector ", "ghga-sandbox archive "))
    ]
    upload, archive, download = commands
    mine = tmp_path / "my project"
    mine.mkdir()
    (mine / "sample.bam").write_bytes(BAM.read_bytes())
    upload = upload.replace("FILE...", "sample.bam")
    download = download.replace("OUT", "results/run1")  # does not exist yet
    done = _bash(f"{export}\n{upload}\n{archive}\n{download}", cwd=mine)
    assert done.returncode == 0, done.stdout + done.stderr
    wkvs = second_sandbox.wkvs_api_url
    assert f"Using the GHGA services at {wkvs} (not GHGA production)." in done.stderr
    names = sorted(p.name for p in (mine / "results" / "run1").iterdir())
    assert len(names) == 2 and names[0].endswith(".bam.c4gh") and names[1].endswith(".bam.sha256")

    # the same export line, then `ls --json` into a reader that is already gone
    listing = f"{export}\nexec ghga-connector ls --json --wpat-file {shlex.quote(str(second_sandbox.state_dir / 'download.wpat'))}"  # fmt: skip
    process = subprocess.Popen(
        ["bash", "-c", listing], cwd=mine, env=_env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert process.stdout is not None
    process.stdout.close()  # like `| head -0`: nobody reads
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 141, stderr
    assert "Error" not in stderr and "BrokenPipe" not in stderr


def test_retries_are_shown_and_sent_as_json_events(second_sandbox: Any, tmp_path: Path) -> None:
    sandbox = second_sandbox
    box = sandbox.admin(
        "POST", "/upload-boxes", json={"user_public_key": read_user_public_key(sandbox.user_pub)}
    )
    assert box.status_code == 201, box.text
    wpat = tmp_path / "upload.wpat"
    wpat.write_text(box.json()["work_package"]["access_token"] + "\n")
    small = tmp_path / "small.bin"
    small.write_bytes(os.urandom(1000))
    rule = {"service": "ucs", "status": 503, "count": 1, "path_contains": "/uploads"}
    sandbox.admin("POST", "/faults", {"status_rules": [rule]})
    env = {
        **_env(),
        "GHGA_CONNECTOR_WKVS_API_URL": sandbox.wkvs_api_url,
        "GHGA_CONNECTOR_MY_PUBLIC_KEY_PATH": str(sandbox.user_pub),
        "GHGA_CONNECTOR_MY_PRIVATE_KEY_PATH": str(sandbox.user_sec),
        "GHGA_CONNECTOR_STATE_DIR": str(tmp_path / "state"),
    }
    done = subprocess.run(
        [sys.executable, "-m", "ghga_connector", "upload", "--json", "--wpat-file", str(wpat),
         str(small)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    (event,) = [r for r in records if "event" in r]
    assert event["event"] == "retry" and event["reason"] == "503"
    assert event["attempt"] == 2 and event["attempts"] >= 2
    assert re.fullmatch(r"(POST|PATCH|GET|PUT) 127\.0\.0\.1/ucs/\S+", event["request"])
    (record,) = [r for r in records if "file" in r]
    assert record["outcome"] == "done"
