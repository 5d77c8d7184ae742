"""Every command block of README.md and docs/*.md, run exactly as written.

The blocks of one document run in order, each in its own ``bash -e -o pipefail``, in a
scratch folder laid out as the documents assume a user's folder to be:

* ``key.pub``/``key.sec``: the sandbox's key pair (no passphrase);
* ``upload.wpat``: the token of a fresh, empty upload box;
* ``download.wpat``: the token of a download work package over files archived before;
* ``sample1.bam``, ``sample2.bam``, ``run1/a.bam``, ``run1/b.bam`` and ``run42/`` (a
  folder of files to upload), and ``examples/`` (the repository's);
* ``GHGA_CONNECTOR_CONFIG_YAML`` names the sandbox's configuration file (its WKVS URL),
  ``HOME`` is a folder of the scratch folder.

A block that cannot run here has ``<!-- docs-test: skip REASON -->`` before its fence
(see ``tests/docs_blocks.py``). The Slurm job script is run as an array of task IDs
1-8 and 0-7 (with a stand-in ``ghga-connector`` that records its ``--shard``), and the
Nextflow script is checked for relative file parameters (Nextflow cannot be installed
from a package registry).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.docs_blocks import DOCUMENTS, ROOT, Block, command_blocks
from tests.integration.conftest import cached_tool_venv

from ghga_sandbox.bootstrap import read_user_public_key

pytestmark = [pytest.mark.integration, pytest.mark.posix_only]  # bash

BIN = Path(sys.executable).parent
EXAMPLES = ROOT / "examples"
BAMS = [EXAMPLES / "N701_small.bam", EXAMPLES / "human_mouse_smaller.bam"]
SNAKEMAKE_VENV = ROOT / ".cache" / "venv-snakemake"


def _new_box_token(sandbox: Any) -> str:
    key = read_user_public_key(sandbox.user_pub)
    box = sandbox.admin("POST", "/upload-boxes", json={"user_public_key": key})
    assert box.status_code == 201, box.text
    return str(box.json()["work_package"]["access_token"])


def _env(home: Path, extra_path: list[Path]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GHGA_CONNECTOR_")}
    env.pop("C4GH_PASSPHRASE", None)
    path = os.pathsep.join(str(p) for p in [BIN, *extra_path])
    env.update(HOME=str(home), PATH=f"{path}{os.pathsep}{env.get('PATH', '')}")
    return env


@pytest.fixture(scope="module")
def archived(sandbox_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four files uploaded into a box of their own and archived: ``download.wpat``."""
    sandbox = sandbox_module
    work = tmp_path_factory.mktemp("archived")
    (work / "upload.wpat").write_text(_new_box_token(sandbox) + "\n")
    files = []
    for n, source in enumerate([*BAMS, *BAMS], start=1):
        target = work / f"file{n}.bam"
        target.write_bytes(source.read_bytes()[: 200_000 * n])
        files.append(str(target))
    env = {**_env(work, []), "GHGA_CONNECTOR_WKVS_API_URL": sandbox.wkvs_api_url}
    done = subprocess.run(
        [sys.executable, "-m", "ghga_connector", "upload", "--wpat-file", "upload.wpat",
         "--my-public-key-path", str(sandbox.user_pub),
         "--my-private-key-path", str(sandbox.user_sec), *files],
        cwd=work, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    archive = sandbox.archive()
    assert archive.returncode == 0, archive.stdout + archive.stderr
    return Path(sandbox.download_wpat_file)


def _user_folder(sandbox: Any, download_wpat: Path, root: Path) -> Path:
    folder = root / "user"
    folder.mkdir()
    for name in ("key.pub", "key.sec"):
        shutil.copy2(sandbox.state_dir / name, folder / name)
    (folder / "upload.wpat").write_text(_new_box_token(sandbox) + "\n")
    shutil.copy2(download_wpat, folder / "download.wpat")
    for n, source in enumerate(BAMS, start=1):
        shutil.copy2(source, folder / f"sample{n}.bam")
    (folder / "run1").mkdir()
    shutil.copy2(BAMS[0], folder / "run1" / "a.bam")
    shutil.copy2(BAMS[1], folder / "run1" / "b.bam")
    (folder / "run42").mkdir()
    for n in range(3):
        (folder / "run42" / f"part{n}.bin").write_bytes(os.urandom(50_000 * (n + 1)))
    (folder / "examples").symlink_to(EXAMPLES)
    (root / "home").mkdir()
    return folder


def _runnable(document: Path) -> list[Block]:
    return [block for block in command_blocks(document) if block.skip_reason is None]


@pytest.mark.parametrize(
    "document",
    [d for d in DOCUMENTS if _runnable(d)],
    ids=lambda d: str(d.relative_to(ROOT)),
)
def test_command_blocks_run_as_written(
    document: Path, sandbox_module: Any, archived: Path, tmp_path: Path
) -> None:
    blocks = _runnable(document)
    extra: list[Path] = []
    if any("snakemake" in block.text for block in blocks):
        extra.append(cached_tool_venv(SNAKEMAKE_VENV, "snakemake>=8,<10", "snakemake").parent)
    folder = _user_folder(sandbox_module, archived, tmp_path)
    env = _env(tmp_path / "home", extra)
    env.update(
        GHGA_CONNECTOR_CONFIG_YAML=str(sandbox_module.state_dir / ".ghga_connector.yaml"),
        GHGA_CONNECTOR_STATE_DIR=str(tmp_path / "state"),
    )
    for block in blocks:
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", block.text],
            cwd=folder, env=env, capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{block.name}:\n{block.text}\n{done.stdout}{done.stderr}"


# --- Slurm and Nextflow --------------------------------------------------------------

SLURM_SCRIPT = EXAMPLES / "slurm" / "upload-array.sh"
RECORDER = """#!/bin/bash
# stands in for ghga-connector: records the --shard it was given
while [ $# -gt 0 ]; do
    if [ "$1" = --shard ]; then echo "$2" >> "$SHARDS_SEEN"; fi
    shift
done
"""


def _slurm_task(tmp_path: Path, task_id: int, env_extra: dict[str, str]) -> None:
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "ghga-connector").write_text(RECORDER)
    (fake / "ghga-connector").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{fake}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "SHARDS_SEEN": str(tmp_path / "shards.txt"),
        "SLURM_ARRAY_TASK_ID": str(task_id),
        **env_extra,
    }
    done = subprocess.run(
        ["bash", str(SLURM_SCRIPT), "files.tsv"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / f"ghga-upload-{task_id}.jsonl").exists()


@pytest.mark.parametrize("first", [1, 0], ids=["array 1-8", "array 0-7"])
def test_slurm_script_covers_every_shard_once(tmp_path: Path, first: int) -> None:
    ids = range(first, first + 8)
    for task_id in ids:
        _slurm_task(tmp_path, task_id, {"SLURM_ARRAY_TASK_COUNT": "8"})
    seen = (tmp_path / "shards.txt").read_text().split()
    assert sorted(seen) == sorted(f"{k}/8" for k in range(1, 9))
    # a re-submitted task (sbatch --array=3 --export=ALL,SHARDS=8) redoes its own shard
    first_run = dict(zip(ids, seen, strict=True))
    (tmp_path / "shards.txt").unlink()
    _slurm_task(tmp_path, 3, {"SLURM_ARRAY_TASK_COUNT": "1", "SHARDS": "8"})
    assert (tmp_path / "shards.txt").read_text().split() == [first_run[3]]


def test_slurm_script_parses() -> None:
    done = subprocess.run(["bash", "-n", str(SLURM_SCRIPT)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_nextflow_file_parameters_are_absolute_in_tasks() -> None:
    """Tasks run in their own work folders: every file parameter goes through file()."""
    text = (EXAMPLES / "nextflow" / "main.nf").read_text()
    script = text[text.index("script:") :]
    file_params = {"manifest", "upload_wpat", "public_key", "private_key"}
    for name in file_params:
        assert f"params.{name}" in text
        uses = re.findall(rf"(file\()?params\.{name}\b", script)
        assert uses and all(uses), f"params.{name} is used without file() in the script"
