"""The scale case: one file of many GB through the real client, on a disk that cannot hold it.

``python -m benchmarks --cases scale --scale-gb N`` (``make bench-scale``: N = 200):

* **Sandbox**: ``ghga-sandbox serve --s3 sink`` with presigned URLs of both kinds
  expiring after ``--url-expiry`` seconds (60), so the client refreshes them hundreds of
  times. The sink computes every part's MD5, answers it as the ``ETag`` and discards the
  bytes; its Data Hub step checks sizes, part count, the per-part MD5s and the envelope
  (docs/sandbox.md, "--s3 sink").
* **Upload**: our client uploads a *sparse* file of N GB (``truncate``: it reads as zeros
  through the normal file path and takes no disk). Zeros are fine for transport: the
  client encrypts them like any byte, and the ciphertext on the wire is random-looking.
* **Download**: a synthetic archived object of N GB (Crypt4GH of a seeded plaintext under a
  fixed data key, generated on the fly for every ranged GET); our client runs
  ``download --decrypt --output -`` into ``/dev/null`` and compares the SHA-256 of what it
  decrypted with the DRS object's, which the sandbox computed by streaming the seeded
  plaintext once (cached under ``benchmarks/work/synthetic-cache``).
* **Measured**: the usual row (wall, CPU, peak RSS, the sandbox's CPU, which includes the
  sink) plus a time series, one sample every ``--sample-s`` seconds: the client's RSS,
  CPU seconds and plaintext bytes so far (``rchar`` for uploads, ``wchar`` for downloads,
  from ``/proc/PID/io``) and the 1-minute load average of the machine; and the part size,
  part count and journal size of the upload.
* ``--clients K``: K client processes at once, each with its own N/K GB file, box and
  work package (aggregate MB/s, per-client min/max). ``--faults``: S3 5xx, dropped
  connections and expired URLs at a steady rate, one SIGKILL of the upload and a resume.
  ``--threads-sweep``: the upload and download with 1 and 2 crypto threads.

Results: ``benchmarks/results/scale/<name>.json`` (rows in the schema of latest.json plus
``series`` and ``targets``), ``<name>.md`` and ``<name>.png`` (RSS and MB/s over time).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.measure import _tree, tree_cpu_seconds, tree_memory
from benchmarks.model import MIB, OURS, ClientRun, Row
from benchmarks.report import machine_info
from benchmarks.sandbox_admin import AdminClient, raw_public_key
from benchmarks.servers import http_json

__all__ = [
    "GB",
    "Sample",
    "edge_ratio",
    "main",
    "normalized",
    "parse_retries",
    "rss_growth_after",
    "targets",
    "throughput_series",
    "wants_scale",
]

GB = 10**9
BENCH_DIR = Path(__file__).resolve().parent
RSS_TARGET = 300 * MIB
MAX_PARTS = 10_000


# --- pure pieces (unit-tested) ----------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """One point of a time series: seconds since start, bytes, CPU seconds, load."""

    t_s: float
    rss_bytes: int
    cpu_s: float
    io_bytes: int
    load1: float


def throughput_series(samples: Sequence[Sample]) -> list[tuple[float, float]]:
    """``(t_s, MB/s)`` between consecutive samples (10^6 bytes per second)."""
    out: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(samples):
        dt = b.t_s - a.t_s
        if dt > 0:
            out.append((b.t_s, max(b.io_bytes - a.io_bytes, 0) / dt / 1e6))
    return out


def _time_at(samples: Sequence[Sample], nbytes: float) -> float | None:
    """When ``io_bytes`` reached ``nbytes`` (linear between samples), or ``None``."""
    for a, b in itertools.pairwise(samples):
        if a.io_bytes <= nbytes <= b.io_bytes and b.io_bytes > a.io_bytes:
            return a.t_s + (b.t_s - a.t_s) * (nbytes - a.io_bytes) / (b.io_bytes - a.io_bytes)
    return None


def edge_ratio(samples: Sequence[Sample], total: int, fraction: float = 0.1) -> float | None:
    """MB/s over the last ``fraction`` of the bytes divided by MB/s over the first.

    The first stretch starts at the last sample before bytes moved (start-up excluded);
    the last one ends at the last sample (the process may exit between samples, so the
    stretch is ``fraction × total`` bytes back from the bytes seen last). ``None`` if the
    series does not cover both stretches.
    """
    moving = [s for s in samples if s.io_bytes > 0]
    if not moving:
        return None
    end = moving[-1]
    idle = [s for s in samples if s.io_bytes == 0]
    start = idle[-1].t_s if idle else moving[0].t_s  # the last sample before bytes moved
    t_first = _time_at(samples, total * fraction)
    t_last_from = _time_at(samples, end.io_bytes - total * fraction)
    if t_first is None or t_last_from is None or end.io_bytes < 2 * total * fraction:
        return None
    first, last = t_first - start, end.t_s - t_last_from
    if first <= 0 or last <= 0:
        return None
    return first / last


def rss_growth_after(samples: Sequence[Sample], after_s: float = 60.0) -> int | None:
    """Largest RSS after ``after_s`` minus the RSS at ``after_s`` (bytes), or ``None``."""
    later = [s for s in samples if s.t_s >= after_s]
    if not later:
        return None
    return max(s.rss_bytes for s in later) - later[0].rss_bytes


_RETRIED = re.compile(r"Retried requests: (\d+)(?: \(([^)]*)\))?")


def parse_retries(stderr: str) -> dict[str, int]:
    """``{reason: count}`` from the client's "Retried requests: N (reason ×k, …)" line."""
    found: dict[str, int] = {}
    for match in _RETRIED.finditer(stderr):
        for item in (match.group(2) or "").split(", "):
            reason, _, count = item.rpartition(" ×")
            if reason and count.isdigit():
                found[reason] = found.get(reason, 0) + int(count)
    return found


