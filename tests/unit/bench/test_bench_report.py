"""Unit tests of the benchmark's result files (benchmarks/report.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.model import (
    BOTO3,
    GIB,
    MIB,
    OURS,
    V401,
    ClientRun,
    FloorRow,
    Row,
    Spread,
    summarize,
)
from benchmarks.report import bar_series, fmt_spread, markdown, ordered, write_json

MACHINE = {"date": "2026-12-02 03:00 UTC", "command": "python -m benchmarks --quick"}


def _row(
    tool: str,
    wall: float,
    *,
    case: str = "1x1GiB",
    direction: str = "download",
    rep: int = 1,
    ok: bool = True,
    files: int = 1,
    nbytes: int = GIB,
    **kw: object,
) -> Row:
    return Row(
        tool=tool,
        case=case,
        direction=direction,
        files=files,
        bytes=nbytes,  # type: ignore[arg-type]
        ok=ok,
        rep=rep,
        wall_s=wall,
        cpu_s=wall,
        peak_rss_bytes=200 * MIB,
        **kw,
    )  # type: ignore[arg-type]


def _three(tool: str, walls: list[float], **kw: object) -> list[Row]:
    return [_row(tool, w, rep=i, **kw) for i, w in enumerate(walls, 1)]


def test_fmt_spread() -> None:
    assert fmt_spread(None, ".1f") == "–"
    assert fmt_spread(Spread(2.0, 2.0, 2.0, 1), ".1f") == "2.0"
    assert fmt_spread(Spread(2.0, 1.0, 3.0, 3), ".1f") == "2.0 (1.0–3.0)"
    assert fmt_spread(Spread(2 * MIB, MIB, 3 * MIB, 3), ".0f", MIB) == "2 (1–3)"


def test_markdown_shows_median_with_range_and_ratio_of_medians() -> None:
    rows = _three(OURS, [10.0, 8.0, 20.0]) + _three(BOTO3, [4.0, 5.0, 6.0])
    text = markdown(rows, [FloorRow("download", GIB, 1.0, "cryptography", {})], MACHINE)
    ours = next(line for line in text.splitlines() if line.startswith("| ghga-connector |"))
    median = GIB / 10.0 / 1e6
    assert f"{median:.1f} ({GIB / 20.0 / 1e6:.1f}–{GIB / 8.0 / 1e6:.1f})" in ours
    assert "| 0.50 |" in ours  # vs boto3: 5 s / 10 s
    assert "3 repetition(s)" in text
    assert "## Crypto floor" in text


def test_markdown_lists_each_failed_repetition() -> None:
    rows = [*_three(OURS, [10.0, 8.0, 9.0]), _row(V401, 30.0, ok=False, error="SHA-256 mismatch")]
    text = markdown(rows, [], MACHINE)
    assert "**no** (1 of 1)" in text
    assert "- ghga-connector-4.0.1 1x1GiB download #1: SHA-256 mismatch" in text


def test_markdown_per_file_and_multi_client_tables_and_skips() -> None:
    small = _row(
        OURS,
        2.0,
        case="10x8MiB",
        files=10,
        nbytes=80 * MIB,
        api_calls=70,
        sandbox_cpu_s=0.5,
        s3_cpu_s=0.25,
    )
    one = _row(OURS, 2.0, case="1x128MiB/1client", nbytes=128 * MIB)
    four = _row(OURS, 4.0, case="4x128MiB/4clients", files=4, nbytes=512 * MIB)
    four.clients = [ClientRun(1, 128 * MIB, w, 1.0, MIB, True) for w in (2.0, 3.0, 4.0, 4.0)]
    text = markdown([small, one, four], [], MACHINE, ["1x16GiB skipped: needs 120 GiB"])
    section = text.split("## Per file", 1)[1].split("## Several clients", 1)[0]
    per_file = next(
        line for line in section.splitlines() if line.startswith("| ghga-connector | 10x8MiB")
    )
    assert per_file.split("|")[4:9] == [" 200 ", " 7.0 ", " 50 ", " 25 ", " 200 "]
    clients = text.split("## Several clients", 1)[1]
    multi = next(line for line in clients.splitlines() if "4x128MiB/4clients" in line)
    assert "| 2.00 |" in multi  # 4 x the bytes in 2 x the time
    assert f"{128 * MIB / 4.0 / 1e6:.1f}–{128 * MIB / 2.0 / 1e6:.1f}" in multi
    assert "- 1x16GiB skipped: needs 120 GiB" in text


def test_json_has_one_result_per_tool_case_direction_with_every_repetition(tmp_path: Path) -> None:
    rows = _three(OURS, [10.0, 8.0, 20.0]) + _three(OURS, [5.0, 5.0, 5.0], direction="upload")
    path = tmp_path / "latest.json"
    write_json(
        path,
        rows,
        [FloorRow("upload", GIB, 3.0, "cryptography", {"cryptography": 3.0})],
        MACHINE,
        [],
    )
    data = json.loads(path.read_text())
    assert [r["direction"] for r in data["results"]] == ["upload", "download"]
    down = data["results"][1]
    assert down["mb_per_s"]["n"] == 3
    assert down["mb_per_s"]["median"] == pytest.approx(GIB / 10.0 / 1e6, abs=0.01)
    assert [r["rep"] for r in down["reps"]] == [1, 2, 3]
    assert data["crypto_floor"][0]["cpu_s_per_gib"] == 3.0
    assert data["machine"] == MACHINE


def test_order_is_case_then_upload_first_then_tool() -> None:
    rows = [
        _row(BOTO3, 1.0, case="a"),
        _row(OURS, 1.0, case="a"),
        _row(OURS, 1.0, case="a", direction="upload"),
        _row(OURS, 1.0, case="b", direction="upload"),
    ]
    got = [(s.case, s.direction, s.tool) for s in ordered(summarize(rows))]
    assert got == [
        ("a", "upload", OURS),
        ("a", "download", OURS),
        ("a", "download", BOTO3),
        ("b", "upload", OURS),
    ]


def test_plot_series_have_min_max_whiskers_and_zero_for_failures() -> None:
    rows = [*_three(OURS, [10.0, 8.0, 20.0]), _row(BOTO3, 5.0, ok=False)]
    groups, series = bar_series(ordered(summarize(rows)), "wall_s")
    assert groups == [("1x1GiB", "download")]
    ((j, median, below, above, ok),) = series[OURS]
    assert (j, median, below, above, ok) == (0, 10.0, 2.0, 10.0, True)
    assert series[BOTO3] == [(0, 0.0, 0.0, 0.0, False)]
