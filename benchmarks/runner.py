"""The benchmark run: cases, repetitions, tools, checks, rows.

One SeaweedFS and one sandbox serve every case; the ``small-latency`` case switches the
sandbox's API latency on through the admin API (``POST /admin/faults``) and off again
afterwards. For every case the inputs are generated once (``small-latency`` right after
``small`` reuses its files; the one-client case uses the first file of the multi-client
case), then each repetition runs every tool, in an order rotated by one per repetition:

1. every uploading tool uploads the inputs into its own fresh upload box (boto3: its own
   key prefix); in a multi-client case each client process gets its share of the files
   and its own box, and all of them run at once;
2. every upload is checked (see :mod:`benchmarks.tools`): the sandbox's Data Hub step
   decrypts each GHGA upload and the archived SHA-256s must equal the inputs';
3. the archived files of our upload (else 4.0.1's) are staged, and every downloading
   tool fetches and decrypts them; every output is compared with the inputs by SHA-256;
   boto3 downloads its own objects, which checks its upload too.

A row whose command fails, times out or whose check fails is ``ok: false`` with an
``error``. boto3 never calls the GHGA API, so in a latency case its rows are copied
(``reused_from``) from the case without latency over the same files instead of being
measured again. Except in ``--quick`` runs (a few GiB in all), all S3 objects are deleted
and SeaweedFS's volumes replaced by empty ones after every repetition, so disk use stays
bounded and earlier boxes cannot disturb the next one.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from benchmarks.crypto_floor import measure_floor
from benchmarks.data import InputFile, make_bam_repeat, make_random, verify_outputs
from benchmarks.env import REPO, Env, Options, ServerMeter, configuration
from benchmarks.measure import ProcResult, ServerUse
from benchmarks.model import (
    BOTO3,
    GIB,
    MIB,
    OURS,
    V401,
    Case,
    ClientRun,
    Direction,
    FloorRow,
    Row,
    rotated,
)
from benchmarks.servers import S3_ACCESS_KEY, S3_SECRET_KEY
from benchmarks.tools import BOTO3_BUCKET, Tool, UploadCheck, Uploaded, make_tools
from benchmarks.wan import case_link, wan_cases

__all__ = [
    "CASE_KEYS",
    "OPTIONAL_CASE_KEYS",
    "QUICK_CASE_KEYS",
    "QUICK_SMALL_COUNT",
    "TOOLS",
    "Results",
    "disk_needed",
    "make_cases",
    "run_benchmark",
    "select_cases",
    "split",
]

TOOLS = (OURS, V401, BOTO3)
CASE_KEYS = ["large", "xlarge", "xxlarge", "small", "small-latency", "multi"]
QUICK_CASE_KEYS = ["xlarge", "small", "small-latency", "multi"]
"""``--quick`` leaves out the 16 GiB case and the BAM case (the client does not compress, so
it measures what the 1 GiB random case does; ``--cases large`` runs it), to stay under
4 minutes on 2 cores."""
OPTIONAL_CASE_KEYS = ["wan"]
"""Cases run only when named in ``--cases`` (``wan`` needs root for its network namespace)."""
QUICK_SMALL_COUNT = 10
"""8 MiB files in ``--quick``'s small cases: each costs the quick run ~2.7 s (all tools,
both passes); 20 made it about 30 s longer."""
MULTI_CLIENTS = 4
T = TypeVar("T")
BAM_SOURCE = REPO / "examples" / "human_mouse_smaller.bam"
DISK_FACTOR_XXLARGE = 7.5
"""Free disk per plaintext byte the 16 GiB case needs: the input, our upload in S3 four
times (inbox, interrogation copy, permanent, outbox: SeaweedFS frees deleted data only
when the volumes are replaced after the repetition), one output, boto3's object and its
download, plus a margin."""


def make_cases(
    quick: bool,
    small_count: int | None,
    latency_ms: int,
    large_mib: int | None = None,
    xlarge_mib: int | None = None,
    xxlarge_mib: int | None = None,
    multi_mib: int | None = None,
) -> dict[str, list[Case]]:
    """The cases by key (``multi`` is two: one client, then four at once)."""
    n_small = small_count or (QUICK_SMALL_COUNT if quick else 200)
    large = large_mib * MIB if large_mib else (256 * MIB if quick else GIB)
    xlarge = xlarge_mib * MIB if xlarge_mib else (GIB if quick else 4 * GIB)
    xxlarge = xxlarge_mib * MIB if xxlarge_mib else 16 * GIB
    multi = multi_mib * MIB if multi_mib else (64 * MIB if quick else GIB)
    # 16 GiB: ours (one pass) and boto3 only; 4.0.1 and our two-step variant would need
    # another 2-3 x 16 GiB of disk and ~10 minutes, and are measured at 1 and 4 GiB.
    big_tools = (OURS, BOTO3)
    return {
        "large": [Case("large", 1, large, "bam")],
        "xlarge": [Case("xlarge", 1, xlarge, "random")],
        "xxlarge": [Case("xxlarge", 1, xxlarge, "random", tools=big_tools)],
        "small": [Case("small", n_small, 8 * MIB, "random")],
        "small-latency": [Case("small-latency", n_small, 8 * MIB, "random", latency_ms)],
        "multi": [
            Case("multi", 1, multi, "random", multi=True, pool=MULTI_CLIENTS, tools=big_tools),
            Case(
                "multi",
                MULTI_CLIENTS,
                multi,
                "random",
                clients=MULTI_CLIENTS,
                multi=True,
                tools=big_tools,
            ),
        ],
        "wan": wan_cases(),
    }


def disk_needed(case: Case) -> int:
    """Free bytes a case needs on the work folder's disk (only the 16 GiB case is checked)."""
    return int(case.total_bytes * DISK_FACTOR_XXLARGE)


