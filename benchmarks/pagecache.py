"""Page-cache write cost on long-free versus just-freed memory: why the harness warms up.

    python -m benchmarks.pagecache [--mib 800] [--idle 6] [--rounds 2] [--dir DIR]

Writes ``--mib`` MiB into new 8 MiB files (1 MiB ``pwrite`` calls, no ``fsync``) and
deletes them, in three conditions, and prints the CPU seconds (user + sys) of the writing:

- ``after idle``: after ``--idle`` seconds without any writing;
- ``right after deleting``: at once after the previous round's files were deleted;
- ``after idle + warm-up``: after ``--idle`` seconds, then the harness's warm-up
  (:func:`benchmarks.env.warm_page_cache` of the same size plus 25 %).

On a virtual machine whose balloon driver reports free memory to the host (free page
reporting), the first condition costs several times more kernel CPU than the other two;
on bare metal the three are about equal.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.env import warm_page_cache
from benchmarks.model import GIB, MIB

FILE_SIZE = 8 * MIB
CHUNK = MIB


def write_files(folder: Path, total: int, file_size: int = FILE_SIZE, chunk: int = CHUNK) -> float:
    """Write ``total`` bytes into new files of ``file_size`` in ``folder``, delete them.

    Returns the CPU seconds (user + sys of this process) the writing took, deletion not
    included.
    """
    block = os.urandom(chunk)
    paths: list[Path] = []
    before = os.times()
    written = 0
    while written < total:
        path = folder / f".pagecache-{len(paths)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        paths.append(path)
        try:
            size = min(file_size, total - written)
            offset = 0
            while offset < size:
                offset += os.pwrite(fd, block[: min(chunk, size - offset)], offset)
        finally:
            os.close(fd)
        written += size
    after = os.times()
    for path in paths:
        path.unlink()
    return (after.user - before.user) + (after.system - before.system)


def measure(
    folder: Path,
    total: int,
    idle: float,
    rounds: int,
    sleep: Callable[[float], None] = time.sleep,
) -> list[tuple[str, float]]:
    """``(condition, CPU seconds)`` for each condition, ``rounds`` times each."""
    rows: list[tuple[str, float]] = []
    for _ in range(rounds):
        sleep(idle)
        rows.append(("after idle", write_files(folder, total)))
        rows.append(("right after deleting", write_files(folder, total)))
        sleep(idle)
        warm_page_cache(folder, total + total // 4)
        rows.append(("after idle + warm-up", write_files(folder, total)))
    return rows


def main(argv: list[str] | None = None) -> int:
    """Print the CPU seconds per condition and per GiB."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pagecache", description=__doc__)
    parser.add_argument("--mib", type=int, default=800, help="MiB written per round")
    parser.add_argument("--idle", type=float, default=6.0, help="seconds of idling")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three conditions")
    parser.add_argument(
        "--dir", type=Path, default=Path.cwd(), help="folder for the files (default: here)"
    )
    args = parser.parse_args(argv)
    total = args.mib * MIB
    print(f"{'condition':<24} {'CPU s':>7} {'CPU-s/GiB':>10}")
    for condition, cpu in measure(args.dir, total, args.idle, args.rounds):
        print(f"{condition:<24} {cpu:7.2f} {cpu * GIB / total:10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
