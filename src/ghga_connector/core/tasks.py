"""Helpers for structured concurrency with ``asyncio.TaskGroup``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from typing import TypeVar

from ghga_connector.c4gh.segments import DigestAborted

__all__ = ["BufferPool", "Turnstile", "first_cause", "run_bounded"]

T = TypeVar("T")
R = TypeVar("R")


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that explains a failed task group.

    Follow-up failures (:class:`DigestAborted`, cancellations of sibling tasks) are
    skipped in favour of the first real error.
    """
    leaves: list[BaseException] = []

    def collect(exc: BaseException) -> None:
        if isinstance(exc, BaseExceptionGroup):
            for inner in exc.exceptions:
                collect(inner)
        else:
            leaves.append(exc)

    collect(group)
    for exc in leaves:
        if not isinstance(exc, DigestAborted | asyncio.CancelledError):
            return exc
    return leaves[0]


async def run_bounded(items: Iterable[T], limit: int, func: Callable[[T], Awaitable[R]]) -> list[R]:
    """Run ``func`` over ``items`` with at most ``limit`` at once; results in input order.

    Uses ``limit`` worker tasks in one ``asyncio.TaskGroup`` (never one task per item).
    The first exception cancels the rest and is re-raised unwrapped.

    Raises:
        Exception: the first exception raised by ``func`` (not an exception group).
    """
    indexed = list(enumerate(items))
    results: list[R | None] = [None] * len(indexed)
    pending = iter(indexed)

    async def worker() -> None:
        for index, item in pending:
            results[index] = await func(item)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(limit, len(indexed))):
                group.create_task(worker())
    except BaseExceptionGroup as error:
        raise first_cause(error) from None
    return results  # type: ignore[return-value]


class Turnstile:
    """Lets coroutines pass strictly in number order (1, 2, 3, ...), waiting on the loop."""

    def __init__(self, first: int = 1) -> None:
        self._next = first
        self._cond = asyncio.Condition()

    async def wait(self, number: int) -> None:
        """Wait until every lower number has passed."""
        async with self._cond:
            await self._cond.wait_for(lambda: self._next >= number)

    async def advance(self, number: int) -> None:
        """Mark ``number`` as passed (a repeated number is ignored)."""
        async with self._cond:
            if number == self._next:
                self._next += 1
                self._cond.notify_all()


class BufferPool:
    """At most ``count`` buffers in use at once, shared by all files of a run, reused.

    This is what bounds a run's memory: ``count × size`` bytes however many files and
    parts there are. Buffers grow to the largest size asked for and are never shrunk.
    """

    def __init__(self, count: int) -> None:
        self._slots = asyncio.Semaphore(count)
        self._free: list[bytearray] = []

    @asynccontextmanager
    async def get(self, size: int) -> AsyncIterator[bytearray]:
        """A buffer of at least ``size`` bytes, returned to the pool afterwards."""
        async with self._slots:
            buffer = self._free.pop() if self._free else bytearray(0)
            if len(buffer) < size:
                buffer = bytearray(size)
            try:
                yield buffer
            finally:
                self._free.append(buffer)
