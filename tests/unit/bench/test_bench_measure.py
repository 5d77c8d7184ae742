"""Unit tests of the benchmark's process measurement (benchmarks/measure.py, env.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from benchmarks.env import ApiCallCounter, ServerMeter, count_api_requests
from benchmarks.measure import ProcResult, ServerUse, combine, run_measured, tree_cpu_seconds

MIB = 1 << 20

pytestmark = pytest.mark.linux_only  # /proc, /bin/true


@pytest.fixture
def grown_harness() -> bytearray:
    """The measuring process holds 300 MiB of touched memory (as a long run does)."""
    block = bytearray(300 * MIB)
    for i in range(0, len(block), 4096):
        block[i] = 1
    return block


def test_true_reports_under_10_mib_after_the_harness_grew(grown_harness: bytearray) -> None:
    # the kernel's ru_maxrss of the child counts the harness's 300 MiB before exec
    res = run_measured(["/bin/true"])
    assert res.ok
    assert res.peak_rss_bytes < 10 * MIB


def test_a_sampled_small_process_reports_its_own_size(grown_harness: bytearray) -> None:
    res = run_measured(["sleep", "0.5"])
    assert res.ok
    assert 0 < res.peak_rss_bytes < 10 * MIB


def test_a_peak_between_samples_is_kept() -> None:
    """VmHWM keeps 200 MiB that were freed again before the next sample."""
    code = "import time\nb = b'x' * (200 * 1024 * 1024)\ndel b\ntime.sleep(1.5)\n"
    # samples at start (interpreter starting) and every 0.7 s (while it sleeps)
    res = run_measured([sys.executable, "-c", code], sample_interval=0.7)
    assert res.ok, res.tail()
    assert res.peak_rss_bytes >= 200 * MIB


def test_cpu_time_is_the_child_s_own() -> None:
    code = "import time\nwhile time.process_time() < 0.3: pass\n"
    res = run_measured([sys.executable, "-c", code])
    assert res.ok
    assert res.cpu_s >= 0.3


def test_a_failing_command_is_not_ok_and_keeps_its_output() -> None:
    res = run_measured([sys.executable, "-c", "import sys; sys.exit('broken input')"])
    assert not res.ok
    assert res.returncode == 1
    assert "broken input" in res.tail()


def test_a_command_over_its_time_limit_is_killed() -> None:
    res = run_measured(["sleep", "30"], timeout=0.5)
    assert res.timed_out
    assert not res.ok


def test_a_command_that_cannot_start_is_reported() -> None:
    res = run_measured(["/nonexistent/tool"])
    assert res.returncode == 127
    assert "cannot start" in res.stderr


def _result(
    wall: float, cpu: float, rss: int, rc: int = 0, use: ServerUse | None = None
) -> ProcResult:
    return ProcResult(["x"], rc, wall, cpu, 0.0, rss, server=use)


def test_combine_adds_times_and_takes_the_largest_peak() -> None:
    both = combine(
        [
            ("download", _result(2.0, 1.5, 100, use=ServerUse(0.5, 1.0, 7))),
            ("decrypt", _result(1.0, 1.0, 300, use=ServerUse(0.0, 0.0, 0))),
        ]
    )
    assert both.ok
    assert both.wall_s == 3.0
    assert both.cpu_s == 2.5
    assert both.peak_rss_bytes == 300
    assert both.server == ServerUse(0.5, 1.0, 7)
    assert [s["step"] for s in both.steps] == ["download", "decrypt"]


def test_combine_fails_if_a_step_failed() -> None:
    both = combine([("download", _result(2.0, 1.0, 1)), ("decrypt", _result(1.0, 1.0, 1, rc=2))])
    assert not both.ok
    assert both.returncode == 2


def test_tree_cpu_seconds_reads_a_live_process() -> None:
    t0 = tree_cpu_seconds(os.getpid())
    x = 0
    for i in range(2_000_000):
        x += i
    assert tree_cpu_seconds(os.getpid()) >= t0 > 0


def test_api_calls_are_counted_from_the_access_log(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    log.write_text(
        'INFO:     127.0.0.1:5 - "GET /.well-known/values/dcs_api_url HTTP/1.1" 200 OK\n'
        'INFO:     127.0.0.1:5 - "POST /admin/work-packages HTTP/1.1" 201 Created\n'
        'INFO:     127.0.0.1:5 - "POST /wps/work-packages HTTP/1.1" 201 Created\n'
        'INFO:     127.0.0.1:5 - "PATCH /ucs/boxes/1/uploads/2 HTTP/1.1" 204 No Content\n'
        'INFO:     127.0.0.1:5 - "GET /ga4gh/drs/v1/objects/GHGA1'
    )
    counter = ApiCallCounter(log)
    assert counter.total() == 3  # /admin is not the GHGA API; the last line is incomplete
    with log.open("a") as fh:
        fh.write('/envelopes HTTP/1.1" 200 OK\nINFO: something else\n')
    assert counter.total() == 4
    assert count_api_requests(b'"GET /health HTTP/1.1" 200') == 0


def test_server_meter_differences() -> None:
    before = ServerUse(sandbox_cpu_s=10.0, s3_cpu_s=5.0, api_calls=40)
    after = ServerUse(sandbox_cpu_s=12.5, s3_cpu_s=5.0, api_calls=52)
    assert ServerMeter.between(before, after) == ServerUse(2.5, 0.0, 12)
    assert ServerMeter.between(ServerUse(), after) == ServerUse(None, None, None)
