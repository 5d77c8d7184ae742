"""Fixtures that run ``ghga-sandbox serve`` as a real subprocess on a free loopback port.

* ``sandbox``: a fresh sandbox per test (own state directory);
* ``sandbox_session``: one sandbox for the whole session (tests create their own boxes
  through the admin API, so they stay independent).

Both yield a :class:`SandboxProcess`. The server's output goes to ``serve.log`` in the
state directory (never to a pipe that nobody reads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

START_TIMEOUT_SECONDS = 30.0


class SandboxProcess:
    """A running ``ghga-sandbox serve`` subprocess and the files it wrote."""

    def __init__(
        self, process: subprocess.Popen[bytes], state_dir: Path, info: dict[str, Any]
    ) -> None:
        self.process = process
        self.state_dir = state_dir
        self.url: str = info["url"]
        self.wkvs_api_url: str = info["wkvs_api_url"]
        self.s3_url: str = info["s3_url"]
        self.user_pub = state_dir / "user.pub"
        self.user_sec = state_dir / "user.sec"
        self.upload_wpat_file = state_dir / "upload.wpat"
        self.download_wpat_file = state_dir / "download.wpat"
        self.log_file = state_dir / "serve.log"

    @property
    def wps_api_url(self) -> str:
        return f"{self.url}/wps"

    @property
    def ucs_api_url(self) -> str:
        return f"{self.url}/ucs"

    @property
    def dcs_api_url(self) -> str:
        return f"{self.url}/ga4gh/drs/v1"

    def admin(self, method: str, path: str, json: Any = None) -> httpx.Response:
        """Call the admin API (``/admin{path}``)."""
        return httpx.request(method, f"{self.url}/admin{path}", json=json, timeout=120)

    def archive(self) -> subprocess.CompletedProcess[str]:
        """Run ``ghga-sandbox archive`` (Data Hub step, archival, ``download.wpat``)."""
        return subprocess.run(
            [sys.executable, "-m", "ghga_sandbox", "archive", "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    def status(self) -> dict[str, Any]:
        """``GET /admin/status``."""
        response = self.admin("GET", "/status")
        response.raise_for_status()
        return dict(response.json())

    def stop(self) -> None:
        """Terminate the server (SIGTERM, then SIGKILL after 15 s)."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_sandbox(state_dir: Path, *extra_args: str) -> SandboxProcess:
    """Start ``python -m ghga_sandbox serve --port 0`` and wait until WKVS answers."""
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "serve.log").open("wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghga_sandbox",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(state_dir),
            *extra_args,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    log.close()
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    info_path = state_dir / "sandbox.json"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = (state_dir / "serve.log").read_text(errors="replace")
            pytest.fail(f"ghga-sandbox exited with {process.returncode}:\n{output}")
        if info_path.exists():
            try:
                info = json.loads(info_path.read_text())
                response = httpx.get(f"{info['wkvs_api_url']}/health", timeout=2)
                if response.status_code == 200:
                    return SandboxProcess(process, state_dir, info)
            except (ValueError, KeyError, httpx.HTTPError):
                pass
        time.sleep(0.1)
    process.kill()
    output = (state_dir / "serve.log").read_text(errors="replace")
    pytest.fail(f"ghga-sandbox did not answer within {START_TIMEOUT_SECONDS} s:\n{output}")


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[SandboxProcess]:
    """A fresh sandbox for one test."""
    running = start_sandbox(tmp_path / "sandbox")
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def sandbox_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox for the session: staging completes right after the first request."""
    running = start_sandbox(tmp_path_factory.mktemp("sandbox-session"), "--staging-delay", "0")
    try:
        yield running
    finally:
        running.stop()
