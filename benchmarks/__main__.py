"""``python -m benchmarks``: ghga-connector vs. 4.0.1 vs. raw boto3, in one run."""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks import scale
from benchmarks.env import Options
from benchmarks.model import BOTO3, MIB, OURS, V401
from benchmarks.report import machine_info, write_json, write_markdown, write_png
from benchmarks.runner import (
    CASE_KEYS,
    OPTIONAL_CASE_KEYS,
    QUICK_CASE_KEYS,
    QUICK_SMALL_COUNT,
    TOOLS,
    make_cases,
    run_benchmark,
)
from benchmarks.wan import preflight

BENCH_DIR = Path(__file__).resolve().parent

DESCRIPTION = """\
Benchmark ghga-connector against the released ghga-connector 4.0.1 and raw boto3
multipart transfer (no encryption: the ceiling for the same server), all on one local
ghga-sandbox backed by SeaweedFS, in one run.

Cases (each uploaded and downloaded by every tool; download = fetch + decrypt to
plaintext, boto3: plain download):
  large          one 1 GiB file made by repeating a real BAM   (not in --quick; 256 MiB)
  xlarge         one 4 GiB random file                         (--quick: 1 GiB)
  xxlarge        one 16 GiB random file, ours and boto3 only; skipped with a printed
                 reason if the disk has too little room       (not in --quick)
  small          200 random files of 8 MiB                     (--quick: 10)
  small-latency  the small case again (same files, same servers) with the sandbox adding
                 --latency-ms to every API call (switched on at run time); boto3 never calls
                 the API, so its rows here are copied from `small` (marked reused_from)
  scale          one N GB file (--scale-gb, default 200) against the sink S3, sparse
                 input, synthetic download; options: python -m benchmarks --cases scale -h
  multi          one client with one 1 GiB random file, then 4 client processes at once,
                 each with its own file and box/work package (--quick: 64 MiB files);
                 ours and boto3 only: aggregate MB/s and per-client fairness
  wan            only when named: 1 GiB and 50 x 8 MiB with every client in a network
                 namespace behind an emulated link (tbf bandwidth cap both ways, a relay
                 adding the round trip): 1000 Mbit/s + 30 ms and 200 Mbit/s + 100 ms;
                 needs root, ip and tc (benchmarks/wan.py); rows carry link_mbit_s, rtt_ms

Every case runs --reps times (default 3, --quick 1), the tool order rotated by one per
repetition. Measured per tool x case x direction x repetition: wall seconds, MB/s of
plaintext, client CPU seconds (user+sys of the client's process tree), CPU-s per GiB,
the client's peak RSS, the sandbox's and SeaweedFS's CPU seconds and the GHGA API
requests meanwhile; reported as median (min-max), with throughput ratios to 4.0.1 and
boto3 from the medians, plus the crypto floor (CPU-s per GiB on one core for Crypt4GH
encryption/decryption and the digests the protocol needs). Every upload is checked by
SHA-256 of its decrypted content, every output by SHA-256; a wrong answer is ok=false.

Results: benchmarks/results/latest.json, latest.md, latest.png (the PNG needs matplotlib);
--quick: benchmarks/results/quick/.
Scratch data, the 4.0.1 venv and the SeaweedFS binary live under benchmarks/work/.
"""

EPILOG = """\
examples:
  python -m benchmarks --quick                  # about 3 minutes on 2 idle cores
  python -m benchmarks                          # the full run, 3 repetitions: over an hour
  python -m benchmarks --reps 1 --cases large,xlarge
  python -m benchmarks --quick --cases small --tools ghga-connector,boto3
"""


