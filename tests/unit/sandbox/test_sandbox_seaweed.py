"""Starting SeaweedFS: a port taken between choosing and binding is tried again."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from ghga_sandbox.seaweed import SeaweedFS


def _fake_weed(tmp_path: Path, message: str) -> tuple[Path, Path]:
    """A ``weed`` stand-in that logs ``message``, counts its runs and exits 255."""
    counter = tmp_path / "runs"
    script = tmp_path / "weed"
    script.write_text(f"#!/bin/sh\necho run >> '{counter}'\necho '{message}'\nexit 255\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, counter


def test_a_port_taken_meanwhile_is_tried_again_with_new_ports(tmp_path: Path) -> None:
    weed, counter = _fake_weed(tmp_path, "listen tcp 127.0.0.1:4: bind: address already in use")
    server = SeaweedFS(tmp_path / "state", weed=weed, start_timeout=30)
    with pytest.raises(RuntimeError, match="address already in use"):
        server.start()
    assert SeaweedFS.start_attempts > 1
    assert counter.read_text().count("run") == SeaweedFS.start_attempts


def test_another_start_failure_is_not_tried_again(tmp_path: Path) -> None:
    weed, counter = _fake_weed(tmp_path, "some other failure")
    server = SeaweedFS(tmp_path / "state", weed=weed, start_timeout=30)
    with pytest.raises(RuntimeError, match="exited with 255 while starting:\nsome other failure"):
        server.start()
    assert counter.read_text().count("run") == 1
