"""The one scheduler of the transfer engine: bounded workers, shared buffers, strict order.

Both directions move a file as numbered parts (upload parts, download ranges), and a
download can also be streamed. All three run through :func:`run_parts`:

* ``workers`` tasks in one ``asyncio.TaskGroup``; each takes a buffer from the run's
  :class:`BufferPool` first and only then the next part, so the lowest unfinished part
  always holds a buffer: a part that waits for its turn (ordered hashing, ordered
  writes) can never starve the pool, and memory is ``buffers × size`` bytes whatever the
  file size;
* the first real error cancels the other workers and is raised unwrapped
  (:func:`first_cause`); ``on_error`` runs first, so threads waiting for their turn are
  released (:meth:`InOrder.abort`).

:class:`InOrder` gives turns strictly in part order (1, 2, 3, ...) to coroutines
(``async with order.turn(n)``) and to worker threads (:meth:`InOrder.wait` /
:meth:`InOrder.advance`); :class:`OrderedDigest` is a SHA-256 fed in part order
through it. :func:`run_bounded` maps a coroutine function over items with a bound
(files of a batch).
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Executor
from contextlib import asynccontextmanager
from typing import TypeVar

__all__ = [
    "BufferPool",
    "InOrder",
    "OrderAborted",
    "OrderedDigest",
    "first_cause",
    "run_bounded",
    "run_parts",
]

T = TypeVar("T")
R = TypeVar("R")
P = TypeVar("P")


class OrderAborted(RuntimeError):
    """The ordered sequence was aborted because another part failed."""


def first_cause(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The exception that explains a failed task group.

    Follow-up failures (:class:`OrderAborted`, cancellations of sibling tasks) are
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
        if not isinstance(exc, OrderAborted | asyncio.CancelledError):
            return exc
    return leaves[0]


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


async def run_parts(
    parts: Sequence[P],
    handle: Callable[[P, bytearray], Awaitable[None]],
    *,
    workers: int,
    buffers: BufferPool,
    buffer_size: int,
    on_error: Callable[[], None] | None = None,
) -> None:
    """Call ``handle(part, buffer)`` for every part, ``workers`` at a time, in one TaskGroup.

    Parts are taken in the given order, each after its worker got a buffer of at least
    ``buffer_size`` bytes from ``buffers``.

    Raises:
        BaseException: the first real error of any ``handle`` call (after ``on_error``);
            an interruption (``CancelledError``, ``KeyboardInterrupt``) also runs
            ``on_error`` and propagates.
    """
    pending = iter(parts)

    async def worker() -> None:
        while True:
            async with buffers.get(buffer_size) as buffer:
                part = next(pending, None)
                if part is None:
                    return
                await handle(part, buffer)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(workers, len(parts))):
                group.create_task(worker())
    except BaseException as error:
        if on_error is not None:
            on_error()
        if isinstance(error, BaseExceptionGroup):
            raise first_cause(error) from None
        raise


async def run_bounded(items: Iterable[T], limit: int, func: Callable[[T], Awaitable[R]]) -> list[R]:
    """Run ``func`` over ``items`` with at most ``limit`` at once; results in input order.

    Uses ``limit`` worker tasks in one ``asyncio.TaskGroup`` (never one task per item).

    Raises:
        BaseException: the first exception of ``func``, unwrapped; the rest are cancelled.
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


class InOrder:
    """Turns strictly in number order (1, 2, 3, ...), for coroutines and threads alike.

    Whoever holds turn ``n`` calls :meth:`advance` when done; a repeated number is
    ignored. :meth:`abort` releases every waiter with :class:`OrderAborted`, so nothing
    waits forever after a failure.
    """

    def __init__(self, first: int = 1) -> None:
        self._next = first
        self._aborted = False
        self._cond = threading.Condition()
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    @property
    def next(self) -> int:
        """The number whose turn it is."""
        return self._next

    def wait(self, number: int) -> None:
        """Block the calling thread until every lower number has passed.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        with self._cond:
            self._cond.wait_for(lambda: self._aborted or self._next >= number)
            if self._aborted:
                raise OrderAborted("aborted")

    async def wait_async(self, number: int) -> None:
        """Wait on the event loop until every lower number has passed.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        loop = asyncio.get_running_loop()
        with self._cond:
            if self._aborted:
                raise OrderAborted("aborted")
            if self._next >= number:
                return
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((number, loop, future))
        await future

    def advance(self, number: int) -> None:
        """Mark ``number`` as passed (ignored unless it is the current turn)."""
        with self._cond:
            if number != self._next:
                return
            self._next += 1
            self._cond.notify_all()
            due = [w for w in self._waiters if w[0] <= self._next]
            self._waiters = [w for w in self._waiters if w[0] > self._next]
        for _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future, None)

    def abort(self) -> None:
        """Release every waiting thread and coroutine with :class:`OrderAborted`."""
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
            due, self._waiters = self._waiters, []
        for _, loop, future in due:
            loop.call_soon_threadsafe(_resolve, future, OrderAborted("aborted"))

    @asynccontextmanager
    async def turn(self, number: int) -> AsyncIterator[None]:
        """``async with order.turn(n):`` runs the block in turn ``n``, then passes it on.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        await self.wait_async(number)
        yield
        self.advance(number)


def _resolve(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(error)


class OrderedDigest:
    """A SHA-256 fed by parallel workers strictly in part order (1, 2, 3, ...).

    Threads call :meth:`update` (it blocks until all lower part numbers are in),
    coroutines :meth:`update_async`. A part number fed before (a retried part) is
    ignored.
    """

    def __init__(self, first_part_no: int = 1) -> None:
        self._hash = hashlib.sha256()
        self._order = InOrder(first_part_no)

    def update(
        self, part_no: int, data: memoryview | bytes | bytearray, *, final: bool = True
    ) -> None:
        """Feed the bytes of ``part_no`` once its predecessors are in (blocking).

        A part may be fed in pieces: every piece but the last with ``final=False``, which
        keeps the turn with ``part_no``.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        self._order.wait(part_no)
        if part_no != self._order.next:
            return
        # Only the holder of the turn gets here; the others wait above.
        self._hash.update(data)
        if final:
            self._order.advance(part_no)

    def is_turn(self, part_no: int) -> bool:
        """Whether every part before ``part_no`` is in (``part_no`` is fed next)."""
        return self._order.next == part_no

    async def wait_turn(self, part_no: int) -> None:
        """Wait on the event loop (not in a thread) until every part before ``part_no`` is in.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        await self._order.wait_async(part_no)

    async def update_async(
        self, part_no: int, data: memoryview | bytes | bytearray, executor: Executor
    ) -> None:
        """Feed the bytes of ``part_no`` in its turn, hashing in ``executor``.

        Raises:
            OrderAborted: if :meth:`abort` was called.
        """
        await self._order.wait_async(part_no)
        if part_no != self._order.next:
            return
        await asyncio.get_running_loop().run_in_executor(executor, self._hash.update, data)
        self._order.advance(part_no)

    def abort(self) -> None:
        """Release every waiter with :class:`OrderAborted`."""
        self._order.abort()

    @property
    def parts_done(self) -> int:
        """How many parts have been fed."""
        return self._order.next - 1

    def hexdigest(self) -> str:
        """The SHA-256 (hex) of everything fed so far."""
        return self._hash.hexdigest()
