"""Unit tests of the benchmark's typed rows, summaries and ratios (benchmarks/model.py)."""

from __future__ import annotations

import pytest
from benchmarks.measure import ProcResult, ServerUse
from benchmarks.model import (
    BOTO3,
    GIB,
    MIB,
    OURS,
    V401,
    Case,
    ClientRun,
    FloorRow,
    Row,
    Spread,
    jain_fairness,
    rotated,
    summarize,
)
from benchmarks.runner import make_cases, row_from, split


def _row(
    tool: str,
    mb_per_s: float,
    *,
    case: str = "1x1GiB",
    direction: str = "upload",
    rep: int = 1,
    ok: bool = True,
    cpu_s: float = 5.0,
    nbytes: int = 10**9,
    files: int = 1,
) -> Row:
    return Row(
        tool=tool,
        case=case,
        direction=direction,
        files=files,
        bytes=nbytes,
        ok=ok,  # type: ignore[arg-type]
        rep=rep,
        wall_s=nbytes / 1e6 / mb_per_s,
        cpu_s=cpu_s,
        peak_rss_bytes=100 * MIB,
    )


def test_spread_is_median_min_max_of_the_known_values() -> None:
    assert Spread.of([3.0, None, 1.0, 2.0]) == Spread(2.0, 1.0, 3.0, 3)
    assert Spread.of([None]) is None
    assert Spread.of([1.0, 4.0]) == Spread(2.5, 1.0, 4.0, 2)


def test_rotation_moves_the_first_tool_to_the_end_per_repetition() -> None:
    tools = ["a", "b", "c"]
    assert rotated(tools, 1) == ["a", "b", "c"]
    assert rotated(tools, 2) == ["b", "c", "a"]
    assert rotated(tools, 3) == ["c", "a", "b"]
    assert rotated(tools, 4) == ["a", "b", "c"]
    assert rotated([], 2) == []


def test_jain_fairness() -> None:
    assert jain_fairness([10.0, 10.0, 10.0, 10.0]) == pytest.approx(1.0)
    assert jain_fairness([40.0, 0.0, 0.0, 0.0]) == pytest.approx(0.25)


def test_ratios_divide_medians() -> None:
    rows = [
        *(_row(OURS, v, rep=i) for i, v in enumerate([100.0, 200.0, 110.0], 1)),
        *(_row(BOTO3, v, rep=i) for i, v in enumerate([200.0, 220.0, 180.0], 1)),
        *(_row(V401, v, rep=i) for i, v in enumerate([50.0, 55.0, 60.0], 1)),
    ]
    summaries = {s.tool: s for s in summarize(rows)}
    ours = summaries[OURS]
    assert ours.ok
    spread = ours.spread("mb_per_s")
    assert spread is not None
    assert (spread.median, spread.low, spread.high, spread.n) == pytest.approx((110, 100, 200, 3))
    assert ours.ratio_vs_boto3 == pytest.approx(110 / 200)
    assert ours.ratio_vs_401 == pytest.approx(110 / 55)


def test_a_failed_repetition_fails_the_summary_and_gives_no_ratio() -> None:
    rows = [
        _row(OURS, 100.0, rep=1),
        _row(OURS, 900.0, rep=2, ok=False),
        _row(BOTO3, 200.0),
    ]
    ours = next(s for s in summarize(rows) if s.tool == OURS)
    assert not ours.ok
    spread = ours.spread("mb_per_s")
    assert spread is not None
    assert (spread.median, spread.n) == pytest.approx((100, 1))
    assert ours.ratio_vs_boto3 is None


def test_floor_ratio_and_transport_cost() -> None:
    floor = FloorRow("upload", GIB, 3.0, "cryptography", {})
    rows = [_row(OURS, 100.0, cpu_s=5.0, nbytes=GIB)]
    (ours,) = summarize(rows, [floor])
    assert ours.cpu_vs_floor == pytest.approx(5.0 / 3.0)
    assert ours.transport_cpu_s_per_gib == pytest.approx(2.0)


