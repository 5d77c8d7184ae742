"""The README's install line, run as written in a fresh virtual environment.

ghga-connector 5.0.0 is not on PyPI (``pip install ghga-connector`` gives 4.0.1, which
has no ``sandbox`` extra and no ``ghga-sandbox``), so the README installs this
repository: ``python3 -m pip install '.[sandbox]'`` in the folder of the clone. The test
runs that block in the repository's folder with a new venv's ``bin`` first on ``PATH``
(dependencies come from PyPI or pip's cache, not byte-compiled; one to two minutes
on a loaded 2-core machine), then checks that both
commands of this version are there. PyPI unreachable: skipped outside CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.docs_blocks import ROOT, command_blocks
from tests.integration.conftest import PIP_NETWORK_ERRORS, venv_bin

from ghga_connector import __version__

pytestmark = [pytest.mark.integration, pytest.mark.posix_only]  # bash runs the block

INSTALL_TIMEOUT = 240


def _install_block() -> str:
    (block,) = [
        block
        for block in command_blocks(ROOT / "README.md")
        if "pip install" in block.text and "test_install.py" in (block.skip_reason or "")
    ]
    return block.text


def test_the_readme_install_line_installs_this_version(tmp_path: Path) -> None:
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH"}}
    env["PATH"] = f"{venv_bin(venv, 'python').parent}{os.pathsep}{env['PATH']}"
    # the line as written; no byte-compiling of the dependencies (botocore is large)
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_COMPILE="1")
    block = _install_block()
    assert "python3 -m pip install '.[sandbox]'" in block
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", block],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    unreachable = any(marker in output for marker in PIP_NETWORK_ERRORS)
    if done.returncode != 0 and unreachable and not os.environ.get("CI"):
        pytest.skip(f"PyPI unreachable:\n{output[-1500:]}")
    assert done.returncode == 0, output[-3000:]
    for command in ("ghga-connector", "ghga-sandbox"):
        version = subprocess.run(
            [str(venv_bin(venv, command)), "--version"],
            env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert version.returncode == 0, version.stdout + version.stderr
        assert version.stdout.strip() == f"{command} {__version__}"