def select_cases(
    cases: Sequence[Case], free_bytes: int, work_dir: Path
) -> tuple[list[Case], list[str]]:
    """The cases that fit on the disk, and a printed reason for each one that does not.

    Only the 16 GiB case is checked (the others need a few GiB at most).
    """
    kept: list[Case] = []
    skipped: list[str] = []
    for case in cases:
        if case.key == "xxlarge" and free_bytes < disk_needed(case):
            skipped.append(
                f"{case.name} skipped: needs about {disk_needed(case) / GIB:.0f} GiB of free "
                f"disk under {work_dir}, {free_bytes / GIB:.0f} GiB free"
            )
        else:
            kept.append(case)
    return kept, skipped


@dataclass
class Results:
    """Everything a run produced: rows, crypto floor, skipped cases."""

    rows: list[Row] = field(default_factory=list)
    floors: list[FloorRow] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def floor_rows(nbytes: int, log: Callable[[str], None]) -> list[FloorRow]:
    """The crypto floor for both directions."""
    rows = []
    for res in measure_floor(nbytes):
        direction: Direction = "upload" if res.direction == "upload" else "download"
        rows.append(FloorRow(direction, res.bytes, res.cpu_s, res.aead, res.all_aeads))
        log(f"crypto floor {res.direction}: {res.cpu_s_per_gib:.2f} CPU-s/GiB ({res.aead})")
    return rows


# ---------------------------------------------------------------------------------------
# inputs and outputs


def generate_inputs(opts: Options, case: Case) -> list[InputFile]:
    """Write the case's input files under ``work/inputs/<data name>/``.

    The content depends on the data name only, so ``small`` and ``small-latency`` get the
    same files, and so do the one- and four-client cases.
    """
    folder = opts.work_dir / "inputs" / case.data_name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = []
    for i in range(case.pool or case.count):
        if case.source == "bam":
            name = f"{case.key}-{i:03d}.bam"
            files.append(make_bam_repeat(folder / name, case.size, BAM_SOURCE))
        else:
            name = f"{case.key}-{i:03d}.bin"
            files.append(make_random(folder / name, case.size, f"{case.data_name}/{i}"))
    return files


def plaintext_outputs(folder: Path) -> list[Path]:
    """Decrypted outputs in a folder (no ``.c4gh``, ``.part`` or checksum side files)."""
    skip = (".c4gh", ".part", ".sha256", ".tmp")
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.endswith(skip))


def split(items: Sequence[T], parts: int) -> list[list[T]]:
    """``items`` dealt out round-robin into ``parts`` non-empty lists (fewer if too few)."""
    groups: list[list[T]] = [[] for _ in range(max(1, min(parts, len(items))))]
    for i, item in enumerate(items):
        groups[i % len(groups)].append(item)
    return groups


# ---------------------------------------------------------------------------------------
# rows