def test_several_clients_compared_with_one() -> None:
    one = _row(OURS, 100.0, case="1x128MiB/1client", nbytes=128 * MIB)
    four = _row(OURS, 300.0, case="4x128MiB/4clients", nbytes=4 * 128 * MIB, files=4)
    four.clients = [ClientRun(1, 128 * MIB, w, 1.0, MIB, True) for w in (1.0, 1.0, 2.0, 2.0)]
    summaries = {s.case: s for s in summarize([one, four])}
    multi = summaries["4x128MiB/4clients"]
    assert multi.clients == 4
    assert multi.vs_one_client == pytest.approx(3.0)
    assert four.fairness == pytest.approx(jain_fairness([2.0, 2.0, 1.0, 1.0]))


def test_row_derived_figures() -> None:
    row = Row(OURS, "c", "download", 2, 2 * GIB, True, wall_s=4.0, cpu_s=3.0)
    assert row.mb_per_s == pytest.approx(2 * GIB / 4.0 / 1e6)
    assert row.cpu_s_per_gib == pytest.approx(1.5)
    row.fail("first")
    row.fail("second")
    assert not row.ok
    assert row.error == "first; second"
    assert row.to_json()["mb_per_s"] == round(2 * GIB / 4.0 / 1e6, 2)


def test_row_from_one_command_and_from_several_clients() -> None:
    case = Case("multi", 2, MIB, "random", clients=2, multi=True)
    a = ProcResult(["a"], 0, 2.0, 1.0, 0.5, 50, started_at=10.0)
    b = ProcResult(["b"], 0, 3.0, 1.0, 0.5, 70, started_at=10.5)
    row = row_from(
        OURS,
        case,
        "upload",
        None,
        [a, b],
        1,
        server=ServerUse(1.0, 2.0, 8),
        sizes=[(1, MIB), (1, MIB)],
    )
    assert row.ok
    assert row.wall_s == pytest.approx(3.5)  # first start to last end
    assert row.cpu_s == pytest.approx(3.0)
    assert row.peak_rss_bytes == 70  # the largest client, not the sum
    assert row.api_calls == 8
    assert [c.wall_s for c in row.clients] == [2.0, 3.0]
    single = row_from(
        OURS,
        Case("large", 1, MIB, "bam"),
        "upload",
        None,
        [ProcResult(["a"], 3, 2.0, 1.0, 0.5, 50, stderr="bad key")],
        1,
    )
    assert not single.ok
    assert "exit 3" in (single.error or "") and "bad key" in (single.error or "")


def test_case_names_and_the_shared_files_of_the_multi_client_cases() -> None:
    cases = make_cases(quick=True, small_count=None, latency_ms=50)
    assert cases["large"][0].name == "1x256MiB-bam"
    assert cases["small-latency"][0].name == "10x8MiB+50ms"
    assert cases["small-latency"][0].data_name == cases["small"][0].data_name
    one, four = cases["multi"]
    assert (one.name, four.name) == ("1x64MiB/1client", "4x64MiB/4clients")
    assert one.data_name == four.data_name  # the one client uses one of the four files
    assert one.runs(OURS) and one.runs(BOTO3) and not one.runs(V401)
    full = make_cases(quick=False, small_count=None, latency_ms=50)
    assert full["xxlarge"][0].total_bytes == 16 * GIB


def test_split_deals_files_to_clients() -> None:
    assert split([1, 2, 3, 4, 5], 4) == [[1, 5], [2], [3], [4]]
    assert split([1], 4) == [[1]]
    assert split([1, 2], 1) == [[1, 2]]


def test_the_16_gib_case_is_skipped_with_a_reason_when_the_disk_is_too_small() -> None:
    from pathlib import Path

    from benchmarks.runner import select_cases

    cases = make_cases(quick=False, small_count=None, latency_ms=50)
    wanted = [*cases["xlarge"], *cases["xxlarge"]]
    kept, skipped = select_cases(wanted, 77 * GIB, Path("/w"))
    assert kept == cases["xlarge"]
    assert skipped == ["1x16GiB skipped: needs about 120 GiB of free disk under /w, 77 GiB free"]
    kept, skipped = select_cases(wanted, 200 * GIB, Path("/w"))
    assert kept == wanted and skipped == []
