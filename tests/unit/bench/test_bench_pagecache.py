"""Unit tests of the page-cache demonstration (benchmarks/pagecache.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from benchmarks.model import MIB
from benchmarks.pagecache import main, measure, write_files


def test_writes_the_bytes_and_deletes_the_files(tmp_path: Path) -> None:
    cpu = write_files(tmp_path, 3 * MIB + 7, file_size=MIB, chunk=256 * 1024)
    assert cpu >= 0
    assert list(tmp_path.iterdir()) == []


def test_three_conditions_per_round_with_idling_before_the_cold_ones(tmp_path: Path) -> None:
    slept: list[float] = []
    rows = measure(tmp_path, MIB, idle=6.0, rounds=2, sleep=slept.append)
    assert [name for name, _ in rows] == [
        "after idle",
        "right after deleting",
        "after idle + warm-up",
    ] * 2
    assert slept == [6.0] * 4
    assert list(tmp_path.iterdir()) == []


def test_prints_a_row_per_condition(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--mib", "1", "--idle", "0", "--rounds", "1", "--dir", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    assert lines[1].startswith("after idle")
