"""Run a command as a subprocess and measure wall time, CPU time and peak RSS of its tree.

CPU time comes from ``os.wait4`` (user + sys of the child and of every descendant it
waited for). Peak RSS is sampled by a thread every ~50 ms as the sum of ``VmRSS`` over the
process and all its live descendants (from ``/proc``); the kernel's ``ru_maxrss`` (largest
single process) is a lower bound that catches peaks between samples.
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

__all__ = ["ProcResult", "RssSampler", "combine", "run_measured", "tree_rss_bytes"]

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


def _vm_rss(pid: int) -> int:
    """Resident set size of one process in bytes (0 if gone or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:  # noqa: PTH123
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0


def tree_rss_bytes(pid: int) -> int:
    """Sum of VmRSS over ``pid`` and all its descendants."""
    total = 0
    stack = [pid]
    seen: set[int] = set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        total += _vm_rss(p)
        stack.extend(_children(p))
    return total


class RssSampler(threading.Thread):
    """Samples the RSS of a process tree until stopped; keeps the peak."""

    def __init__(self, pid: int, interval: float = SAMPLE_INTERVAL_S) -> None:
        super().__init__(daemon=True, name=f"rss-{pid}")
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Sample until :meth:`stop` is called."""
        while not self._stop_event.is_set():
            self.peak = max(self.peak, tree_rss_bytes(self.pid))
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
        sampler = RssSampler(proc.pid)
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
        peak = max(sampler.stop(), usage.ru_maxrss * 1024)
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
