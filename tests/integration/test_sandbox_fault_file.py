"""Fault switches from a file: at start (`serve --faults`) and on a running sandbox."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import start_sandbox

pytestmark = pytest.mark.integration


def test_fault_file_at_start_and_at_run_time(tmp_path: Path) -> None:
    at_start = tmp_path / "faults.yaml"
    at_start.write_text(
        "status_rules:\n  - {service: wps, status: 503, count: 2}\ndcs_force_202: 3\n",
        encoding="utf-8",
    )
    sandbox = start_sandbox(tmp_path / "state", "--faults", str(at_start))
    try:
        armed = sandbox.admin("GET", "/faults").json()["armed"]
        assert armed["dcs_force_202"] == 3
        assert armed["status_rules"][0]["service"] == "wps"

        later = tmp_path / "more.json"
        later.write_text('{"etag_mismatch": 1}', encoding="utf-8")
        result = subprocess.run(
            [sys.executable, "-m", "ghga_sandbox", "faults", str(later), "--state-dir", str(sandbox.state_dir)],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert sandbox.admin("GET", "/faults").json()["armed"]["etag_mismatch"] == 1
    finally:
        sandbox.stop()


def test_invalid_fault_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("dcs_force_202: -1\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "ghga_sandbox", "serve", "--port", "0", "--state-dir", str(tmp_path / "s"), "--faults", str(bad)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert "invalid fault file" in (result.stdout + result.stderr)
