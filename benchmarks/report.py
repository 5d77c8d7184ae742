"""Result files: ``latest.json``, ``latest.md`` (tables + machine), ``latest.png`` (bars).

Every figure is the median over the repetitions that passed, with the minimum and
maximum beside it when there was more than one; ratios use the medians.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from benchmarks.model import MIB, FloorRow, Row, Spread, Summary, summarize
from benchmarks.wan import wan_table

__all__ = [
    "TOOL_ORDER",
    "bar_series",
    "fmt_spread",
    "machine_info",
    "markdown",
    "ordered",
    "write_json",
    "write_markdown",
    "write_png",
]

TOOL_ORDER = [
    "ghga-connector",
    "ghga-connector-2step",
    "ghga-connector-4.0.1",
    "boto3",
]


def machine_info(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Cores, CPU model, memory, Python version and date of this run."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
                break
    except (OSError, ValueError):
        pass
    info = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "memory_gib": round(mem / (1 << 30), 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()]
        if hasattr(os, "getloadavg")
        else None,
    }
    info.update(extra or {})
    return info


def ordered(summaries: Sequence[Summary]) -> list[Summary]:
    """As run: case (first appearance), upload before download, then tool order."""
    case_rank = {case: i for i, case in enumerate(dict.fromkeys(s.case for s in summaries))}

    def key(s: Summary) -> tuple[int, int, int]:
        return (
            case_rank[s.case],
            0 if s.direction == "upload" else 1,
            TOOL_ORDER.index(s.tool) if s.tool in TOOL_ORDER else 99,
        )

    return sorted(summaries, key=key)


def write_json(
    path: Path,
    rows: Sequence[Row],
    floors: Sequence[FloorRow],
    machine: dict[str, Any],
    skipped: Sequence[str] = (),
) -> None:
    """``{"machine", "crypto_floor", "skipped", "results"}``; one result per tool x case x
    direction with its spreads, ratios and every repetition."""
    data = {
        "machine": machine,
        "crypto_floor": [f.to_json() for f in floors],
        "skipped": list(skipped),
        "results": [s.to_json() for s in ordered(summarize(rows, floors))],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1) + "\n")


def fmt_spread(spread: Spread | None, spec: str, scale: float = 1.0) -> str:
    """``115.2`` for one value, ``115.2 (110.0–120.1)`` for a median with its range."""
    if spread is None:
        return "–"
    median = format(spread.median / scale, spec)
    if spread.n == 1 or spread.low == spread.high:
        return median
    return f"{median} ({format(spread.low / scale, spec)}–{format(spread.high / scale, spec)})"


def _fmt(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(value / scale, spec)


def markdown(
    rows: Sequence[Row],
    floors: Sequence[FloorRow],
    machine: dict[str, Any],
    skipped: Sequence[str] = (),
) -> str:
    """The whole ``latest.md``."""
    summaries = ordered(summarize(rows, floors))
    reps = max((len(s.reps) for s in summaries), default=0)
    lines = [
        "# Benchmark results",
        "",
        f"Run: `{machine.get('command', 'python -m benchmarks')}` on {machine['date']}, "
        f"{reps} repetition(s), tool order rotated by one per repetition.",
        "",
        "Each figure is the median over the repetitions that passed their check, with the "
        "minimum–maximum in brackets when there were several; ratios divide medians. "
        "MB/s = 10^6 bytes of plaintext per wall-clock second (start-up included). CPU = "
        "user + sys seconds of the client's process tree; CPU-s/GiB = per GiB of plaintext; "
        "×floor = that divided by the crypto floor of the same direction (measured in this "
        "run on one core); transport = CPU-s/GiB minus the floor. Peak RSS = the client's "
        "own peak (largest of the sampled sum of VmRSS over its process tree and its VmHWM; "
        "the harness's memory is not included). vs 4.0.1 and vs boto3 are throughput ratios "
        "within the same case and direction. Downloads include decryption to plaintext "
        "(boto3: plain download): `ghga-connector` downloads with `--decrypt` in one pass, "
        "`ghga-connector-2step` runs `download` then `decrypt` like 4.0.1 does. Checks: "
        "every GHGA upload is decrypted by the sandbox's Data Hub step and its archived "
        "SHA-256 compared with the input's; boto3's upload is checked by its download; "
        "every download output is compared with the inputs by SHA-256.",
        "",
    ]
    reused = sorted({(s.case, s.reused_from) for s in summaries if s.reused_from})
    if reused:
        copies = ", ".join(f"`{case}` from `{source}`" for case, source in reused)
        lines += [
            "† Copied, not measured: boto3 talks to S3 directly and never calls the GHGA API, "
            "so its rows in a case with API latency are copied from the case without latency "
            f"over the same files ({copies}; `reused_from` in latest.json).",
            "",
        ]
    lines += [
        "| tool | case | direction | MB/s | wall s | CPU-s/GiB | ×floor | transport CPU-s/GiB "
        "| peak RSS MiB | vs 4.0.1 | vs boto3 | ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        lines.append(
            "| "
            + " | ".join(
                [
                    s.tool + (" †" if s.reused_from else ""),
                    s.case,
                    s.direction,
                    fmt_spread(s.spread("mb_per_s"), ".1f"),
                    fmt_spread(s.spread("wall_s"), ".2f"),
                    fmt_spread(s.spread("cpu_s_per_gib"), ".2f"),
                    _fmt(s.cpu_vs_floor, ".2f"),
                    _fmt(s.transport_cpu_s_per_gib, ".2f"),
                    fmt_spread(s.spread("peak_rss_bytes"), ".0f", MIB),
                    _fmt(s.ratio_vs_401, ".2f"),
                    _fmt(s.ratio_vs_boto3, ".2f"),
                    "yes" if s.ok else f"**no** ({sum(not r.ok for r in s.reps)} of {len(s.reps)})",
                ]
            )
            + " |"
        )
    lines += _per_file_table(summaries)
    lines += _multi_client_table(summaries)
    lines += wan_table(summaries)
    failures = [(s, r) for s in summaries for r in s.reps if not r.ok]
    if failures:
        lines += ["", "## Failures", ""]
        for s, r in failures:
            error = " ".join(str(r.error or "").split())[:400]
            lines.append(f"- {s.tool} {s.case} {s.direction} #{r.rep}: {error}")
    if skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {reason}" for reason in skipped]
    if floors:
        lines += ["", "## Crypto floor", ""]
        for f in floors:
            work = (
                "ChaCha20-Poly1305 over 64 KiB segments + plaintext SHA-256 + per-part MD5 "
                "and SHA-256"
                if f.direction == "upload"
                else "decryption + plaintext SHA-256"
            )
            lines.append(
                f"- {f.direction}: {f.cpu_s_per_gib:.2f} CPU-s/GiB with {f.aead} = "
                f"{f.bytes / f.cpu_s / 1e6:.0f} MB/s per core ({work}; all measured: "
                f"{f.by_aead})."
            )
    lines += ["", "## Machine and settings", ""]
    for key, value in machine.items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines) + "\n"


def _per_file_table(summaries: Sequence[Summary]) -> list[str]:
    """Client CPU, GHGA API round trips and server CPU per file, for many-file cases."""
    many = [s for s in summaries if s.files > 1 and s.clients == 1]
    if not many:
        return []
    lines = [
        "",
        "## Per file (many-file cases)",
        "",
        "Medians divided by the number of files. API calls = GHGA API requests (WKVS, WPS, "
        "UCS, DCS) the sandbox answered while the command ran, from its access log; sandbox "
        "and S3 CPU = CPU seconds of the sandbox process and of SeaweedFS meanwhile "
        "(boto3 never calls the API).",
        "",
        "| tool | case | direction | client CPU ms/file | API calls/file | sandbox CPU ms/file "
        "| S3 CPU ms/file | wall ms/file |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for s in many:
        lines.append(
            f"| {s.tool}{' †' if s.reused_from else ''} | {s.case} | {s.direction} "
            f"| {_fmt(s.per_file('cpu_s'), '.0f', 1e-3)} "
            f"| {_fmt(s.per_file('api_calls'), '.1f')} "
            f"| {_fmt(s.per_file('sandbox_cpu_s'), '.0f', 1e-3)} "
            f"| {_fmt(s.per_file('s3_cpu_s'), '.0f', 1e-3)} "
            f"| {_fmt(s.per_file('wall_s'), '.0f', 1e-3)} |"
        )
    return lines


def _multi_client_table(summaries: Sequence[Summary]) -> list[str]:
    """Aggregate throughput and fairness of several clients at once vs one client."""
    multi = [s for s in summaries if s.clients > 1]
    if not multi:
        return []
    lines = [
        "",
        "## Several clients at once",
        "",
        "N client processes at once, each with its own file(s) and box or work package, on "
        "the same sandbox; aggregate MB/s = all bytes / (last end − first start). ×1 client "
        "= that over the same tool's MB/s with one client on one of the same files. "
        "Per-client MB/s: slowest–fastest client (median repetition); fairness = Jain's "
        "index of the clients' MB/s (1 = equal). Peak RSS: the largest single client.",
        "",
        "| tool | case | direction | aggregate MB/s | ×1 client | per-client MB/s | fairness "
        "| peak RSS MiB | ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in multi:
        good = s.good
        per_client = "–"
        if good:
            mid = sorted(good, key=lambda r: r.mb_per_s or 0)[len(good) // 2]
            speeds = [c.mb_per_s for c in mid.clients if c.mb_per_s is not None]
            if speeds:
                per_client = f"{min(speeds):.1f}–{max(speeds):.1f}"
        lines.append(
            f"| {s.tool} | {s.case} | {s.direction} | {fmt_spread(s.spread('mb_per_s'), '.1f')} "
            f"| {_fmt(s.vs_one_client, '.2f')} | {per_client} "
            f"| {fmt_spread(s.spread('fairness'), '.3f')} "
            f"| {fmt_spread(s.spread('peak_rss_bytes'), '.0f', MIB)} | {'yes' if s.ok else '**no**'} |"
        )
    return lines


def write_markdown(
    path: Path,
    rows: Sequence[Row],
    floors: Sequence[FloorRow],
    machine: dict[str, Any],
    skipped: Sequence[str] = (),
) -> None:
    """Write :func:`markdown` to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(rows, floors, machine, skipped))


