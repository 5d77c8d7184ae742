"""Large transfers on paper, from measured per-GiB costs: ``python -m benchmarks.paper``.

For each file size (default 200 GB and 2 TB) and direction: the encrypted size, part or
range size and count (the client's own planning functions), journal size, memory bound,
client CPU time, and wall time at 1 and 10 Gbit/s, with the arithmetic written out as
Markdown (``docs/performance.md`` quotes it). The per-GiB CPU costs and the measured
peak RSS come from a ``latest.json`` (ours, the largest one-client case that passed) or
from the command line.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from ghga_connector.core.planning import (
    CIPHER_SEGMENT_SIZE,
    body_size,
    download_range_size,
    encrypted_size,
    upload_part_size,
)

__all__ = ["Measured", "PaperCase", "estimate", "from_results", "main", "render"]

GIB = 1 << 30
MIB = 1 << 20
LINKS = {"1 Gbit/s": 125e6, "10 Gbit/s": 1250e6}
"""Link speeds in bytes per second (no protocol overhead)."""
UPLOAD_JOURNAL_LINE = 136
"""Bytes per part line of an upload journal: ``{"part": 9995, "md5": <32 hex>, "sha256":
<64 hex>}`` and a newline."""
DOWNLOAD_JOURNAL_LINE = 7
"""Bytes per range line of a download journal at most: a range number below 10^6 and a
newline."""


@dataclass(frozen=True)
class Measured:
    """Per-GiB client costs and memory as measured (``source`` says where from)."""

    upload_cpu_s_per_gib: float
    download_cpu_s_per_gib: float
    upload_peak_rss: int
    download_peak_rss: int
    source: str
    part_size: int = 16 * MIB
    uploads_in_flight: int = 6
    crypto_threads: int = 2
    downloads_in_flight: int = 6
    #: Extra client CPU per GiB of a *streamed* upload part (a part larger than its
    #: part buffer) that is read again after its PUT for the file's SHA-256: one more
    #: read and one more SHA-256 per segment. Measured by hand on the benchmark machine
    #: (256 MiB file, 64 MiB parts through a 16 MiB part buffer, one core): 4.97
    #: CPU-s/GiB streamed with the SHA-256 fed while sending, 6.11 read again.
    reread_cpu_s_per_gib: float = 1.14


@dataclass(frozen=True)
class PaperCase:
    """One direction for one file size, computed."""

    direction: str
    plain: int
    stored: int
    unit: int
    count: int
    journal_bytes: int
    buffers_bytes: int
    peak_rss: int
    cpu_s: float
    ceiling_mb_per_s_per_core: float
    #: Upload only: parts are larger than the part buffer and sent as streams.
    streamed: bool = False


def estimate(plain: int, m: Measured) -> list[PaperCase]:
    """Upload and download of one file of ``plain`` bytes."""
    gib = plain / GIB
    enc = encrypted_size(plain)
    part = upload_part_size(m.part_size, enc)
    parts = -(-enc // part)
    # A part larger than the part buffer (the configured part size) is streamed through
    # it, so the buffers, and with them the peak RSS, do not grow with the parts.
    part_buffer = upload_part_size(m.part_size, 0)
    streamed = part > part_buffer
    up_buffers = (m.uploads_in_flight + m.crypto_threads) * part_buffer
    up_cpu = m.upload_cpu_s_per_gib + (m.reread_cpu_s_per_gib if streamed else 0.0)
    body = body_size(plain)
    rng = download_range_size(m.part_size)
    ranges = -(-body // rng)
    down_buffers = 2 * m.downloads_in_flight * rng
    return [
        PaperCase(
            "upload",
            plain,
            enc,
            part,
            parts,
            UPLOAD_JOURNAL_LINE * parts,
            up_buffers,
            m.upload_peak_rss,
            gib * up_cpu,
            GIB / up_cpu / 1e6,
            streamed,
        ),
        PaperCase(
            "download",
            plain,
            body,
            rng,
            ranges,
            DOWNLOAD_JOURNAL_LINE * ranges,
            down_buffers,
            m.download_peak_rss,
            gib * m.download_cpu_s_per_gib,
            GIB / m.download_cpu_s_per_gib / 1e6,
        ),
    ]


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.2f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def render(sizes: list[int], m: Measured) -> str:
    """The arithmetic as Markdown."""
    lines = [
        f"Measured inputs ({m.source}): upload {m.upload_cpu_s_per_gib:.2f} CPU-s/GiB, "
        f"download {m.download_cpu_s_per_gib:.2f} CPU-s/GiB; peak RSS {m.upload_peak_rss / MIB:.0f} MiB "
        f"(upload) and {m.download_peak_rss / MIB:.0f} MiB (download) with "
        f"{m.part_size / MIB:.0f} MiB parts, {m.uploads_in_flight} upload parts in flight + "
        f"{m.crypto_threads} crypto threads, {m.downloads_in_flight} download ranges in flight.",
        "",
    ]
    for plain in sizes:
        lines += [f"### {plain / 1e9:,.0f} GB ({plain / GIB:,.1f} GiB)", ""]
        for c in estimate(plain, m):
            gib = plain / GIB
            segments = c.unit // CIPHER_SEGMENT_SIZE
            if c.direction == "upload":
                lines.append(
                    f"- **upload**: encrypted size {c.stored:,} B (+28 B per 64 KiB segment, "
                    f"+124 B envelope). Parts: {m.part_size / MIB:.0f} MiB rounded to "
                    f"whole segments would need {-(-c.stored // upload_part_size(m.part_size, 0)):,} "
                    f"parts; at most 10,000 are allowed, so part size = "
                    f"⌈({c.stored:,} − 124) / 9,995⌉ rounded up to whole 65,564-B segments "
                    f"= {c.unit:,} B ({segments:,} segments, {c.unit / MIB:.2f} MiB) → "
                    f"{c.count:,} parts."
                    if c.unit > upload_part_size(m.part_size, 0)
                    else f"- **upload**: encrypted size {c.stored:,} B. Parts of {c.unit:,} B "
                    f"({segments} segments) → {c.count:,} parts (under 10,000)."
                )
                lines.append(
                    f"  - journal: {c.count:,} part lines × {UPLOAD_JOURNAL_LINE} B = "
                    f"{c.journal_bytes / 1e6:.2f} MB (one line appended per part)."
                )
                part_buffer = upload_part_size(m.part_size, 0)
                lines.append(
                    f"  - memory: ({m.uploads_in_flight} + {m.crypto_threads}) part buffers × "
                    f"{part_buffer / MIB:.2f} MiB = {c.buffers_bytes / MIB:,.0f} MiB, whatever "
                    f"the size"
                    + (
                        f" (each {c.unit / MIB:.2f} MiB part is streamed through its buffer in "
                        f"two windows of {part_buffer // 2 // CIPHER_SEGMENT_SIZE} segments)"
                        if c.streamed
                        else ""
                    )
                    + f"; peak RSS as measured, {c.peak_rss / MIB:.0f} MiB."
                )
            else:
                lines.append(
                    f"- **download**: object body {c.stored:,} B in ranges of {c.unit:,} B "
                    f"({segments} segments; ranges have no count limit) → {c.count:,} ranges."
                )
                lines.append(
                    f"  - journal: {c.count:,} range lines × ≤ {DOWNLOAD_JOURNAL_LINE} B ≤ "
                    f"{c.journal_bytes / 1e6:.2f} MB."
                )
                lines.append(
                    f"  - memory: 2 × {m.downloads_in_flight} range buffers × "
                    f"{c.unit / MIB:.2f} MiB = {c.buffers_bytes / MIB:.0f} MiB, whatever the size; "
                    f"peak RSS as measured, {c.peak_rss / MIB:.0f} MiB."
                )
            cpu = m.upload_cpu_s_per_gib if c.direction == "upload" else m.download_cpu_s_per_gib
            if c.streamed:
                lines.append(
                    f"  - streamed parts whose SHA-256 turn has not come when they start (with "
                    f"{m.uploads_in_flight} in flight, nearly all) are read once more after their "
                    f"PUT: at most +{m.reread_cpu_s_per_gib:.2f} CPU-s/GiB (measured by hand)."
                )
                cpu += m.reread_cpu_s_per_gib
            lines.append(
                f"  - client CPU: {gib:,.1f} GiB × {cpu:.2f} CPU-s/GiB = {c.cpu_s:,.0f} CPU-s "
                f"({_duration(c.cpu_s)}); CPU ceiling {GIB / 1e6:,.1f} MB / {cpu:.2f} s = "
                f"{c.ceiling_mb_per_s_per_core:.0f} MB/s per core."
            )
            walls = []
            for name, speed in LINKS.items():
                link_s = c.stored / speed
                one_core = max(link_s, c.cpu_s)
                walls.append(
                    f"{name}: link {c.stored / 1e9:,.1f} GB / {speed / 1e6:,.0f} MB/s = "
                    f"{_duration(link_s)}; with one core of client CPU max({_duration(link_s)}, "
                    f"{_duration(c.cpu_s)}) = **{_duration(one_core)}**"
                    + (
                        f" (CPU-bound: filling the link takes {c.cpu_s / link_s:.1f} cores)"
                        if c.cpu_s > link_s
                        else ""
                    )
                )
            lines.append("  - wall time: " + "; ".join(walls) + ".")
        lines.append("")
    return "\n".join(lines)


def from_results(path: Path) -> Measured:
    """Ours' medians from the largest one-client case that passed in a ``latest.json``."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or "results" not in data:
        raise ValueError(f"{path}: not written by this harness (no 'results'); give the costs")
    found: dict[str, dict[str, object]] = {}
    for r in data["results"]:
        if r["tool"] != "ghga-connector" or not r["ok"] or r["files"] != 1 or r["clients"] != 1:
            continue
        if r["api_latency_ms"] or r["direction"] not in ("upload", "download"):
            continue
        best = found.get(r["direction"])
        if best is None or int(r["bytes"]) > int(best["bytes"]):  # type: ignore[call-overload]
            found[r["direction"]] = r
    if set(found) != {"upload", "download"}:
        raise ValueError(f"{path}: no passing one-file case of ghga-connector in both directions")
    up, down = found["upload"], found["download"]
    return Measured(
        upload_cpu_s_per_gib=float(up["cpu_s_per_gib"]["median"]),  # type: ignore[index]
        download_cpu_s_per_gib=float(down["cpu_s_per_gib"]["median"]),  # type: ignore[index]
        upload_peak_rss=int(up["peak_rss_bytes"]["median"]),  # type: ignore[index]
        download_peak_rss=int(down["peak_rss_bytes"]["median"]),  # type: ignore[index]
        source=f"{path.name}, {up['case']} and {down['case']}, medians",
    )


