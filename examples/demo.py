"""End-to-end demo: real sequencing files through a local GHGA sandbox and back.

Starts ``ghga-sandbox serve`` on a free loopback port, uploads the example files with
``ghga-connector upload``, lets the sandbox play the Data Hub (``ghga-sandbox archive``),
downloads them with ``ghga-connector download``, decrypts them with ``ghga-connector
decrypt``, and compares the SHA-256 of every decrypted file with its original.

Run it with ``make demo`` (or ``python examples/demo.py``). Exit status 0 only if every
file came back byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

EXAMPLES = Path(__file__).resolve().parent
FILES = sorted(p for p in EXAMPLES.iterdir() if p.suffix in {".bam", ".gz"} and p.is_file())


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def connector(*args: str, cwd: Path) -> list[dict[str, object]]:
    """Run ``ghga-connector --json``; return its per-file records; exit on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "ghga_connector", "--json", *args],
        cwd=cwd,
        check=False,
        stdout=subprocess.PIPE,
        text=True,
    )
    if result.returncode != 0:
        sys.exit(f"ghga-connector {args[0]} failed with exit code {result.returncode}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def speed(record: dict[str, object]) -> float:
    """MB/s of a ``--json`` record (plaintext bytes over transfer seconds)."""
    seconds = float(record.get("seconds") or 0)  # type: ignore[arg-type]
    return float(record.get("bytes") or 0) / seconds / 1e6 if seconds else 0.0  # type: ignore[arg-type]


def wait_ready(state: Path, process: subprocess.Popen[bytes], timeout: float = 60.0) -> str:
    """Wait for the sandbox to write ``sandbox.json`` and answer; return its WKVS URL."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the sandbox stopped during start-up")
        info = state / "sandbox.json"
        if info.exists():
            try:
                url = json.loads(info.read_text())["wkvs_api_url"]
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return str(url)
            except (ValueError, KeyError, httpx.HTTPError):
                pass
        time.sleep(0.2)
    sys.exit("the sandbox did not start within 60 seconds")


def main() -> int:
    """Run the demo; return the exit status."""
    work = Path(tempfile.mkdtemp(prefix="ghga-demo-"))
    state = work / "sandbox"
    sandbox = subprocess.Popen(
        [sys.executable, "-m", "ghga_sandbox", "serve", "--port", "0", "--state-dir", str(state)],
        stdout=subprocess.DEVNULL,
    )
    try:
        wait_ready(state, sandbox)
        keys = ["--my-public-key-path", "key.pub", "--my-private-key-path", "key.sec"]
        print(f"Sandbox ready; uploading {len(FILES)} files from {EXAMPLES}")
        uploaded = connector(
            "upload", "--wpat-file", "upload.wpat", *keys, *map(str, FILES), cwd=state
        )
        print("Uploaded; the sandbox now plays the Data Hub (check, re-encrypt, archive)")
        archive = subprocess.run(
            [sys.executable, "-m", "ghga_sandbox", "archive", "--state-dir", str(state)],
            check=False,
        )
        if archive.returncode != 0:
            sys.exit("ghga-sandbox archive failed")
        out = work / "downloads"
        out.mkdir()
        downloaded = connector(
            "download", "--wpat-file", "download.wpat", *keys, "--output-dir", str(out), cwd=state
        )
        decrypted = connector(
            "decrypt", "--input-dir", str(out), "--my-private-key-path", "key.sec", cwd=state
        )
        by_checksum = {str(r["sha256"]): r for r in decrypted if r.get("sha256")}
        download_of = {str(r.get("sha256")): r for r in downloaded}
        upload_of = {str(r["file"]): r for r in uploaded}
        ok = True
        print()
        print(
            f"{'file':40} {'bytes':>11} {'upload MB/s':>12} {'download MB/s':>14}  decrypted file          checksum"
        )
        for path in FILES:
            digest = sha256(path)
            match = by_checksum.get(digest)
            same = match is not None and sha256(Path(str(match["path"]))) == digest
            ok &= same
            up = speed(upload_of.get(path.name, {}))
            down = speed(download_of.get(digest, {}))
            name = Path(str(match["path"])).name if match else "-"
            print(
                f"{path.name:40} {path.stat().st_size:>11,} {up:>12.1f} {down:>14.1f}  "
                f"{name:22}  {'OK' if same else 'MISMATCH'}"
            )
        print("\nAll files came back byte-identical." if ok else "\nSOME FILES DIFFER.")
        return 0 if ok else 1
    finally:
        sandbox.terminate()
        try:
            sandbox.wait(timeout=20)
        except subprocess.TimeoutExpired:
            sandbox.kill()
        if os.environ.get("GHGA_DEMO_KEEP"):
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
