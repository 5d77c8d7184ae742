"""Unit tests of the large transfers on paper (benchmarks/paper.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from benchmarks.paper import Measured, estimate, from_results, render

MIB = 1 << 20
GIB = 1 << 30
M = Measured(5.0, 4.0, 200 * MIB, 260 * MIB, "test")


def test_200_gb_upload_grows_its_parts_to_stay_under_10000() -> None:
    up, down = estimate(200 * 10**9, M)
    assert up.count <= 10_000 < -(-up.stored // (256 * 65_564))
    assert up.unit % 65_564 == 0 and up.unit > 16 * MIB
    assert up.journal_bytes == 136 * up.count
    assert up.streamed  # parts larger than their buffers are streamed through them
    assert up.peak_rss == 200 * MIB  # the buffers do not grow with the parts
    assert up.buffers_bytes == 8 * 256 * 65_564
    assert up.cpu_s == pytest.approx(200e9 / GIB * (5.0 + M.reread_cpu_s_per_gib))
    assert up.ceiling_mb_per_s_per_core == pytest.approx(GIB / (5.0 + M.reread_cpu_s_per_gib) / 1e6)
    assert down.unit == 256 * 65_564
    assert down.count == -(-down.stored // down.unit)
    assert down.peak_rss == 260 * MIB  # ranges do not grow


def test_16_gib_keeps_the_configured_part_size() -> None:
    up, _ = estimate(16 * GIB, M)
    assert up.unit == 256 * 65_564
    assert up.peak_rss == 200 * MIB
    assert not up.streamed
    assert up.cpu_s == pytest.approx(16 * 5.0)


def test_2_tb_upload_memory_is_that_of_1_gib() -> None:
    small, _ = estimate(GIB, M)
    big, _ = estimate(2 * 10**12, M)
    assert big.unit > 190 * MIB
    assert (big.buffers_bytes, big.peak_rss) == (small.buffers_bytes, small.peak_rss)


def test_render_shows_the_arithmetic() -> None:
    text = render([2 * 10**12], M)
    assert "9,995" in text and "CPU-bound" in text and "4.45 h" in text


def test_measured_costs_come_from_the_largest_passing_one_file_case(tmp_path: Path) -> None:
    def result(case: str, direction: str, nbytes: int, cpu: float, ok: bool = True) -> dict:
        return {
            "tool": "ghga-connector",
            "case": case,
            "direction": direction,
            "files": 1,
            "clients": 1,
            "bytes": nbytes,
            "ok": ok,
            "api_latency_ms": 0,
            "cpu_s_per_gib": {"median": cpu},
            "peak_rss_bytes": {"median": 100 * MIB},
        }

    path = tmp_path / "latest.json"
    path.write_text(
        json.dumps(
            {
                "results": [
                    result("1x1GiB", "upload", GIB, 6.0),
                    result("1x4GiB", "upload", 4 * GIB, 5.0),
                    result("1x16GiB", "upload", 16 * GIB, 1.0, ok=False),
                    result("1x1GiB", "download", GIB, 4.0),
                ]
            }
        )
    )
    m = from_results(path)
    assert (m.upload_cpu_s_per_gib, m.download_cpu_s_per_gib) == (5.0, 4.0)
    assert "1x4GiB" in m.source
