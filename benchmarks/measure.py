"""Run a command as a subprocess and measure wall time, CPU time and peak RSS of its tree.

CPU time comes from ``os.wait4`` (user + sys of the child and of every descendant it
waited for). Peak RSS is the client's own: a thread reads ``/proc/PID/status`` of the
process and all its live descendants every ~50 ms and keeps the larger of (a) the
largest sum of ``VmRSS`` over the tree and (b) the largest ``VmHWM`` (the kernel's
high-water mark of one process since its ``exec``, so peaks between samples count).
The kernel's ``ru_maxrss`` from ``wait4`` is *not* used: for a child started by
``fork``/``vfork`` it includes the harness's own memory before ``exec`` (a harness of
300 MiB made ``/bin/true`` report 313 MiB). Growth in the last < 50 ms before exit can
be missed; a process that exits before the first sample reports 0.

Linux only (``/proc``); elsewhere memory reads as 0.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ProcResult",
    "RssSampler",
    "combine",
    "run_measured",
    "tree_cpu_seconds",
    "tree_memory",
    "tree_rss_bytes",
]

SAMPLE_INTERVAL_S = 0.05


@dataclass
class ProcResult:
    """What one measured subprocess did."""

    cmd: list[str]
    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int
    stdout: str = ""
    stderr: str = ""
    timed_out: bool = False
    steps: list[dict[str, object]] = field(default_factory=list)
    started_at: float = 0.0
    """``time.perf_counter()`` when the command was started (to place concurrent runs)."""
    server: ServerUse | None = None
    """What the servers did while the command ran (set by the caller, if measured)."""
    link_cpu_s: float | None = None
    """CPU seconds of an emulated link's relays meanwhile (:mod:`benchmarks.wan`)."""

    @property
    def cpu_s(self) -> float:
        """User plus system CPU seconds of the whole process tree."""
        return self.user_s + self.sys_s

    @property
    def ok(self) -> bool:
        """Exited with status 0 within the time limit."""
        return self.returncode == 0 and not self.timed_out

    def tail(self, chars: int = 1500) -> str:
        """The end of stderr (or stdout if stderr is empty), for error reports."""
        text = self.stderr.strip() or self.stdout.strip()
        return text[-chars:]


@dataclass(frozen=True)
class ServerUse:
    """Work of the servers during one client command.

    ``sandbox_cpu_s`` and ``s3_cpu_s`` are CPU seconds (user + sys) of the sandbox and
    of the S3 server (``None`` if not measured); ``api_calls`` is the number of GHGA API
    requests (WKVS, WPS, UCS, DCS; not ``/admin``) the sandbox answered.
    """

    sandbox_cpu_s: float | None = None
    s3_cpu_s: float | None = None
    api_calls: int | None = None

    def __add__(self, other: ServerUse) -> ServerUse:
        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else a + b

        calls = (
            None
            if self.api_calls is None or other.api_calls is None
            else self.api_calls + other.api_calls
        )
        return ServerUse(
            add(self.sandbox_cpu_s, other.sandbox_cpu_s), add(self.s3_cpu_s, other.s3_cpu_s), calls
        )


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (all its threads), empty if it is gone."""
    kids: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            text = (task / "children").read_text()
        except OSError:
            continue
        kids.extend(int(x) for x in text.split())
    return kids


def _vm_rss_hwm(pid: int) -> tuple[int, int]:
    """``(VmRSS, VmHWM)`` of one process in bytes (zeros if gone or a zombie)."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:  # noqa: PTH123
            for line in fh:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, hwm


def _tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    found: list[int] = []
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        found.append(p)
        stack.extend(_children(p))
    return found


def tree_memory(pid: int) -> tuple[int, int]:
    """``(sum of VmRSS, largest VmHWM)`` over ``pid`` and its descendants, in bytes."""
    total = hwm = 0
    for p in _tree(pid):
        rss, high = _vm_rss_hwm(p)
        total += rss
        hwm = max(hwm, high)
    return total, hwm