def normalized(samples: Sequence[Sample], total: int) -> list[Sample]:
    """The series with ``io_bytes`` scaled to ``total`` if the bytes read exceed it by 5 %.

    An upload whose parts are streamed (larger than their buffer) reads each part twice:
    once to send it, once more for the file's SHA-256 in part order, so ``rchar`` ends
    near twice the file size; scaled, the series shows plaintext progress again.
    """
    last = samples[-1].io_bytes if samples else 0
    if last <= total * 1.05:
        return list(samples)
    factor = total / last
    return [
        Sample(s.t_s, s.rss_bytes, s.cpu_s, round(s.io_bytes * factor), s.load1) for s in samples
    ]


def targets(
    samples: Sequence[Sample], total: int, peak_rss: int, parts: int | None, ok: bool
) -> dict[str, dict[str, Any]]:
    """The issue's targets for one direction: ``{name: {value, target, met}}``."""
    samples = normalized(samples, total)
    growth = rss_growth_after(samples)
    ratio = edge_ratio(samples, total)
    result: dict[str, dict[str, Any]] = {
        "peak_rss_mib": {
            "value": round(peak_rss / MIB, 1),
            "target": "<= 300",
            "met": peak_rss <= RSS_TARGET,
        },
        "rss_growth_after_60s_mib": {
            "value": None if growth is None else round(growth / MIB, 1),
            "target": "flat (<= 10 % of the peak)",
            "met": growth is not None and growth <= 0.1 * peak_rss,
        },
        "last_vs_first_10pct_throughput": {
            "value": None if ratio is None else round(ratio, 3),
            "target": ">= 0.9",
            "met": ratio is not None and ratio >= 0.9,
        },
        "no_failure": {"value": ok, "target": "exit 0, verified", "met": ok},
    }
    if parts is not None:
        result["part_count"] = {"value": parts, "target": "<= 10000", "met": parts <= MAX_PARTS}
    return result