def bar_series(
    summaries: Sequence[Summary], attr: str, scale: float = 1.0
) -> tuple[list[tuple[str, str]], dict[str, list[tuple[int, float, float, float, bool]]]]:
    """Plot data: the (case, direction) groups in order, and per tool a list of
    ``(group index, median, median - min, max - median, ok)`` (values divided by
    ``scale``; zeros for a failed summary)."""
    groups: list[tuple[str, str]] = []
    for s in summaries:
        if (s.case, s.direction) not in groups:
            groups.append((s.case, s.direction))
    series: dict[str, list[tuple[int, float, float, float, bool]]] = {}
    for tool in [t for t in TOOL_ORDER if any(s.tool == t for s in summaries)]:
        points = []
        for s in summaries:
            if s.tool != tool:
                continue
            j = groups.index((s.case, s.direction))
            spread = s.spread(attr)
            if not s.ok or spread is None:
                points.append((j, 0.0, 0.0, 0.0, False))
                continue
            med = spread.median / scale
            points.append((j, med, med - spread.low / scale, spread.high / scale - med, True))
        series[tool] = points
    return groups, series


def write_png(
    path: Path,
    rows: Sequence[Row],
    floors: Sequence[FloorRow],
    warn: Callable[[str], None],
) -> bool:
    """Throughput and peak-memory bars (median, min–max whiskers); False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warn("matplotlib is not installed: latest.png skipped (pip install matplotlib)")
        return False
    summaries = ordered(summarize(rows, floors))
    groups, _ = bar_series(summaries, "mb_per_s")
    n_tools = max(1, len({s.tool for s in summaries}))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.4 * len(groups) + 2), 8), sharex=True)
    width = 0.8 / n_tools
    for ax, attr, scale, label in (
        (axes[0], "mb_per_s", 1.0, "throughput, MB/s (plaintext), median and min–max"),
        (axes[1], "peak_rss_bytes", MIB, "peak RSS of the client, MiB"),
    ):
        _, series = bar_series(summaries, attr, scale)
        for i, (tool, points) in enumerate(series.items()):
            xs = [j + (i - (n_tools - 1) / 2) * width for j, *_ in points]
            ys = [p[1] for p in points]
            yerr = [[p[2] for p in points], [p[3] for p in points]]
            bars = ax.bar(xs, ys, width, label=tool, yerr=yerr, capsize=2)
            for bar, point in zip(bars, points, strict=True):
                if not point[4]:
                    bar.set_hatch("//")
                    bar.set_edgecolor("red")
        ax.set_ylabel(label, fontsize="small")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small", ncols=2)
    axes[1].set_xticks(range(len(groups)))
    axes[1].set_xticklabels([f"{c}\n{d}" for c, d in groups], fontsize="x-small")
    title = "ghga-connector vs 4.0.1 vs boto3 (same sandbox, same run)"
    if floors:
        title += " — crypto floor: " + ", ".join(
            f"{f.direction} {f.cpu_s_per_gib:.1f} CPU-s/GiB" for f in floors
        )
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
