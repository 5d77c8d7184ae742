"""Through a real forwarding proxy: upload and download succeed byte-identical, the proxy
sees the GHGA API calls and the presigned S3 requests; NO_PROXY bypasses it.

The proxy is proxy.py (PyPI, dev extra) in its own process, with a plugin
(``proxy_counter.py``) that records every request it forwards.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
FILES = sorted(EXAMPLES.glob("*.bam"))
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@dataclass
class ForwardProxy:
    url: str
    count_file: Path

    def requests(self) -> list[str]:
        """``METHOD host:port path`` of every request the proxy forwarded so far."""
        if not self.count_file.exists():
            return []
        return self.count_file.read_text(encoding="utf-8").splitlines()


@pytest.fixture
def forward_proxy(tmp_path: Path) -> Iterator[ForwardProxy]:
    port_file, count_file = tmp_path / "proxy.port", tmp_path / "proxy-requests.txt"
    log = (tmp_path / "proxy.log").open("wb")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
            "--port-file", str(port_file), "--num-acceptors", "1",
            "--plugins", "tests.integration.proxy_counter.CountingPlugin",
        ],
        cwd=REPO,
        env={**_without_proxies(os.environ), "PYTHONPATH": str(REPO),
             "PROXY_COUNT_FILE": str(count_file)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    log.close()
    try:
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail("proxy.py did not start:\n" + (tmp_path / "proxy.log").read_text())
            time.sleep(0.1)
        yield ForwardProxy(f"http://127.0.0.1:{port_file.read_text().strip()}", count_file)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _without_proxies(env: os._Environ[str] | dict[str, str]) -> dict[str, str]:
    names = {*PROXY_VARIABLES, *(v.lower() for v in PROXY_VARIABLES), "GHGA_CONNECTOR_PROXY"}
    return {k: v for k, v in env.items() if k not in names and k != "GHGA_CONNECTOR_WPAT"}


def connector(sandbox, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    keys = ["--my-public-key-path", str(sandbox.user_pub), "--my-private-key-path",
            str(sandbox.user_sec)]  # fmt: skip
    return subprocess.run(
        [sys.executable, "-m", "ghga_connector", *args[:1], *keys, *args[1:]],
        cwd=sandbox.state_dir,
        env={**_without_proxies(os.environ), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_upload_and_download_through_a_forwarding_proxy(
    sandbox, forward_proxy: ForwardProxy, tmp_path: Path
) -> None:
    s3 = sandbox.s3_url.removeprefix("http://")
    api = sandbox.url.removeprefix("http://")

    # upload: the proxy from HTTP_PROXY (the sandbox speaks plain http on loopback)
    up = connector(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), *map(str, FILES),
        env={"HTTP_PROXY": forward_proxy.url},
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    seen = forward_proxy.requests()
    assert f"GET {api} /.well-known/values" in seen
    assert any(r.startswith(f"POST {api} /ucs/boxes/") for r in seen)
    assert sum(r.startswith(f"PUT {s3} ") for r in seen) >= len(FILES)  # presigned part PUTs

    archived = sandbox.archive()
    assert archived.returncode == 0, archived.stdout + archived.stderr

    # download: the proxy from the 'proxy' setting, no proxy variables at all
    before = len(seen)
    out = tmp_path / "out"
    out.mkdir()
    down = connector(
        sandbox, "download", "--wpat-file", str(sandbox.download_wpat_file),
        "--output-dir", str(out), "--decrypt",
        env={"GHGA_CONNECTOR_PROXY": forward_proxy.url},
    )  # fmt: skip
    assert down.returncode == 0, down.stderr
    seen = forward_proxy.requests()[before:]
    assert any(r.startswith(f"GET {api} /ga4gh/drs/v1/objects/") for r in seen)
    assert sum(r.startswith(f"GET {s3} ") for r in seen) >= len(FILES)  # ranged GETs
    downloaded = {sha256(p) for p in out.iterdir() if p.suffix not in {".sha256", ".c4gh"}}
    assert downloaded == {sha256(p) for p in FILES}


def test_no_proxy_bypasses_the_proxy(sandbox, forward_proxy: ForwardProxy) -> None:
    up = connector(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(FILES[0]),
        env={"HTTP_PROXY": forward_proxy.url, "ALL_PROXY": forward_proxy.url,
             "NO_PROXY": "example.org,127.0.0.1"},
    )  # fmt: skip
    assert up.returncode == 0, up.stderr
    assert forward_proxy.requests() == []


def test_an_unreachable_proxy_is_reported_not_bypassed(sandbox, tmp_path: Path) -> None:
    """A proxy that is down fails the run with one clear line (the sandbox sees nothing)."""
    up = connector(
        sandbox, "upload", "--wpat-file", str(sandbox.upload_wpat_file), str(FILES[0]),
        env={"HTTP_PROXY": "http://127.0.0.1:9", "GHGA_CONNECTOR_CLIENT_NUM_RETRIES": "1"},
    )  # fmt: skip
    assert up.returncode != 0
    assert "Traceback" not in up.stderr
    assert "through the proxy" in up.stderr
    assert "HTTPS_PROXY" in up.stderr  # the hint names the proxy settings