def wants_scale(argv: Sequence[str]) -> bool:
    """Whether the command line asks for the scale case (``--cases scale``)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--cases=") else None
        if arg == "--cases" and i + 1 < len(argv):
            value = argv[i + 1]
        if value is not None and "scale" in value.split(","):
            return True
    return False


# --- measuring one command --------------------------------------------------------------


def _io_bytes(pid: int, key: str) -> int:
    total = 0
    for p in _tree(pid):
        with contextlib.suppress(OSError, ValueError):
            for line in Path(f"/proc/{p}/io").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
    return total


def _load1() -> float:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return -1.0


@dataclass
class Run:
    """One command as run by :func:`run_sampled`."""

    returncode: int
    wall_s: float
    user_s: float
    sys_s: float
    peak_rss_bytes: int
    stderr: str
    samples: list[Sample] = field(default_factory=list)
    killed: bool = False

    @property
    def ok(self) -> bool:
        """Exit status 0 and not killed by the harness."""
        return self.returncode == 0 and not self.killed


def run_sampled(
    cmd: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    io_key: str,
    interval: float,
    timeout: float,
    log_path: Path,
    kill_when: Callable[[Sample], bool] | None = None,
) -> Run:
    """Run ``cmd`` (stdout to ``/dev/null``, stderr to ``log_path``), sampling its tree.

    ``kill_when(sample)`` true: the client gets SIGKILL (once) and the run is ``killed``.
    """
    samples: list[Sample] = []
    peak = 0
    start = time.perf_counter()
    with log_path.open("wb") as err, open(os.devnull, "wb") as out:  # noqa: PTH123
        proc = subprocess.Popen(
            list(cmd), cwd=cwd, env=dict(env), stdout=out, stderr=err, start_new_session=True
        )
        done = threading.Event()
        killed = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                rss, hwm = tree_memory(proc.pid)
                peak = max(peak, rss, hwm)
                point = Sample(
                    round(time.perf_counter() - start, 2),
                    rss,
                    tree_cpu_seconds(proc.pid),
                    _io_bytes(proc.pid, io_key),
                    _load1(),
                )
                if point.io_bytes or point.rss_bytes:
                    samples.append(point)
                if kill_when is not None and not killed.is_set() and kill_when(point):
                    killed.set()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(timeout, lambda: os.killpg(proc.pid, signal.SIGKILL))
        timer.daemon = True
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
            done.set()
            sampler.join()
    wall = time.perf_counter() - start
    return Run(
        returncode=os.waitstatus_to_exitcode(status),
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        peak_rss_bytes=peak,
        stderr=log_path.read_text(errors="replace"),
        samples=samples,
        killed=killed.is_set(),
    )


# --- the sandbox ------------------------------------------------------------------------


API_PATTERNS = {
    "work_order_tokens": re.compile(r'"POST /wps/work-packages/[^ ]*/work-order-tokens'),
    "part_urls": re.compile(r'"GET /ucs/boxes/[^ ]*/parts/'),
    "drs_objects": re.compile(r'"GET /ga4gh/drs/v1/objects/[^/ ]* '),
    "all": re.compile(r'"(GET|POST|PATCH|DELETE|PUT) /(wps|ucs|ga4gh|\.well-known)/'),
}
"""GHGA API requests counted in the sandbox's access log: every WOT (they live 30 s), every
part URL, every DRS object (a fresh download URL; they live ``--url-expiry`` seconds)."""


@dataclass
class SinkSandbox:
    """``ghga-sandbox serve --s3 sink`` in a subprocess."""

    state_dir: Path
    cache_dir: Path
    url_expiry: int
    proc: subprocess.Popen[bytes] | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def start(self, timeout: float = 120.0) -> None:
        """Start the sandbox and wait for ``sandbox.json`` and its health check."""
        shutil.rmtree(self.state_dir, ignore_errors=True)
        self.state_dir.mkdir(parents=True)
        cmd = [
            sys.executable, "-m", "ghga_sandbox", "serve", "--port", "0",
            "--state-dir", str(self.state_dir), "--s3", "sink",
            "--url-expiry", str(self.url_expiry), "--upload-url-expiry", str(self.url_expiry),
            "--staging-delay", "0", "--synthetic-cache-dir", str(self.cache_dir),
            "--box-max-size", str(4 << 40), "--log-level", "info",
        ]  # fmt: skip
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            cmd, stdout=log, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
        )
        log.close()
        deadline = time.monotonic() + timeout
        info_path = self.state_dir / "sandbox.json"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ghga-sandbox exited with {self.proc.returncode}")
            with contextlib.suppress(OSError, json.JSONDecodeError):
                self.info = json.loads(info_path.read_text())
                status, _ = http_json("GET", self.info["wkvs_api_url"] + "/health", None, 5.0)
                if status == 200:
                    return
            time.sleep(0.3)
        raise RuntimeError("ghga-sandbox did not start in time")

    @property
    def log_path(self) -> Path:
        """The sandbox's output: uvicorn's access log, one line per request."""
        return self.state_dir.parent / "sandbox.log"

    def api_calls(self) -> dict[str, int]:
        """Requests answered so far, by kind (from the access log)."""
        counts = dict.fromkeys(API_PATTERNS, 0)
        with contextlib.suppress(OSError), self.log_path.open(errors="replace") as log:
            for line in log:
                for kind, pattern in API_PATTERNS.items():
                    if pattern.search(line):
                        counts[kind] += 1
        return counts

    def admin(self) -> AdminClient:
        """An admin client for the sandbox's user key."""
        return AdminClient(
            str(self.info["url"]).rstrip("/"),
            raw_public_key(self.state_dir / "user.pub"),
            (self.state_dir / "admin.token").read_text().strip(),
        )

    def cpu_s(self) -> float:
        """CPU seconds of the sandbox process (its sink S3 included)."""
        return tree_cpu_seconds(self.proc.pid) if self.proc else 0.0

    def stop(self) -> None:
        """Terminate the sandbox (kill after 15 s)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None


def _env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
    env.update(extra or {})
    return env


# --- the case ---------------------------------------------------------------------------


@dataclass
class Options:
    """What one ``--cases scale`` run does."""

    size: int
    clients: int
    faults: bool
    url_expiry: int
    sample_s: float
    work: Path
    results: Path
    name: str
    directions: tuple[str, ...]
    crypto_threads: int | None
    part_size: int | None = None
    seed: int = 2026


@dataclass
class Transfer:
    """One client process's transfer: its run and what the harness learned around it."""

    direction: str
    run: Run
    nbytes: int
    check: str
    ok: bool
    extra: dict[str, Any] = field(default_factory=dict)


