"""core/scheduler.py: bounded workers over shared buffers, turns in order, first real error."""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ghga_connector.core.scheduler import (
    BufferPool,
    InOrder,
    OrderAborted,
    OrderedDigest,
    first_cause,
    run_bounded,
    run_parts,
)


async def _turns() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


async def test_run_parts_bounds_workers_and_buffers_and_hands_out_parts_in_order() -> None:
    pool = BufferPool(3)
    started: list[int] = []
    active = peak = 0
    buffers: set[int] = set()

    async def handle(part: int, buffer: bytearray) -> None:
        nonlocal active, peak
        started.append(part)
        buffers.add(id(buffer))
        assert len(buffer) >= 64
        active += 1
        peak = max(peak, active)
        await _turns()
        active -= 1

    await run_parts(list(range(1, 21)), handle, workers=5, buffers=pool, buffer_size=64)
    assert started == list(range(1, 21))
    assert peak == 3  # five workers, but only three buffers
    assert len(buffers) == 3  # buffers are reused, not reallocated


async def test_a_part_waiting_for_its_turn_never_starves_the_pool() -> None:
    """Parts finish in reverse order but write in order with fewer buffers than parts."""
    order = InOrder()
    written: list[int] = []

    async def handle(part: int, buffer: bytearray) -> None:
        for _ in range(10 - part):  # later parts arrive sooner
            await asyncio.sleep(0)
        async with order.turn(part):
            written.append(part)

    await asyncio.wait_for(
        run_parts(list(range(1, 10)), handle, workers=4, buffers=BufferPool(2), buffer_size=1),
        timeout=10,
    )
    assert written == list(range(1, 10))


async def test_the_first_real_error_is_raised_unwrapped_and_on_error_runs() -> None:
    aborted: list[bool] = []
    order = InOrder()

    async def handle(part: int, buffer: bytearray) -> None:
        if part == 3:
            raise ValueError("part 3 is damaged")
        async with order.turn(part):  # part 4 waits for 3, which never comes
            pass

    def on_error() -> None:
        aborted.append(True)
        order.abort()

    with pytest.raises(ValueError, match="part 3 is damaged"):
        await asyncio.wait_for(
            run_parts(
                [1, 2, 3, 4, 5],
                handle,
                workers=3,
                buffers=BufferPool(3),
                buffer_size=1,
                on_error=on_error,
            ),
            timeout=10,
        )
    assert aborted == [True]


async def test_on_error_runs_on_interruption_too() -> None:
    aborted: list[bool] = []

    async def handle(part: int, buffer: bytearray) -> None:
        await asyncio.sleep(60)

    task = asyncio.create_task(
        run_parts(
            [1, 2],
            handle,
            workers=2,
            buffers=BufferPool(2),
            buffer_size=1,
            on_error=lambda: aborted.append(True),
        )
    )
    await _turns()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert aborted == [True]


async def test_no_parts_no_work() -> None:
    async def handle(part: int, buffer: bytearray) -> None:
        raise AssertionError("called")

    await run_parts([], handle, workers=4, buffers=BufferPool(1), buffer_size=1)


def test_first_cause_skips_follow_up_failures() -> None:
    real = KeyError("real")
    group = BaseExceptionGroup(
        "x", [OrderAborted("aborted"), asyncio.CancelledError(), ExceptionGroup("y", [real])]
    )
    assert first_cause(group) is real
    only_follow_ups = BaseExceptionGroup("x", [OrderAborted("a"), asyncio.CancelledError()])
    assert isinstance(first_cause(only_follow_ups), OrderAborted)


async def test_run_bounded_keeps_input_order_and_bound() -> None:
    active = peak = 0

    async def double(n: int) -> int:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.001 * (5 - n % 5))
        active -= 1
        return 2 * n

    assert await run_bounded(range(12), 3, double) == [2 * n for n in range(12)]
    assert peak == 3


async def test_run_bounded_raises_the_first_error_unwrapped() -> None:
    async def fail(n: int) -> int:
        if n == 2:
            raise RuntimeError("two")
        await asyncio.sleep(0)
        return n

    with pytest.raises(RuntimeError, match="two"):
        await run_bounded(range(5), 2, fail)


async def test_in_order_serves_coroutines_and_threads_alike() -> None:
    order = InOrder()
    seen: list[int] = []
    lock = threading.Lock()

    def in_thread(number: int) -> None:
        order.wait(number)
        with lock:
            seen.append(number)
        order.advance(number)

    async def in_loop(number: int) -> None:
        async with order.turn(number):
            seen.append(number)

    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=4) as pool:
        jobs = []
        for number in range(8, 0, -1):  # started in reverse order
            if number % 2:
                jobs.append(loop.run_in_executor(pool, in_thread, number))
            else:
                jobs.append(asyncio.ensure_future(in_loop(number)))
        await asyncio.wait_for(asyncio.gather(*jobs), timeout=10)
    assert seen == list(range(1, 9))
    assert order.next == 9


async def test_abort_releases_waiting_coroutines_and_later_callers() -> None:
    order = InOrder()
    waiting = asyncio.ensure_future(order.wait_async(3))
    await _turns()
    assert not waiting.done()
    order.abort()
    with pytest.raises(OrderAborted):
        await asyncio.wait_for(waiting, timeout=5)
    with pytest.raises(OrderAborted):
        await order.wait_async(1)
    with pytest.raises(OrderAborted):
        order.wait(1)


def test_advance_ignores_anything_but_the_current_turn() -> None:
    order = InOrder()
    order.advance(2)
    assert order.next == 1
    order.advance(1)
    order.advance(1)
    assert order.next == 2


async def test_ordered_digest_from_coroutines_in_any_order() -> None:
    digest = OrderedDigest()
    chunks = {n: bytes([n]) * 1000 for n in range(1, 7)}
    with ThreadPoolExecutor(max_workers=2) as pool:
        await asyncio.wait_for(
            asyncio.gather(
                *(digest.update_async(n, chunks[n], pool) for n in sorted(chunks, reverse=True))
            ),
            timeout=10,
        )
        await digest.update_async(3, b"a retried part is ignored", pool)
    assert digest.parts_done == 6
    assert (
        digest.hexdigest() == hashlib.sha256(b"".join(chunks[n] for n in range(1, 7))).hexdigest()
    )


async def test_ordered_digest_takes_a_part_in_pieces_and_keeps_its_turn() -> None:
    """``final=False`` pieces keep the turn with the part; the next part's coroutine
    waits on the event loop (``wait_turn``) until the last piece is in."""
    digest = OrderedDigest()
    assert digest.is_turn(1) and not digest.is_turn(2)
    digest.update(1, b"a", final=False)
    digest.update(1, b"b", final=False)
    waiter = asyncio.ensure_future(digest.wait_turn(2))
    await asyncio.sleep(0)
    assert not waiter.done() and digest.is_turn(1)
    digest.update(1, b"c")
    await asyncio.wait_for(waiter, timeout=10)
    assert digest.is_turn(2) and digest.parts_done == 1
    digest.update(2, b"d")
    digest.update(1, b"a retried part is ignored")
    assert digest.hexdigest() == hashlib.sha256(b"abcd").hexdigest()