def _csv(choices: list[str]) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        items = [t.strip() for t in text.split(",") if t.strip()]
        bad = [t for t in items if t not in choices]
        if bad:
            raise argparse.ArgumentTypeError(
                f"unknown: {', '.join(bad)} (choose from {', '.join(choices)})"
            )
        return items

    return parse


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    case_keys = CASE_KEYS + OPTIONAL_CASE_KEYS
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smaller sizes and fewer cases (1 GiB, {QUICK_SMALL_COUNT} x 8 MiB, "
        "4 clients x 64 MiB), 1 repetition",
    )
    parser.add_argument(
        "--cases",
        type=_csv(case_keys),
        metavar="LIST",
        help=f"comma-separated cases to run (default: {','.join(CASE_KEYS)}; "
        f"--quick: {','.join(QUICK_CASE_KEYS)}; only when named: {','.join(OPTIONAL_CASE_KEYS)})",
    )
    parser.add_argument(
        "--reps",
        type=int,
        metavar="N",
        help="repetitions of every case (default 3, --quick 1)",
    )
    parser.add_argument(
        "--tools",
        type=_csv(list(TOOLS)),
        default=list(TOOLS),
        metavar="LIST",
        help=f"comma-separated tools (default: {','.join(TOOLS)}); "
        f"{OURS} also runs its two-step download",
    )
    parser.add_argument(
        "--small-count",
        type=int,
        metavar="N",
        help=f"number of 8 MiB files in the small cases (default 200, --quick {QUICK_SMALL_COUNT})",
    )
    parser.add_argument(
        "--large-mib",
        type=int,
        metavar="MIB",
        help="size of the large (BAM) file (default 1024, --quick 256)",
    )
    parser.add_argument(
        "--xlarge-mib",
        type=int,
        metavar="MIB",
        help="size of the xlarge (random) file (default 4096, --quick 1024)",
    )
    parser.add_argument(
        "--xxlarge-mib",
        type=int,
        metavar="MIB",
        help="size of the xxlarge (random) file (default 16384)",
    )
    parser.add_argument(
        "--multi-mib",
        type=int,
        metavar="MIB",
        help="size of each client's file in the multi case (default 1024, --quick 64)",
    )
    parser.add_argument(
        "--latency-ms",
        type=int,
        default=50,
        metavar="MS",
        help="API latency of the sandbox in the small-latency case (default 50)",
    )
    parser.add_argument(
        "--s3",
        default="seaweedfs",
        metavar="BACKEND",
        help="S3 behind the sandbox: 'seaweedfs' (default; installed from PyPI into "
        "benchmarks/work/ on first use), 'moto' (the sandbox's embedded moto), or the URL of "
        "a running S3 endpoint",
    )
    parser.add_argument(
        "--floor-mib",
        type=int,
        metavar="MIB",
        help="plaintext MiB for the crypto-floor measurement (default 1024, --quick 256)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        help="where latest.json/.md/.png are written (default benchmarks/results, "
        "--quick: benchmarks/results/quick, so a quick run keeps the full run's files)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=BENCH_DIR / "work",
        help="scratch folder (default benchmarks/work, git-ignored)",
    )
    parser.add_argument(
        "--no-warm",
        action="store_true",
        help="skip the page-cache warm-up before every measured command (writing and "
        "deleting a scratch file of twice the case's bytes; see benchmarks/README.md)",
    )
    parser.add_argument(
        "--keep-work",
        action="store_true",
        help="keep generated inputs, outputs and client folders for inspection",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the result files; exit 1 if any row failed."""
    given = sys.argv[1:] if argv is None else argv
    if scale.wants_scale(given):  # --cases scale: its own options (benchmarks/scale.py)
        return scale.main(given)
    parser = build_parser()
    args = parser.parse_args(argv)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1:
        parser.error("--reps must be at least 1")
    all_cases = make_cases(
        args.quick,
        args.small_count,
        args.latency_ms,
        args.large_mib,
        args.xlarge_mib,
        args.xxlarge_mib,
        args.multi_mib,
    )
    keys = args.cases or (QUICK_CASE_KEYS if args.quick else CASE_KEYS)
    opts = Options(
        quick=args.quick,
        cases=[case for k in keys for case in all_cases[k]],
        tools=[t for t in TOOLS if t in args.tools],
        s3=args.s3,
        work_dir=args.work_dir.resolve(),
        floor_bytes=(args.floor_mib or (256 if args.quick else 1024)) * MIB,
        reps=reps,
        keep_work=args.keep_work,
        warm=not args.no_warm,
    )
    if any(case.link_mbit_s for case in opts.cases):
        problem = preflight()
        if problem:
            parser.exit(2, f"python -m benchmarks: {problem}\n")
    results = run_benchmark(opts)
    machine = machine_info(
        {
            "command": "python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv),
            "s3": opts.s3,
            "tools": f"{OURS} (this checkout), {V401} (PyPI), {BOTO3} (TransferConfig with our "
            "part size and max_concurrent_uploads)",
            "disk_free_gib": round(shutil.disk_usage(opts.work_dir).free / (1 << 30), 1),
            "reps": reps,
            "page_cache_warmup": "2 x case bytes + 256 MiB before every measured command"
            if opts.warm
            else "off (--no-warm)",
        }
    )
    out = args.results_dir or (
        BENCH_DIR / "results" / "quick" if args.quick else BENCH_DIR / "results"
    )
    out.mkdir(parents=True, exist_ok=True)
    rows, floors = results.rows, results.floors
    write_json(out / "latest.json", rows, floors, machine, results.skipped)
    write_markdown(out / "latest.md", rows, floors, machine, results.skipped)
    if write_png(out / "latest.png", rows, floors, opts.log):
        opts.log(f"wrote {out / 'latest.png'}")
    opts.log(f"wrote {out / 'latest.json'} and {out / 'latest.md'}")
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