def _client_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ghga_connector", *args]


def _client_env(opts: Options, state: Path) -> dict[str, str]:
    extra = {"GHGA_CONNECTOR_STATE_DIR": str(state)}
    if opts.crypto_threads is not None:
        extra["GHGA_CONNECTOR_CRYPTO_THREADS"] = str(opts.crypto_threads)
    if opts.part_size is not None:
        extra["GHGA_CONNECTOR_PART_SIZE"] = str(opts.part_size)
    return _env(extra)


def _journal_info(state: Path) -> dict[str, int]:
    files = list((state / "uploads").glob("*")) if (state / "uploads").is_dir() else []
    journals = [f for f in files if f.is_file() and not f.name.endswith(".lock")]
    lines = 0
    size = 0
    for journal in journals:
        with contextlib.suppress(OSError):
            size += journal.stat().st_size
            lines += journal.read_bytes().count(b"\n")
    return {"journal_bytes": size, "journal_lines": lines}


class FaultDriver(threading.Thread):
    """Arms one S3 fault every ``period`` seconds (the first after 2 s), in turn: 503 on a
    part, a dropped connection mid-body, a presigned URL that expires after 1 s."""

    def __init__(self, admin: AdminClient, method: str, period: float = 5.0) -> None:
        super().__init__(daemon=True, name="fault-driver")
        self.admin = admin
        self.method = method
        self.period = period
        self.armed = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        """Arm faults until stopped."""
        plans: list[dict[str, Any]] = [
            {"status_rules": [{"service": "s3", "status": 503, "count": 1, "method": self.method}]},
            {"drop_connections": {"count": 1, "after_bytes": 4 * MIB, "method": self.method}},
            {"url_expiry": {"seconds": 1, "count": 1, "kind": "any"}},
        ]
        i = 0
        while not self._stop_event.wait(self.period if i else 2.0):
            with contextlib.suppress(Exception):
                self.admin._call("POST", "/faults", plans[i % len(plans)])
                self.armed += 1
            i += 1

    def stop(self) -> None:
        """Stop arming."""
        self._stop_event.set()
        self.join()