def row_from(
    tool: str,
    case: Case,
    direction: Direction,
    env: Env | None,
    results: Sequence[ProcResult],
    rep: int,
    *,
    server: ServerUse | None = None,
    sizes: Sequence[tuple[int, int]] = (),
) -> Row:
    """A row from one command's result, or from several clients that ran at once.

    Several clients: wall time from the first start to the last end, CPU summed, peak RSS
    the largest client's; ``sizes`` gives each client's (files, bytes). ``server``
    replaces the single command's own server figures.
    """
    row = Row(
        tool=tool,
        case=case.name,
        direction=direction,
        files=case.count,
        bytes=case.total_bytes,
        ok=True,
        rep=rep,
        api_latency_ms=case.latency_ms,
        s3=env.s3_label if env else None,
        link_mbit_s=case.link_mbit_s or None,
        rtt_ms=case.rtt_ms if case.link_mbit_s else None,
    )
    if not results:
        return row
    first = min(r.started_at for r in results)
    row.wall_s = max(r.started_at + r.wall_s for r in results) - first
    if len(results) == 1:
        row.wall_s = results[0].wall_s
    row.cpu_s = sum(r.cpu_s for r in results)
    row.user_s = sum(r.user_s for r in results)
    row.sys_s = sum(r.sys_s for r in results)
    row.peak_rss_bytes = max(r.peak_rss_bytes for r in results)
    if case.link_mbit_s:
        row.link_cpu_s = sum(r.link_cpu_s or 0.0 for r in results)
    use = server if server is not None else results[0].server if len(results) == 1 else None
    if use is not None:
        row.sandbox_cpu_s, row.s3_cpu_s, row.api_calls = (
            use.sandbox_cpu_s,
            use.s3_cpu_s,
            use.api_calls,
        )
    if len(results) == 1 and results[0].steps:
        row.steps = results[0].steps
    if len(results) > 1:
        row.clients = [
            ClientRun(files, nbytes, r.wall_s, r.cpu_s, r.peak_rss_bytes, r.ok)
            for r, (files, nbytes) in zip(results, sizes, strict=True)
        ]
    for r in results:
        if r.timed_out:
            row.fail("timed out")
        elif not r.ok:
            row.fail(f"exit {r.returncode}: {r.tail()}")
    return row


def failed_row(tool: str, case: Case, direction: Direction, rep: int, error: str) -> Row:
    """A row for something that could not be measured at all."""
    row = row_from(tool, case, direction, None, [], rep)
    row.fail(error)
    return row


# ---------------------------------------------------------------------------------------
# one repetition of one case


def _concurrently(jobs: Sequence[Callable[[], T]]) -> list[T]:
    """Run the jobs at once (one thread each; each starts and waits for a process)."""
    if len(jobs) == 1:
        return [jobs[0]()]
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [f.result() for f in futures]


def _measured_group(
    env: Env, case: Case, jobs: Sequence[Callable[[], T]]
) -> tuple[list[T], ServerUse | None]:
    """Run the client jobs; for several clients, measure the servers around all of them.

    Each group starts after the page-cache warm-up (:meth:`Env.warm`), so no tool starts
    on memory another tool's deleted outputs left behind while others do not.
    """
    env.warm(case)
    if case.clients == 1:
        return _concurrently(jobs), None
    before = env.meter.read()
    results = _concurrently(jobs)
    time.sleep(0.05)
    return results, ServerMeter.between(before, env.meter.read())


def _report(env: Env, row: Row) -> None:
    speed = f"{row.mb_per_s:.1f} MB/s" if row.mb_per_s else "-"
    cpu = f"{row.cpu_s_per_gib:.2f} CPU-s/GiB" if row.cpu_s_per_gib is not None else ""
    rss = f"{row.peak_rss_bytes / MIB:.0f} MiB" if row.peak_rss_bytes else ""
    calls = f"{row.api_calls} calls" if row.api_calls is not None else ""
    status = "ok" if row.ok else f"FAILED: {row.error}"
    env.opts.log(
        f"[{row.case} #{row.rep}] {row.direction:<8} {row.tool:<22} {speed:>12} {cpu:>18} "
        f"{rss:>9} {calls:>10}  {status}"
    )


