"""FIFO connection slots: served in order, never over the limit, nothing lost on cancellation."""

from __future__ import annotations

import asyncio
import random

import pytest

from cldprov_async._slots import Slots


async def _use(slots: Slots, log: list[int], me: int, hold: float, inside: list[int]) -> int:
    if not slots.take_now():
        await slots.take()
    try:
        log.append(me)
        inside.append(me)
        assert len(inside) <= slots.limit
        await asyncio.sleep(hold)
        return me
    finally:
        inside.remove(me)
        slots.give()


def _all_back(slots: Slots) -> None:
    assert slots.free == slots.limit
    assert slots.waiting == 0


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError, match="limit"):
        Slots(0)


async def test_free_slots_are_taken_without_waiting_and_given_back() -> None:
    slots = Slots(2)
    assert slots.take_now() and slots.take_now()
    assert not slots.take_now()
    slots.give()
    assert slots.take_now()
    slots.give()
    slots.give()
    _all_back(slots)


async def test_normal_use_keeps_the_limit_and_serves_in_order() -> None:
    slots = Slots(3)
    log: list[int] = []
    inside: list[int] = []
    tasks = []
    for i in range(40):
        tasks.append(asyncio.create_task(_use(slots, log, i, 0.001 * (i % 4), inside)))
        await asyncio.sleep(0)  # queue in a known order
    assert await asyncio.gather(*tasks) == list(range(40))
    assert log == list(range(40))  # first come, first served
    _all_back(slots)


async def test_nobody_jumps_the_queue_when_a_slot_frees() -> None:
    slots = Slots(1)
    assert slots.take_now()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to the waiter, not to the free count
    assert not slots.take_now()
    await waiter
    slots.give()
    _all_back(slots)


async def test_cancelled_while_waiting_leaves_the_queue() -> None:
    slots = Slots(1)
    assert slots.take_now()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    assert slots.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0
    slots.give()
    _all_back(slots)


async def test_cancelled_just_after_being_handed_a_slot_passes_it_on() -> None:
    slots = Slots(1)
    assert slots.take_now()
    first = asyncio.create_task(slots.take())
    second = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    slots.give()  # handed to `first`, which has not run yet
    first.cancel()  # and now cancelled before it could
    with pytest.raises(asyncio.CancelledError):
        await first
    await asyncio.wait_for(second, 5)  # the slot went on to `second`
    slots.give()
    _all_back(slots)


async def test_cancelled_after_give_skipped_it() -> None:
    """A waiter cancelled, then skipped by give() before its own handler ran: no error."""
    slots = Slots(1)
    assert slots.take_now()
    waiter = asyncio.create_task(slots.take())
    await asyncio.sleep(0)
    waiter.cancel()  # its future is cancelled now; the task has not run yet
    slots.give()  # pops and skips the cancelled future, frees the slot
    with pytest.raises(asyncio.CancelledError):
        await waiter
    _all_back(slots)


async def test_one_task_holding_two_slots() -> None:
    slots = Slots(2)
    await slots.take()
    await slots.take()
    blocked = asyncio.create_task(slots.take())
    await asyncio.sleep(0.01)
    assert not blocked.done()
    slots.give()
    await asyncio.wait_for(blocked, 5)
    slots.give()
    slots.give()
    _all_back(slots)


async def test_order_under_random_cancellations_and_nothing_lost() -> None:
    rng = random.Random(15)
    slots = Slots(4)
    log: list[int] = []
    inside: list[int] = []
    tasks = []
    for i in range(300):
        tasks.append(
            asyncio.create_task(_use(slots, log, i, rng.choice([0, 0.001, 0.003]), inside))
        )
        await asyncio.sleep(0)
    victims = set(rng.sample(range(300), 90))
    for step, i in enumerate(sorted(victims, key=lambda _: rng.random())):
        tasks[i].cancel()
        if step % 10 == 0:
            await asyncio.sleep(0.001)
    results = await asyncio.gather(*tasks, return_exceptions=True)
    served = [i for i, r in enumerate(results) if r == i]
    assert all(r == i or isinstance(r, asyncio.CancelledError) for i, r in enumerate(results))
    assert set(range(300)) - victims <= set(served)
    assert log == sorted(log)  # whoever got a slot got it in queue order
    _all_back(slots)
