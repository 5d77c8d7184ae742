"""``--shard K/N``: split a batch into N deterministic shares, process only the K-th.

Shares are balanced by bytes: the items are sorted largest first (ties by name) and each
goes to the share with the fewest bytes so far (ties: the lowest share number). The
assignment depends only on the names and sizes, so every host of a cluster job array
computes the same shares from the same manifest; together the N shares hold every item
exactly once. ``K`` is 1-based, as ``$SLURM_ARRAY_TASK_ID`` with ``--array=1-N``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["Shard", "parse_shard", "select_share"]

T = TypeVar("T")

_SHARD = re.compile(r"^\s*(\d{1,6})\s*/\s*(\d{1,6})\s*$")


@dataclass(frozen=True)
class Shard:
    """The ``index``-th (1-based) of ``count`` shares."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str) -> Shard:
    """Parse ``"K/N"`` with ``1 <= K <= N``.

    Raises:
        ValueError: with a message for the user, if the text is not of that form.
    """
    match = _SHARD.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not of the form K/N (e.g. 2/8)")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"{text!r}: N must be at least 1")
    if not 1 <= index <= count:
        raise ValueError(f"{text!r}: K must be between 1 and N (shares are numbered from 1)")
    return Shard(index, count)


def select_share(
    items: Sequence[T], shard: Shard, *, size: Callable[[T], int], name: Callable[[T], str]
) -> list[T]:
    """The items of ``shard`` in their original order (largest-first greedy by ``size``).

    Sizes are in bytes; ``name`` must be unique per item (alias, accession): it breaks
    ties so that the assignment is the same on every host.
    """
    loads = [0] * shard.count
    chosen: set[int] = set()
    order = sorted(range(len(items)), key=lambda i: (-size(items[i]), name(items[i])))
    for position in order:
        target = min(range(shard.count), key=lambda s: (loads[s], s))
        loads[target] += size(items[position])
        if target == shard.index - 1:
            chosen.add(position)
    return [item for i, item in enumerate(items) if i in chosen]