def _upload(
    opts: Options, box: SinkSandbox, index: int, size: int, kill_at: float | None
) -> Transfer:
    admin = box.admin()
    box_id, token = admin.new_upload_box()
    folder = opts.work / f"client{index}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    wpat = folder / "upload.wpat"
    wpat.write_text(token + "\n")
    wpat.chmod(0o600)
    source = folder / f"scale-{size}.bin"
    with source.open("wb") as fh:
        fh.truncate(size)  # sparse: reads as zeros, takes no disk
    state = folder / "client-state"
    cmd = _client_cmd("upload", "--wpat-file", str(wpat), str(source))
    env = _client_env(opts, state)
    journal_peak = {"journal_bytes": 0, "journal_lines": 0}

    def watch(sample: Sample, *, may_kill: bool) -> bool:
        for k, v in _journal_info(state).items():
            journal_peak[k] = max(journal_peak[k], v)
        return may_kill and kill_at is not None and sample.io_bytes >= kill_at * size

    def upload(log_name: str, *, may_kill: bool) -> Run:
        return run_sampled(
            cmd,
            cwd=box.state_dir,
            env=env,
            io_key="rchar",
            interval=opts.sample_s,
            timeout=6 * 3600,
            log_path=folder / log_name,
            kill_when=lambda sample: watch(sample, may_kill=may_kill),
        )

    journal_at_kill: dict[str, int] = {}
    run = upload("upload.log", may_kill=True)
    runs = [run]
    if run.killed:  # the resume: the same command again, never killed
        journal_at_kill = _journal_info(state)
        runs.append(upload("upload-resume.log", may_kill=False))
    checked = admin.archive_box(box_id)
    uploads = admin.uploads(box_id)
    ok = runs[-1].ok and all(f.state == "archived" for f in checked) and len(checked) == 1
    reasons = "; ".join(f.failure_reason or "" for f in checked if f.state != "archived")
    source.unlink(missing_ok=True)
    merged = _merge(runs)
    extra: dict[str, Any] = {
        "part_size": uploads[0].get("part_size") if uploads else None,
        "parts": uploads[0].get("parts") if uploads else None,
        "journal_peak": journal_peak,
        "retries": parse_retries("\n".join(r.stderr for r in runs)),
    }
    if run.killed:
        extra["killed_at_bytes"] = run.samples[-1].io_bytes if run.samples else None
        extra["journal_at_kill"] = journal_at_kill
    return Transfer(
        "upload",
        merged,
        size,
        "Data Hub check of the sink's records (size, part count and sizes, per-part MD5s, "
        "envelope and first segments)" + (f": {reasons}" if reasons else ""),
        ok,
        extra,
    )


def _merge(runs: Sequence[Run]) -> Run:
    if len(runs) == 1:
        return runs[0]
    samples = list(runs[0].samples)
    offset = runs[0].wall_s
    cpu0 = samples[-1].cpu_s if samples else 0.0
    for extra in runs[1:]:
        samples += [
            Sample(s.t_s + offset, s.rss_bytes, s.cpu_s + cpu0, s.io_bytes, s.load1)
            for s in extra.samples
        ]
        offset += extra.wall_s
    return Run(
        returncode=runs[-1].returncode,
        wall_s=sum(r.wall_s for r in runs),
        user_s=sum(r.user_s for r in runs),
        sys_s=sum(r.sys_s for r in runs),
        peak_rss_bytes=max(r.peak_rss_bytes for r in runs),
        stderr="\n".join(r.stderr for r in runs),
        samples=samples,
    )


def _download(opts: Options, box: SinkSandbox, index: int, accession: str, size: int) -> Transfer:
    admin = box.admin()
    folder = opts.work / f"client{index}"
    folder.mkdir(parents=True, exist_ok=True)
    wpat = folder / "download.wpat"
    wpat.write_text(admin.download_package([accession]) + "\n")
    wpat.chmod(0o600)
    cmd = _client_cmd(
        "download", "--wpat-file", str(wpat), "--file", accession, "--decrypt", "--output", "-",
    )  # fmt: skip
    run = run_sampled(
        cmd,
        cwd=box.state_dir,
        env=_client_env(opts, folder / "client-state"),
        io_key="wchar",
        interval=opts.sample_s,
        timeout=6 * 3600,
        log_path=folder / "download.log",
    )
    written = run.samples[-1].io_bytes if run.samples else 0
    return Transfer(
        "download",
        run,
        size,
        "the client's SHA-256 of the decrypted stream against the DRS object's (the seeded "
        "plaintext's, streamed by the sandbox)",
        run.ok,
        {"retries": parse_retries(run.stderr), "stdout_bytes_seen": written},
    )


def _concurrently(jobs: Sequence[Callable[[], Transfer]]) -> list[Transfer]:
    results: list[Transfer | None] = [None] * len(jobs)

    def work(i: int) -> None:
        results[i] = jobs[i]()

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return [r for r in results if r is not None]