def tree_rss_bytes(pid: int) -> int:
    """Sum of VmRSS over ``pid`` and all its descendants."""
    return tree_memory(pid)[0]


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its live descendants so far (0 if gone).

    Read from ``/proc/PID/stat`` (utime, stime and the children's cutime, cstime). Used
    for the long-running servers: the difference of two readings is what they spent
    in between.
    """
    total = 0
    for p in _tree(pid):
        try:
            text = Path(f"/proc/{p}/stat").read_text()
        except OSError:
            continue
        # the command name (field 2) may contain spaces: split after its closing ")"
        fields = text.rsplit(")", 1)[-1].split()
        try:
            total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        except (ValueError, IndexError):
            continue
    return total / _CLOCK_TICKS


class RssSampler(threading.Thread):
    """Samples the memory of a process tree until stopped; keeps the peak.

    The peak is the larger of the largest sum of ``VmRSS`` over the tree and the largest
    ``VmHWM`` of one process of it.
    """

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop` is called."""
        while not self._stop_event.is_set():
            total, hwm = tree_memory(self.pid)
            self.peak = max(self.peak, total, hwm)
            self._stop_event.wait(self.interval)

    def stop(self) -> int:
        """Stop sampling and return the peak in bytes."""
        self._stop_event.set()
        self.join()
        return self.peak


def run_measured(
    cmd: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin_data: str | None = None,
    timeout: float = 1800.0,
    sample_interval: float = SAMPLE_INTERVAL_S,
) -> ProcResult:
    """Run ``cmd`` to completion and measure it; never raises for a failing command.

    The child gets its own session so that a timeout can kill the whole tree. Output goes
    to temporary files (no pipe can fill up) and is returned as text.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.TemporaryFile() as inp,
    ):
        if stdin_data is not None:
            inp.write(stdin_data.encode())
            inp.seek(0)
        start = time.perf_counter()
        try:
            proc = subprocess.Popen(
                list(cmd),
                cwd=cwd,
                env=dict(env) if env is not None else None,
                stdin=inp if stdin_data is not None else subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        except OSError as exc:
            return ProcResult(list(cmd), 127, 0.0, 0.0, 0.0, 0, "", f"cannot start: {exc}")
        sampler = RssSampler(proc.pid, sample_interval)
        sampler.start()
        timed_out = threading.Event()

        def _kill() -> None:
            timed_out.set()
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, _kill)
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.perf_counter() - start
        # not usage.ru_maxrss: it includes the harness's memory before exec (see above)
        peak = sampler.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        # Descendants left behind (none expected) must not outlive the measurement.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        out.seek(0)
        err.seek(0)
        return ProcResult(
            cmd=list(cmd),
            returncode=proc.returncode,
            wall_s=wall,
            user_s=usage.ru_utime,
            sys_s=usage.ru_stime,
            peak_rss_bytes=peak,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            timed_out=timed_out.is_set(),
            started_at=start,
        )


def combine(name_results: Sequence[tuple[str, ProcResult]]) -> ProcResult:
    """Sequential steps as one measurement: times add up, peak RSS is the maximum."""
    first = name_results[0][1]
    failed = next((r for _, r in name_results if not r.ok), None)
    last = failed or name_results[-1][1]
    return ProcResult(
        cmd=[c for _, r in name_results for c in [*r.cmd, ";"]][:-1],
        returncode=last.returncode if failed else 0,
        wall_s=sum(r.wall_s for _, r in name_results),
        user_s=sum(r.user_s for _, r in name_results),
        sys_s=sum(r.sys_s for _, r in name_results),
        peak_rss_bytes=max(r.peak_rss_bytes for _, r in name_results),
        stdout=last.stdout,
        stderr=last.stderr,
        timed_out=any(r.timed_out for _, r in name_results) or first.timed_out,
        started_at=first.started_at,
        server=_sum_servers([r.server for _, r in name_results]),
        link_cpu_s=None
        if all(r.link_cpu_s is None for _, r in name_results)
        else sum(r.link_cpu_s or 0.0 for _, r in name_results),
        steps=[
            {
                "step": name,
                "wall_s": round(r.wall_s, 3),
                "cpu_s": round(r.cpu_s, 3),
                "peak_rss_bytes": r.peak_rss_bytes,
                "ok": r.ok,
            }
            for name, r in name_results
        ],
    )


def _sum_servers(uses: Sequence[ServerUse | None]) -> ServerUse | None:
    if not uses or any(u is None for u in uses):
        return None
    total = ServerUse(0.0, 0.0, 0)
    for use in uses:
        assert use is not None
        total = total + use
    return total