def main(argv: list[str] | None = None) -> int:
    """Print the paper cases as Markdown."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paper", description=__doc__)
    parser.add_argument("--results", type=Path, help="a latest.json of this harness")
    parser.add_argument("--upload-cpu", type=float, help="CPU-s per GiB, upload")
    parser.add_argument("--download-cpu", type=float, help="CPU-s per GiB, download")
    parser.add_argument("--upload-rss-mib", type=float, help="peak RSS of an upload, MiB")
    parser.add_argument("--download-rss-mib", type=float, help="peak RSS of a download, MiB")
    parser.add_argument(
        "--sizes", default="200e9,2e12", help="file sizes in bytes (default 200e9,2e12)"
    )
    args = parser.parse_args(argv)
    if args.results:
        try:
            measured = from_results(args.results)
        except (OSError, ValueError, KeyError) as exc:
            parser.exit(2, f"python -m benchmarks.paper: {exc}\n")
    else:
        given = (args.upload_cpu, args.download_cpu, args.upload_rss_mib, args.download_rss_mib)
        if None in given:
            parser.error("give --results, or all of --upload-cpu, --download-cpu, --*-rss-mib")
        measured = Measured(
            args.upload_cpu,
            args.download_cpu,
            int(args.upload_rss_mib * MIB),
            int(args.download_rss_mib * MIB),
            "given on the command line",
        )
    sizes = [int(float(s)) for s in args.sizes.split(",")]
    sys.stdout.write(render(sizes, measured))
    return 0


if __name__ == "__main__":
    sys.exit(main())