def _row(case: str, direction: str, transfers: Sequence[Transfer], server_cpu: float) -> Row:
    wall = max(t.run.wall_s for t in transfers)
    row = Row(
        tool=OURS,
        case=case,
        direction=direction,  # type: ignore[arg-type]
        files=len(transfers),
        bytes=sum(t.nbytes for t in transfers),
        ok=all(t.ok for t in transfers),
        check=transfers[0].check,
        wall_s=wall,
        cpu_s=sum(t.run.user_s + t.run.sys_s for t in transfers),
        user_s=sum(t.run.user_s for t in transfers),
        sys_s=sum(t.run.sys_s for t in transfers),
        peak_rss_bytes=max(t.run.peak_rss_bytes for t in transfers),
        s3="sink",
        sandbox_cpu_s=server_cpu,
    )
    if not row.ok:
        row.error = "; ".join(t.run.stderr.strip()[-400:] for t in transfers if not t.ok)
    if len(transfers) > 1:
        row.clients = [
            ClientRun(
                1, t.nbytes, t.run.wall_s, t.run.user_s + t.run.sys_s, t.run.peak_rss_bytes, t.ok
            )
            for t in transfers
        ]
    return row


def run_scale(opts: Options, log: Callable[[str], None]) -> dict[str, Any]:
    """Run the case; return the result document (also written to ``opts.results``)."""
    opts.work.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(opts.work).free
    log(
        f"scale: {opts.clients} x {opts.size / GB:g} GB, free disk {free / GB:.0f} GB (sparse input)"
    )
    box = SinkSandbox(
        opts.work / "sandbox", BENCH_DIR / "work" / "synthetic-cache", opts.url_expiry
    )
    box.start()
    document: dict[str, Any] = {
        "machine": machine_info({"case": "scale"}),
        "options": {k: str(v) for k, v in asdict(opts).items()},
        "rows": [],
        "series": {},
        "targets": {},
        "extra": {},
    }
    case = f"{opts.clients}x{opts.size / GB:g}GB-sink" + ("+faults" if opts.faults else "")
    try:
        admin = box.admin()
        if "upload" in opts.directions:
            driver = FaultDriver(admin, "PUT") if opts.faults else None
            if driver:
                driver.start()
            cpu0, api0 = box.cpu_s(), box.api_calls()
            kill = 0.4 if opts.faults else None
            log(f"upload: {case}")
            ups = _concurrently(
                [(lambda i=i: _upload(opts, box, i, opts.size, kill)) for i in range(opts.clients)]
            )
            if driver:
                driver.stop()
            _record(document, case, "upload", ups, box.cpu_s() - cpu0, admin, driver, log)
            document["rows"][-1]["api"] = _delta(box.api_calls(), api0)
        if "download" in opts.directions:
            t0 = time.perf_counter()
            accessions = []
            for _ in range(opts.clients):
                made = admin._call(
                    "POST",
                    "/synthetic-objects",
                    {"size": opts.size, "seed": opts.seed},
                    timeout=3600,
                )
                accessions.append(str(made["accession"]))
                admin.stage(accessions[-1])
            document["extra"]["synthetic_setup_s"] = round(time.perf_counter() - t0, 1)
            log(f"download: synthetic objects ready in {time.perf_counter() - t0:.0f} s")
            driver = FaultDriver(admin, "GET") if opts.faults else None
            if driver:
                driver.start()
            cpu0, api0 = box.cpu_s(), box.api_calls()
            downs = _concurrently(
                [
                    (lambda i=i, a=a: _download(opts, box, i, a, opts.size))
                    for i, a in enumerate(accessions)
                ]
            )
            if driver:
                driver.stop()
            _record(document, case, "download", downs, box.cpu_s() - cpu0, admin, driver, log)
            document["rows"][-1]["api"] = _delta(box.api_calls(), api0)
    finally:
        box.stop()
        for i in range(opts.clients):
            shutil.rmtree(opts.work / f"client{i}", ignore_errors=True)
    return document


def _delta(after: Mapping[str, int], before: Mapping[str, int]) -> dict[str, int]:
    return {k: after[k] - before.get(k, 0) for k in after}


