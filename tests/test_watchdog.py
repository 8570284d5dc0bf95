"""The shared watchdog behaves as ``asyncio.timeout`` does, for many blocks on one timer.

Expiry, normal exit, cancellation from outside, cancellation exactly at the deadline,
nesting, deadlines out of order, order under random cancellations, and nothing left held.
Timing margins are wide (the machine is shared): deadlines of 0.05-0.2 s against blocks
that sleep for seconds.
"""

from __future__ import annotations

import asyncio
import math
import random
import time

import pytest
import virtual_time

from cldprov_async._watchdog import Watch, Watchdog

LONG = 30.0  # a block that would outlive any test if not cut short


async def _held(dog: Watchdog, limit: float | None, seconds: float) -> str:
    with dog.watch(limit):
        await asyncio.sleep(seconds)
    return "done"


def _idle(dog: Watchdog) -> None:
    assert len(dog) == 0
    assert dog._timer is None or dog._timer.cancelled() or not dog._ordered


async def test_expiry_raises_timeout_error() -> None:
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await _held(dog, 0.05, LONG)
    assert 0.04 <= loop.time() - started < 5.0
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    _idle(dog)


async def test_expired_watch_says_so_and_normal_exit_does_not() -> None:
    dog = Watchdog()
    watch = dog.watch(0.05)
    assert isinstance(watch, Watch)
    with pytest.raises(TimeoutError):
        with watch:
            await asyncio.sleep(LONG)
    assert watch.expired()
    ok = dog.watch(5.0)
    assert isinstance(ok, Watch)
    with ok:
        await asyncio.sleep(0)
    assert not ok.expired()
    _idle(dog)


async def test_normal_exit_returns_and_leaves_nothing() -> None:
    dog = Watchdog()
    results = await asyncio.gather(*(_held(dog, 5.0, 0.001) for _ in range(200)))
    assert results == ["done"] * 200
    _idle(dog)
    # the result of the block is untouched and no cancellation is left pending
    assert asyncio.current_task().cancelling() == 0  # type: ignore[union-attr]
    await asyncio.sleep(0.01)


async def test_none_timeout_never_fires() -> None:
    dog = Watchdog()
    assert await _held(dog, None, 0.05) == "done"
    assert len(dog) == 0


async def test_exceptions_in_the_block_pass_through() -> None:
    dog = Watchdog()
    with pytest.raises(KeyError):
        with dog.watch(5.0):
            await asyncio.sleep(0)
            raise KeyError("x")
    _idle(dog)


async def test_cancellation_from_outside_stays_a_cancellation() -> None:
    dog = Watchdog()
    task = asyncio.create_task(_held(dog, 5.0, LONG))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    _idle(dog)


async def test_cancellation_exactly_at_the_deadline_stays_a_cancellation() -> None:
    """The timer and the caller cancel in the same loop turn: the caller wins, as in asyncio."""
    dog = Watchdog()
    task = asyncio.create_task(_held(dog, 0.05, LONG))
    await asyncio.sleep(0.01)
    watch = next(iter(dog._ordered))
    # Run the watchdog's own expiry and the caller's cancel back to back, before the task
    # runs again: both requests reach it together.
    assert dog._timer is not None
    dog._timer.cancel()
    loop = asyncio.get_running_loop()
    while loop.time() < watch.deadline:
        await asyncio.sleep(0.005)
    dog._fire()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert watch.expired()
    _idle(dog)


async def test_cancellation_at_the_deadline_matches_asyncio_timeout() -> None:
    """Same race through asyncio.timeout, for reference: both give CancelledError."""
    outcome: dict[str, str] = {}

    async def body(kind: str, dog: Watchdog) -> None:
        cm = asyncio.timeout(0.05) if kind == "asyncio" else dog.watch(0.05)
        try:
            if kind == "asyncio":
                async with cm:  # type: ignore[union-attr]
                    await asyncio.sleep(LONG)
            else:
                with cm:  # type: ignore[union-attr]
                    await asyncio.sleep(LONG)
        except BaseException as exc:
            outcome[kind] = type(exc).__name__
            raise

    loop = asyncio.get_running_loop()
    for kind in ("asyncio", "watchdog"):
        dog = Watchdog()
        task = asyncio.create_task(body(kind, dog))
        await asyncio.sleep(0)  # the task is inside its block now
        loop.call_at(loop.time() + 0.04, task.cancel)
        # Hold the loop past both moments: its next turn runs the deadline's timer and the
        # caller's cancel together, before the task runs again. Deterministic, not a race.
        time.sleep(0.2)  # noqa: ASYNC251 - blocking on purpose
        with pytest.raises(asyncio.CancelledError):
            await task
    assert outcome["asyncio"] == outcome["watchdog"]


async def test_nested_inner_shorter() -> None:
    dog = Watchdog()
    seen = []
    with dog.watch(5.0):
        with pytest.raises(TimeoutError):
            with dog.watch(0.05):
                await asyncio.sleep(LONG)
        seen.append("outer goes on")
        await asyncio.sleep(0.01)
    assert seen == ["outer goes on"]
    _idle(dog)


