"""The scale case's pure pieces: time series, targets, retry counts, option routing."""

from __future__ import annotations

from benchmarks.model import MIB
from benchmarks.scale import (
    Sample,
    edge_ratio,
    normalized,
    parse_retries,
    rss_growth_after,
    targets,
    throughput_series,
    wants_scale,
)


def _series(rates: list[float], rss: list[int] | None = None) -> list[Sample]:
    """One sample per second; ``rates[i]`` bytes moved in second ``i``."""
    samples = [Sample(0.0, 100 * MIB, 0.0, 0, 1.0)]
    moved = 0
    for i, rate in enumerate(rates, 1):
        moved += int(rate)
        samples.append(Sample(float(i), (rss or [100 * MIB] * len(rates))[i - 1], i, moved, 1.0))
    return samples


def test_throughput_series_is_bytes_per_second_between_samples() -> None:
    assert throughput_series(_series([2e6, 4e6])) == [(1.0, 2.0), (2.0, 4.0)]


def test_edge_ratio_compares_the_last_tenth_with_the_first() -> None:
    steady = _series([10.0] * 100)
    assert edge_ratio(steady, 1000) == 1.0
    slowing = _series([10.0] * 90 + [5.0] * 20)  # the last 100 bytes take 20 s, not 10
    assert edge_ratio(slowing, 1000) == 0.5
    assert edge_ratio(_series([10.0]), 1000) is None


def test_rss_growth_after_the_first_minute() -> None:
    rss = [100 * MIB] * 60 + [120 * MIB] * 30 + [110 * MIB] * 30
    assert rss_growth_after(_series([1.0] * 120, rss)) == 20 * MIB
    assert rss_growth_after(_series([1.0] * 10)) is None


def test_targets_name_what_is_missed() -> None:
    flat = _series([10.0] * 100, [200 * MIB] * 100)
    met = targets(flat, 1000, 200 * MIB, 9000, True)
    assert all(t["met"] for t in met.values())
    missed = targets(flat, 1000, 400 * MIB, 12000, False)
    assert not missed["peak_rss_mib"]["met"]
    assert not missed["part_count"]["met"]
    assert not missed["no_failure"]["met"]


def test_parse_retries_reads_the_clients_summary_line() -> None:
    text = "x\nRetried requests: 5 (HTTP 503 ×3, connection dropped ×2)\n"
    assert parse_retries(text) == {"HTTP 503": 3, "connection dropped": 2}
    assert parse_retries("no retries") == {}


def test_wants_scale_routes_only_the_scale_case() -> None:
    assert wants_scale(["--cases", "scale", "--scale-gb", "20"])
    assert wants_scale(["--cases=scale"])
    assert not wants_scale(["--cases", "large,xlarge"])
    assert not wants_scale(["--quick"])


def test_normalized_scales_a_series_that_read_the_file_twice() -> None:
    twice = _series([20.0] * 100)  # 2000 bytes read for a 1000-byte file
    scaled = normalized(twice, 1000)
    assert scaled[-1].io_bytes == 1000
    assert scaled[50].io_bytes == 500
    once = _series([10.0] * 100)
    assert normalized(once, 1000) == once
