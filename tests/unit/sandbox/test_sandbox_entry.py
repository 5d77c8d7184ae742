"""``ghga-sandbox`` without the ``sandbox`` extra: one line naming the extra, exit 2.

The missing extra is simulated in a subprocess by a ``sitecustomize`` module that makes
``import jwcrypto`` fail; nothing is uninstalled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BLOCKER = """
import sys


class _BlockJwcrypto:
    def find_spec(self, name, path=None, target=None):
        if name == "jwcrypto" or name.startswith("jwcrypto."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, _BlockJwcrypto())
"""


def _commands() -> list[list[str]]:
    commands = [[sys.executable, "-m", "ghga_sandbox"]]
    script = Path(sys.executable).parent / "ghga-sandbox"
    if script.exists():  # the console script of this environment
        commands.append([str(script)])
    return commands


@pytest.mark.parametrize("command", _commands(), ids=lambda c: Path(c[-1]).name)
def test_without_the_extra_names_it(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    state = tmp_path / "state"
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    env.pop("GHGA_SANDBOX_DEBUG", None)
    done = subprocess.run(
        [*command, "serve", "--port", "0", "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == (
        "ghga-sandbox: the sandbox needs: pip install '.[sandbox]' in the folder of the "
        "ghga-connector repository (module 'jwcrypto' is missing)"
    )
    assert not (state / "upload.wpat").exists()


def test_the_blocker_really_blocks(tmp_path: Path) -> None:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    done = subprocess.run(
        [sys.executable, "-c", "import jwcrypto"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "ModuleNotFoundError" in done.stderr


@pytest.mark.parametrize("option", ["--version", "-V"])
def test_version(option: str) -> None:
    from typer.testing import CliRunner

    from ghga_connector import __version__
    from ghga_sandbox.cli import app

    result = CliRunner().invoke(app, [option])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ghga-sandbox {__version__}"


def test_default_port_falls_back_to_a_free_one(capsys: pytest.CaptureFixture[str]) -> None:
    """Port 8080 taken (held here, or by anything else): a free port, said on stdout."""
    import socket

    from ghga_sandbox.cli import DEFAULT_PORT, default_port_socket

    holder = socket.socket()
    try:
        try:
            holder.bind(("127.0.0.1", DEFAULT_PORT))
            holder.listen(1)
        except OSError:
            pass  # taken already
        with default_port_socket("127.0.0.1") as sock:
            port = sock.getsockname()[1]
    finally:
        holder.close()
    assert port != DEFAULT_PORT
    assert f"using the free port {port} instead" in capsys.readouterr().out