async def test_nested_outer_shorter() -> None:
    dog = Watchdog()
    inner_saw: list[str] = []
    with pytest.raises(TimeoutError):
        with dog.watch(0.05):
            try:
                with dog.watch(5.0):
                    await asyncio.sleep(LONG)
            except BaseException as exc:
                inner_saw.append(type(exc).__name__)
                raise
    assert inner_saw == ["CancelledError"]  # the inner block is not the one timing out
    _idle(dog)


async def test_with_asyncio_timeout_around_it() -> None:
    dog = Watchdog()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.05):
            with dog.watch(5.0):
                await asyncio.sleep(LONG)
    _idle(dog)


@virtual_time.on_virtual_time  # a loaded machine cannot stretch a block past its deadline
async def test_deadlines_out_of_order_each_fire_on_time() -> None:
    """Shorter timeouts entered after longer ones (a call's own timeout_ms) go to the heap."""
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    ended: dict[float, float] = {}

    async def one(limit: float) -> None:
        start = loop.time()
        with pytest.raises(TimeoutError):
            await _held(dog, limit, LONG)
        ended[limit] = loop.time() - start

    tasks = []
    for timeout in (0.4, 0.3, 0.2, 0.1):
        tasks.append(asyncio.create_task(one(timeout)))
        await asyncio.sleep(0)
    assert len(dog._early) == 3
    await asyncio.gather(*tasks)
    for timeout, took in ended.items():
        assert timeout - 0.01 <= took < timeout + 3.0, (timeout, took)
    order = sorted(ended, key=ended.__getitem__)
    assert order == [0.1, 0.2, 0.3, 0.4]
    _idle(dog)


@virtual_time.on_virtual_time  # a loaded machine cannot stretch a block past its deadline
async def test_random_cancellations_keep_order_and_leave_nothing() -> None:
    """Many blocks, some finishing, some cancelled from outside, some timing out: each gets
    exactly its own outcome, expiries come in deadline order, nothing is left behind."""
    rng = random.Random(15)
    dog = Watchdog()
    loop = asyncio.get_running_loop()
    expired_at: list[tuple[float, float]] = []  # (deadline, when it was noticed)

    async def one(limit: float, work: float) -> str:
        # The watch's own deadline: a time read here, a line before it, may be a preemption
        # earlier on a loaded machine (the loop's clock moves with real time while it runs).
        deadline = math.nan
        try:
            with dog.watch(limit) as watch:
                assert watch is not None
                deadline = watch.deadline
                await asyncio.sleep(work)
        except TimeoutError:
            expired_at.append((deadline, loop.time()))
            return "timeout"
        return "done"

    plans = []
    for _ in range(300):
        timeout = rng.choice([0.1, 0.15, 0.2, rng.uniform(0.05, 0.3)])
        work = rng.choice([0.0, 0.01, LONG])
        plans.append((timeout, work))
    tasks = [asyncio.create_task(one(t, w)) for t, w in plans]
    victims = rng.sample(range(len(tasks)), 60)
    await asyncio.sleep(0.03)
    for i in victims:
        tasks[i].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    for i, ((_timeout, work), result) in enumerate(zip(plans, results, strict=True)):
        if i in victims and work == LONG:
            assert isinstance(result, asyncio.CancelledError), (i, result)
        elif i in victims:
            assert result == "done" or isinstance(result, asyncio.CancelledError)
        elif work == LONG:
            assert result == "timeout", (i, result)
        else:
            assert result == "done", (i, result)
    # Noticed in deadline order (ties and a loop turn apart aside) and never early.
    for deadline, noticed in expired_at:
        assert noticed >= deadline - 0.001
    # Expiries reach their tasks in deadline order (the tasks run in the order cancelled).
    assert [d for d, _ in expired_at] == sorted(d for d, _ in expired_at)
    assert len(dog) == 0 or all(e[2].expired() or not e[2].task for e in dog._early)
    assert not dog._ordered


async def test_early_heap_is_compacted() -> None:
    """Finished out-of-order watches do not pile up until their deadline."""
    dog = Watchdog()
    with dog.watch(60.0):  # holds the ordered deadline far out: later ones are "early"
        for _ in range(1000):
            with dog.watch(30.0):
                await asyncio.sleep(0)
        assert len(dog._early) <= 2 * 64 + 2
    _idle_or_early_finished(dog)


def _idle_or_early_finished(dog: Watchdog) -> None:
    assert not dog._ordered
    assert all(not e[2].task for e in dog._early)


async def test_a_watch_cannot_be_entered_twice() -> None:
    dog = Watchdog()
    watch = dog.watch(1.0)
    with watch:
        pass
    with pytest.raises(RuntimeError):
        with watch:
            pass


def test_outside_a_task_is_an_error() -> None:
    dog = Watchdog()
    with pytest.raises(RuntimeError):
        with dog.watch(1.0):
            pass


def test_a_new_loop_starts_afresh() -> None:
    dog = Watchdog()
    for _ in range(2):
        with pytest.raises(TimeoutError):
            asyncio.run(_held(dog, 0.05, LONG))
        assert asyncio.run(_held(dog, 1.0, 0.001)) == "done"
    assert not dog._ordered
