"""First-come-first-served connection slots, without ``asyncio.Semaphore``'s coroutines.

aiohttp's pool is not first come, first served (a released connection goes to whoever
asks next), so the middleware queues attempts here first. ``asyncio.Semaphore`` does that,
but ``async with`` costs two coroutines and a method layer per attempt; here a free slot
is an integer decrement (``take_now``) and only a full house builds a future to wait on.

A slot handed to a waiter that is cancelled before it runs is passed on, never lost; a
cancelled waiter leaves the queue. Order: waiters are served in the order they queued, and
nobody takes a free slot ahead of a waiter.

Imports: asyncio only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque


class Slots:
    """``limit`` slots: ``if not slots.take_now(): await slots.take()`` … ``slots.give()``."""

    __slots__ = ("_free", "_waiters", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, not {limit}")
        self.limit = limit
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def free(self) -> int:
        return self._free

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def take_now(self) -> bool:
        """Take a slot if one is free and nobody is queued before us."""
        if self._free and not self._waiters:
            self._free -= 1
            return True
        return False

    async def take(self) -> None:
        """Queue for a slot (after ``take_now`` said no)."""
        if self.take_now():
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.give()  # handed a slot just as we were cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # give() may have skipped it already
                    self._waiters.remove(waiter)
            raise

    def give(self) -> None:
        """Hand the slot back: to the first waiter still waiting, else to the free count."""
        waiters = self._waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1