def _record(
    document: dict[str, Any],
    case: str,
    direction: str,
    transfers: Sequence[Transfer],
    server_cpu: float,
    admin: AdminClient,
    driver: FaultDriver | None,
    log: Callable[[str], None],
) -> None:
    row = _row(case, direction, transfers, server_cpu)
    data = {"tool": row.tool, "case": row.case, "direction": row.direction}
    data |= {"files": row.files, "bytes": row.bytes, "s3": row.s3, **row.to_json()}
    status = admin.status()
    data["extra"] = [t.extra for t in transfers]
    data["sink"] = status.get("sink")
    data["faults_fired"] = status.get("faults", {}).get("injected")
    if driver is not None:
        data["faults_armed"] = driver.armed
    document["rows"].append(data)
    document["series"][direction] = [[asdict(s) for s in t.run.samples] for t in transfers]
    parts = transfers[0].extra.get("parts") if direction == "upload" else None
    document["targets"][direction] = [
        targets(t.run.samples, t.nbytes, t.run.peak_rss_bytes, parts, t.ok) for t in transfers
    ]
    speeds = [t.nbytes / t.run.wall_s / 1e6 for t in transfers if t.run.wall_s > 0]
    log(
        f"{direction}: ok={row.ok} {row.mb_per_s or 0:.0f} MB/s aggregate, per client "
        f"{min(speeds):.0f}-{max(speeds):.0f} MB/s, {row.cpu_s_per_gib or 0:.2f} CPU-s/GiB, "
        f"peak RSS {(row.peak_rss_bytes or 0) / MIB:.0f} MiB, sandbox+sink CPU {server_cpu:.0f} s"
    )


# --- output -----------------------------------------------------------------------------


def write_results(document: dict[str, Any], results: Path, name: str) -> list[Path]:
    """``<name>.json``, ``<name>.md`` and (with matplotlib) ``<name>.png``."""
    results.mkdir(parents=True, exist_ok=True)
    paths = [results / f"{name}.json", results / f"{name}.md"]
    paths[0].write_text(json.dumps(document, indent=1) + "\n")
    paths[1].write_text(markdown(document))
    png = results / f"{name}.png"
    if write_png(document, png):
        paths.append(png)
    return paths


