"""Result files: ``latest.json`` (rows), ``latest.md`` (table + machine), ``latest.png``."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["machine_info", "write_json", "write_markdown", "write_png"]

MIB = 1 << 20
TOOL_ORDER = [
    "ghga-connector",
    "ghga-connector-2step",
    "ghga-connector-4.0.1",
    "boto3",
    "crypto-floor",
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
    }
    info.update(extra or {})
    return info


def _sorter(rows: list[dict[str, Any]]) -> Callable[[dict[str, Any]], tuple[int, int, int, int]]:
    """Order rows as run: case (first appearance), upload before download, tool order."""
    case_rank = {case: i for i, case in enumerate(dict.fromkeys(r["case"] for r in rows))}

    def key(row: dict[str, Any]) -> tuple[int, int, int, int]:
        tool = row["tool"]
        return (
            1 if tool == "crypto-floor" else 0,
            case_rank[row["case"]],
            0 if row["direction"] == "upload" else 1,
            TOOL_ORDER.index(tool) if tool in TOOL_ORDER else 99,
        )

    return key


def write_json(path: Path, rows: list[dict[str, Any]]) -> None:
    """The rows as a JSON list (machine and settings are in the Markdown file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sorted(rows, key=_sorter(rows)), indent=1) + "\n")


def _fmt(value: Any, spec: str, scale: float = 1.0) -> str:
    if value is None:
        return "–"
    return format(value / scale, spec)


def write_markdown(path: Path, rows: list[dict[str, Any]], machine: dict[str, Any]) -> None:
    """A table of all rows, the failures and the machine the run was on."""
    lines = [
        "# Benchmark results",
        "",
        f"Run: `{machine.get('command', 'python -m benchmarks')}` on {machine['date']}.",
        "",
        "MB/s = 10^6 bytes of plaintext per wall-clock second. CPU = user + sys seconds of the "
        "client's whole process tree; CPU-s/GiB = CPU per GiB of plaintext; ×floor = that "
        "divided by the crypto floor of the same direction (measured in this run on one "
        "core). Peak RSS = largest sum of the RSS of the client's process tree (sampled every "
        "50 ms). vs 4.0.1 and vs boto3 are throughput ratios within the same case and "
        "direction. Downloads include decryption to plaintext (boto3: plain download); "
        "`ghga-connector` downloads with `--decrypt`, `ghga-connector-2step` runs `download` "
        "then `decrypt`, 4.0.1 runs `download` then `decrypt`.",
        "",
    ]
    reused = sorted({(r["case"], r["reused_from"]) for r in rows if r.get("reused_from")})
    if reused:
        copies = ", ".join(f"`{case}` from `{source}`" for case, source in reused)
        lines += [
            "† Copied, not measured: boto3 talks to S3 directly and never calls the GHGA API, "
            "so its rows in a case with API latency are copied from the case without latency "
            f"over the same files ({copies}; `reused_from` in latest.json).",
            "",
        ]
    lines += [
        "| tool | case | direction | MB/s | wall s | CPU s | CPU-s/GiB | ×floor | peak RSS MiB "
        "| vs 4.0.1 | vs boto3 | ok |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in sorted(rows, key=_sorter(rows)):
        lines.append(
            "| "
            + " | ".join(
                [
                    r["tool"] + (" †" if r.get("reused_from") else ""),
                    r["case"],
                    r["direction"],
                    _fmt(r.get("mb_per_s"), ".1f"),
                    _fmt(r.get("wall_s"), ".2f"),
                    _fmt(r.get("cpu_s"), ".2f"),
                    _fmt(r.get("cpu_s_per_gib"), ".2f"),
                    _fmt(r.get("cpu_vs_floor"), ".2f"),
                    _fmt(r.get("peak_rss_bytes"), ".0f", MIB),
                    _fmt(r.get("ratio_vs_401"), ".2f"),
                    _fmt(r.get("ratio_vs_boto3"), ".2f"),
                    "yes" if r["ok"] else "**no**",
                ]
            )
            + " |"
        )
    failures = [r for r in rows if not r["ok"]]
    if failures:
        lines += ["", "## Failures", ""]
        for r in sorted(failures, key=_sorter(rows)):
            error = " ".join(str(r.get("error") or "").split())[:400]
            lines.append(f"- {r['tool']} {r['case']} {r['direction']}: {error}")
    floors = [r for r in rows if r["tool"] == "crypto-floor"]
    if floors:
        lines += ["", "## Crypto floor", ""]
        for r in floors:
            lines.append(
                f"- {r['direction']}: {r['cpu_s_per_gib']:.2f} CPU-s/GiB with {r.get('aead')} "
                f"(all measured: {r.get('cpu_s_per_gib_by_aead')}); upload = ChaCha20-Poly1305 "
                "over 64 KiB segments + plaintext SHA-256 + per-part MD5 and SHA-256; download "
                "= decryption + plaintext SHA-256."
                if r["direction"] == "upload"
                else f"- {r['direction']}: {r['cpu_s_per_gib']:.2f} CPU-s/GiB with "
                f"{r.get('aead')} (all measured: {r.get('cpu_s_per_gib_by_aead')})."
            )
    lines += ["", "## Machine and settings", ""]
    for key, value in machine.items():
        lines.append(f"- {key}: {value}")
    path.write_text("\n".join(lines) + "\n")


def write_png(path: Path, rows: list[dict[str, Any]], warn: Callable[[str], None]) -> bool:
    """Throughput and peak-memory bars per case/direction and tool; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        warn("matplotlib is not installed: latest.png skipped (pip install matplotlib)")
        return False
    data = [r for r in rows if r["tool"] != "crypto-floor"]
    groups: list[tuple[str, str]] = []
    for r in sorted(data, key=_sorter(data)):
        g = (r["case"], r["direction"])
        if g not in groups:
            groups.append(g)
    tools = [t for t in TOOL_ORDER if any(r["tool"] == t for r in data)]
    index = {(r["tool"], r["case"], r["direction"]): r for r in data}
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 1.6 * len(groups) + 2), 8), sharex=True)
    width = 0.8 / max(1, len(tools))
    for ax, key, scale, label in (
        (axes[0], "mb_per_s", 1.0, "throughput, MB/s (plaintext)"),
        (axes[1], "peak_rss_bytes", MIB, "peak RSS of client tree, MiB"),
    ):
        for i, tool in enumerate(tools):
            xs, ys, colors = [], [], []
            for j, (case, direction) in enumerate(groups):
                row = index.get((tool, case, direction))
                if row is None:
                    continue
                value = row.get(key)
                xs.append(j + (i - (len(tools) - 1) / 2) * width)
                ys.append((value or 0) / scale if row["ok"] else 0)
                colors.append(None if row["ok"] else "red")
            bars = ax.bar(xs, ys, width, label=tool)
            for bar, color in zip(bars, colors, strict=True):
                if color:
                    bar.set_hatch("//")
                    bar.set_edgecolor(color)
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(fontsize="small", ncols=2)
    axes[1].set_xticks(range(len(groups)))
    axes[1].set_xticklabels([f"{c}\n{d}" for c, d in groups], fontsize="small")
    floor = {r["direction"]: r for r in rows if r["tool"] == "crypto-floor"}
    title = "ghga-connector vs 4.0.1 vs boto3 (same sandbox, same run)"
    if floor:
        title += " — crypto floor: " + ", ".join(
            f"{d} {r['cpu_s_per_gib']:.1f} CPU-s/GiB" for d, r in floor.items()
        )
    fig.suptitle(title, fontsize="medium")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
