"""``examples/snakemake/Snakefile`` run by a real Snakemake against the sandbox.

Snakemake is installed once from PyPI into ``<repo>/.cache/venv-snakemake/`` (reused while
``.complete`` exists there), the way the 4.0.1 acceptance test installs 4.0.1. It must
run in CI: with ``CI`` set, an install failure fails the test with pip's output; without
``CI`` an unreachable PyPI skips it.

The workflow uploads a folder of 10 files in 4 shard jobs (``--cores 4``), the sandbox
archives them, and the workflow downloads them again in 4 shard jobs: every file is in
the box exactly once and comes back byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.conftest import start_sandbox

from conftest import cached_tool_venv

pytestmark = [
    pytest.mark.integration,
    pytest.mark.posix_only,  # Snakemake's shell jobs need bash
]

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "examples" / "snakemake" / "Snakefile"
VENV = REPO / ".cache" / "venv-snakemake"
REQUIREMENT = "snakemake>=8,<10"
INSTALL_TIMEOUT = 900
RUN_TIMEOUT = 600


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def snakemake() -> Path:
    """``snakemake`` of a cached venv (installed once)."""
    return cached_tool_venv(VENV, REQUIREMENT, "snakemake", INSTALL_TIMEOUT)


def test_snakemake_example_uploads_a_folder_in_shards_and_downloads_it(
    snakemake: Path, tmp_path: Path
) -> None:
    sandbox = start_sandbox(tmp_path / "sandbox", "--staging-delay", "0")
    try:
        rng = random.Random(3)
        folder = tmp_path / "run42"
        folder.mkdir()
        for n in range(10):
            (folder / f"sample{n}.bin").write_bytes(rng.randbytes(rng.randint(10_000, 2_000_000)))
        shutil.copy(REPO / "examples" / "N701_small.bam", folder)
        work = tmp_path / "workflow"
        work.mkdir()
        config = [
            f"folder={folder}",
            f"output={tmp_path / 'back'}",
            "shards=4",
            f"connector={sys.executable} -m ghga_connector",
            f"upload_wpat={sandbox.upload_wpat_file}",
            f"download_wpat={sandbox.state_dir / 'download.wpat'}",
            f"public_key={sandbox.user_pub}",
            f"private_key={sandbox.user_sec}",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
        env.update(
            GHGA_CONNECTOR_WKVS_API_URL=sandbox.wkvs_api_url,
            GHGA_CONNECTOR_STATE_DIR=str(tmp_path / "state"),
        )

        def run(target: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(snakemake), target, "--snakefile", str(SNAKEFILE), "--cores", "4",
                 "--config", *config],
                cwd=work, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT,
                check=False,
            )  # fmt: skip

        uploaded = run("uploaded")
        assert uploaded.returncode == 0, uploaded.stdout[-3000:] + uploaded.stderr[-5000:]
        reports = sorted((work / "ghga" / "upload").glob("shard-*-of-4.jsonl"))
        assert len(reports) == 4
        records = [json.loads(line) for r in reports for line in r.read_text().splitlines()]
        files = sorted(folder.iterdir())
        assert sorted(r["file"] for r in records) == [p.name for p in files]
        assert {r["outcome"] for r in records} == {"done"}
        uploads = [u for u in sandbox.status()["uploads"] if u["state"] == "inbox"]
        assert sorted(u["alias"] for u in uploads) == [p.name for p in files]  # once each

        archived = sandbox.archive()
        assert archived.returncode == 0, archived.stdout + archived.stderr
        downloaded = run("downloaded")
        assert downloaded.returncode == 0, downloaded.stdout[-3000:] + downloaded.stderr[-5000:]
        back = sorted(p for p in (tmp_path / "back").iterdir() if p.suffix != ".sha256")
        assert len(back) == len(files)
        assert sorted(sha256(p) for p in back) == sorted(sha256(p) for p in files)
    finally:
        sandbox.stop()