def markdown(document: dict[str, Any]) -> str:
    """A short report: one line per row, the targets, the extras."""
    lines = [f"# Scale run {document['machine'].get('date', '')}", ""]
    lines += [
        "| case | direction | ok | wall s | MB/s | CPU-s/GiB | peak RSS MiB | sandbox+sink CPU-s |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for row in document["rows"]:
        lines.append(
            f"| {row['case']} | {row['direction']} | {row['ok']} | {row['wall_s']} | "
            f"{row['mb_per_s']} | {row['cpu_s_per_gib']} | "
            f"{round((row['peak_rss_bytes'] or 0) / MIB)} | {row['sandbox_cpu_s']} |"
        )
    lines += ["", "## Targets", "", "| direction | client | target | wanted | value | met |"]
    lines.append("|---|---:|---|---|---:|---|")
    for direction, per_client in document["targets"].items():
        for i, checks in enumerate(per_client):
            for key, check in checks.items():
                lines.append(
                    f"| {direction} | {i} | {key} | {check['target']} | {check['value']} | "
                    f"{'yes' if check['met'] else '**no**'} |"
                )
    lines.append("")
    extras = [{"case": r["case"], "direction": r["direction"], "extra": r.get("extra"),
               "sink": r.get("sink"), "faults_fired": r.get("faults_fired"), "api": r.get("api"),
               "clients": r.get("clients")} for r in document["rows"]]  # fmt: skip
    lines += ["## Details", "", "```", json.dumps(extras, indent=1), "```", ""]
    loads = [s["load1"] for d in document["series"].values() for c in d for s in c]
    if loads:
        lines.append(
            f"Machine load (1-minute load average, 2 cores) during the run: "
            f"min {min(loads):.1f}, median {sorted(loads)[len(loads) // 2]:.1f}, "
            f"max {max(loads):.1f}."
        )
    return "\n".join(lines) + "\n"


def write_png(document: dict[str, Any], path: Path) -> bool:
    """RSS and MB/s over time per direction (False without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    directions = list(document["series"])
    if not directions:
        return False
    fig, axes = plt.subplots(len(directions), 1, figsize=(10, 4 * len(directions)), squeeze=False)
    for ax, direction in zip(axes[:, 0], directions, strict=True):
        twin = ax.twinx()
        for i, raw in enumerate(document["series"][direction]):
            total = document["rows"][0]["bytes"] // max(document["rows"][0]["files"], 1)
            samples = normalized([Sample(**s) for s in raw], total)
            speed = throughput_series(samples)
            ax.plot([t / 60 for t, _ in speed], [v for _, v in speed], lw=0.5, alpha=0.5,
                    label=f"MB/s client {i}")  # fmt: skip
            twin.plot([s.t_s / 60 for s in samples], [s.rss_bytes / MIB for s in samples],
                      lw=1.2, ls="--", label=f"RSS MiB client {i}")  # fmt: skip
            window = (
                max(int(30 / max(samples[1].t_s - samples[0].t_s, 0.1)), 1)
                if len(samples) > 1
                else 1
            )
            smooth = [
                (
                    speed[j][0],
                    sum(v for _, v in speed[max(j - window + 1, 0) : j + 1])
                    / len(speed[max(j - window + 1, 0) : j + 1]),
                )
                for j in range(len(speed))
            ]
            ax.plot([t / 60 for t, _ in smooth], [v for _, v in smooth], lw=1.6,
                    label=f"MB/s client {i}, 30 s mean")  # fmt: skip
            if i == 0:
                twin.plot([s.t_s / 60 for s in samples], [s.load1 * 20 for s in samples], lw=0.8,
                          ls=":", color="grey", label="load average (1 min) x20")  # fmt: skip
        ax.set_title(f"{direction}: {document['rows'][0]['case']}")
        ax.set_xlabel("minutes")
        ax.set_ylabel("MB/s (plaintext)")
        twin.set_ylabel("RSS MiB  /  load x20")
        twin.set_ylim(0, 500)
        ax.legend(loc="lower left", fontsize=7)
        twin.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def build_parser() -> argparse.ArgumentParser:
    """The options of ``python -m benchmarks --cases scale``."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks --cases scale",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("--cases", default="scale", help="must be 'scale'")
    parser.add_argument("--scale-gb", type=float, default=200.0, help="GB (10^9 bytes) per client")
    parser.add_argument("--clients", type=int, default=1, help="client processes at once")
    parser.add_argument("--faults", action="store_true", help="S3 faults, one SIGKILL + resume")
    parser.add_argument("--url-expiry", type=int, default=60, help="presigned URL lifetime, s")
    parser.add_argument("--sample-s", type=float, default=3.0, help="seconds between samples")
    parser.add_argument("--directions", default="upload,download")
    parser.add_argument("--crypto-threads", type=int, default=None, help="client setting")
    parser.add_argument(
        "--part-size-mib",
        type=int,
        default=None,
        help="client part_size (default 16): 5 reaches the 10,000-part limit at 52 GB",
    )
    parser.add_argument("--name", default=None, help="result file name (default from the case)")
    parser.add_argument("--work-dir", type=Path, default=BENCH_DIR / "work" / "scale")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results" / "scale")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run the scale case from the command line; exit 0 if every row passed."""
    args = build_parser().parse_args(list(argv))
    size = int(args.scale_gb * GB)
    if size <= 0 or args.clients < 1:
        print("error: --scale-gb and --clients must be positive", file=sys.stderr)
        return 2
    name = args.name or (
        f"{args.clients}x{args.scale_gb:g}GB"
        + ("-faults" if args.faults else "")
        + (f"-threads{args.crypto_threads}" if args.crypto_threads else "")
        + (f"-part{args.part_size_mib}MiB" if args.part_size_mib else "")
    )
    opts = Options(
        size=size,
        clients=args.clients,
        faults=args.faults,
        url_expiry=args.url_expiry,
        sample_s=args.sample_s,
        work=args.work_dir,
        results=args.results_dir,
        name=name,
        directions=tuple(d for d in args.directions.split(",") if d),
        crypto_threads=args.crypto_threads,
        part_size=None if args.part_size_mib is None else args.part_size_mib * MIB,
    )
    start = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - start:7.1f}s] {message}", file=sys.stderr, flush=True)

    document = run_scale(opts, log)
    for path in write_results(document, opts.results, name):
        log(f"wrote {path}")
    return 0 if all(r["ok"] for r in document["rows"]) else 1