def run_rep(
    env: Env, case: Case, inputs: Sequence[InputFile], tools: Sequence[Tool], rep: int
) -> list[Row]:
    """Upload, check and download one case once with every tool (order rotated by ``rep``)."""
    order = rotated(list(tools), rep)
    groups = split(inputs, case.clients)
    sizes = [(len(g), sum(f.size for f in g)) for g in groups]
    tags = [f"r{rep}c{i}" for i in range(len(groups))]
    rows: list[Row] = []

    def add(row: Row) -> Row:
        rows.append(row)
        _report(env, row)
        return row

    # ---- uploads, all before any check (the checks cost the sandbox CPU)
    uploads: dict[str, list[Uploaded]] = {}
    for tool in order:
        if not tool.uploads:
            continue
        jobs = [
            partial(tool.upload, env, case, g, tag) for g, tag in zip(groups, tags, strict=True)
        ]
        try:
            done, server = _measured_group(env, case, jobs)
        except RuntimeError as exc:  # e.g. 4.0.1 could not be installed
            add(failed_row(tool.name, case, "upload", rep, str(exc)))
            continue
        uploads[tool.name] = done
        row = row_from(
            tool.name,
            case,
            "upload",
            env,
            [u.result for u in done],
            rep,
            server=server,
            sizes=sizes,
        )
        rows.append(row)  # reported after its check

    # ---- checks of the uploads (the Data Hub step for GHGA boxes)
    accessions: dict[str, list[list[str]]] = {}
    pending: dict[str, Row] = {}
    for tool in order:
        if tool.name not in uploads:
            continue
        row = next(r for r in rows if r.tool == tool.name and r.direction == "upload")
        t0 = time.perf_counter()
        checks: list[UploadCheck] = [
            tool.check(env, g, u) for g, u in zip(groups, uploads[tool.name], strict=True)
        ]
        row.check = checks[0].check
        for c in checks:
            if c.error:
                row.fail(c.error)
        if checks[0].pending:
            pending[tool.name] = row
        elif row.ok and all(c.accessions for c in checks):
            accessions[tool.name] = [c.accessions for c in checks]
        if not row.ok and tool.name == V401:
            row.fail("output: " + tool.explain(uploads[tool.name][0].result))
        if not checks[0].pending:
            env.opts.log(
                f"[{case.name} #{rep}] checked {tool.name}'s upload(s) in the sandbox "
                f"in {time.perf_counter() - t0:.1f} s"
            )
        _report(env, row)

    # ---- the files every GHGA download tool fetches: ours, else 4.0.1's
    source = next((name for name in (OURS, V401) if name in accessions), None)
    package = accessions.get(source, []) if source else []
    if source:
        t0 = time.perf_counter()
        try:
            for acc in [a for per_client in package for a in per_client]:
                env.admin.stage(acc)
        except Exception as exc:
            package = []
            env.opts.log(f"[{case.name} #{rep}] staging failed: {exc!r}")
        env.opts.log(
            f"[{case.name} #{rep}] staged {source}'s archived files in "
            f"{time.perf_counter() - t0:.1f} s"
        )

    # ---- downloads
    for tool in order:
        if tool.calls_ghga_api and not package:
            add(failed_row(tool.name, case, "download", rep, "nothing archived to download"))
            continue
        if not tool.calls_ghga_api and tool.name not in uploads:
            continue
        outs = [env.fresh_dir("out", f"{tool.name}-{tag}") for tag in tags]
        per_client = package if tool.calls_ghga_api else [[] for _ in groups]
        fetches = [
            partial(tool.download, env, case, g, a, o, tag)
            for g, a, o, tag in zip(groups, per_client, outs, tags, strict=True)
        ]
        try:
            results, server = _measured_group(env, case, fetches)
        except RuntimeError as exc:
            add(failed_row(tool.name, case, "download", rep, str(exc)))
            continue
        row = row_from(tool.name, case, "download", env, results, rep, server=server, sizes=sizes)
        row.check = "sha256 of every output file"
        if row.ok:
            for g, out in zip(groups, outs, strict=True):
                error = verify_outputs(g, plaintext_outputs(out))
                if error:
                    row.fail(error)
                    break
        if not row.ok and tool.name == V401:
            row.fail("output: " + tool.explain(results[0]))
        for out in outs:
            shutil.rmtree(out, ignore_errors=True)
        add(row)
        if tool.name in pending:  # the download checked the upload of the same objects
            up = pending.pop(tool.name)
            if not row.ok:
                up.fail("not verified: the download of the uploaded objects failed its check")
            env.opts.log(
                f"[{case.name} #{rep}] {tool.name}'s upload "
                + ("verified by its download" if up.ok else "NOT verified")
            )
    for up in pending.values():
        up.fail("not verified: no download of the uploaded objects")
    return rows


def _copied(rows: Sequence[Row], case: Case) -> list[Row]:
    """Rows of a tool that never calls the GHGA API, relabelled for a latency case."""
    return [
        replace(r, case=case.name, api_latency_ms=case.latency_ms, reused_from=r.case) for r in rows
    ]


# ---------------------------------------------------------------------------------------
# S3 clean-up


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


def fresh_volumes(env: Env) -> None:
    """Give every bucket's collection empty SeaweedFS volumes (no upload waits for growth)."""
    if env.weed is not None:
        env.weed.fresh_volumes(_s3_buckets(env)[1])


def wipe_s3(env: Env, label: str) -> None:
    """Delete every object and open multipart upload.

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
        env.opts.log(f"could not wipe S3: {exc!r}")
    env.opts.log(f"[{label}] deleted {deleted} S3 object(s) in {time.perf_counter() - t0:.1f} s")


# ---------------------------------------------------------------------------------------
# the whole run


def run_benchmark(opts: Options) -> Results:
    """Run every selected case ``opts.reps`` times on one set of servers."""
    opts.work_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    results = Results(floors=floor_rows(opts.floor_bytes, opts.log))
    tools = make_tools(opts.tools)
    cases, results.skipped = select_cases(
        opts.cases, shutil.disk_usage(opts.work_dir).free, opts.work_dir
    )
    for reason in results.skipped:
        opts.log(reason)
    try:
        with configuration(opts, fresh_volumes) as env:
            _run_cases(env, cases, tools, results.rows)
    except Exception as exc:
        opts.log(f"benchmark servers failed: {exc!r}")
        done = {(r.tool, r.case, r.direction, r.rep) for r in results.rows}
        for case in cases:
            for tool in tools:
                for direction in ("upload", "download") if tool.uploads else ("download",):
                    for rep in range(1, opts.reps + 1):
                        if (
                            case.runs(tool.name)
                            and (tool.name, case.name, direction, rep) not in done
                        ):
                            results.rows.append(
                                failed_row(tool.name, case, direction, rep, repr(exc))
                            )
    finally:
        if not opts.keep_work:
            shutil.rmtree(opts.work_dir / "run", ignore_errors=True)
            shutil.rmtree(opts.work_dir / "inputs", ignore_errors=True)
            shutil.rmtree(opts.work_dir / "out", ignore_errors=True)
    opts.log(f"benchmark finished in {time.perf_counter() - start:.0f} s")
    return results


def _run_cases(env: Env, cases: Sequence[Case], tools: Sequence[Tool], rows: list[Row]) -> None:
    """Run the cases in order, each ``reps`` times, adding rows as they are measured.

    The inputs stay for a following case over the same files; rows of tools that never
    call the GHGA API in a case without latency are kept for a latency case over the
    same files.
    """
    opts = env.opts
    inputs: list[InputFile] = []
    no_api: dict[tuple[str, int, str], list[Row]] = {}
    for i, case in enumerate(cases):
        if inputs:
            opts.log(f"[{case.name}] reusing the input(s) of the case before")
        else:
            t0 = time.perf_counter()
            inputs = generate_inputs(opts, case)
            opts.log(
                f"[{case.name}] generated {len(inputs)} input(s) in {time.perf_counter() - t0:.1f} s"
            )
        case_inputs = inputs[: case.count]
        case_tools = [t for t in tools if case.runs(t.name)]
        for rep in range(1, opts.reps + 1):
            measured: list[Tool] = []
            copies: list[Row] = []
            for t in case_tools:
                stored = no_api.get((case.data_name, rep, t.name)) if case.latency_ms else None
                if stored and not t.calls_ghga_api:
                    copies.extend(stored)
                else:
                    measured.append(t)
            try:
                env.set_latency(case.latency_ms)
                with case_link(env, case):
                    case_rows = run_rep(env, case, case_inputs, measured, rep)
            finally:
                if case.latency_ms:
                    env.set_latency(0)
                if not opts.keep_work:
                    shutil.rmtree(opts.work_dir / "out", ignore_errors=True)
            for row in _copied(copies, case):
                case_rows.append(row)
                _report(env, row)
            rows.extend(case_rows)
            if not case.latency_ms:
                for t in case_tools:
                    mine = [r for r in case_rows if r.tool == t.name]
                    if not t.calls_ghga_api and len(mine) == 2 and all(r.ok for r in mine):
                        no_api[(case.data_name, rep, t.name)] = mine
            last = i + 1 == len(cases) and rep == opts.reps
            if not last and not opts.quick:
                wipe_s3(env, f"{case.name} #{rep}")
        if i + 1 == len(cases) or cases[i + 1].data_name != case.data_name:
            if not opts.keep_work:
                shutil.rmtree(opts.work_dir / "inputs" / case.data_name, ignore_errors=True)
            inputs = []
