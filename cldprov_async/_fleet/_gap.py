"""``Gap``: the shared budget out of reach (Redis down, stalled, failing over), and the way back.

While Redis answers, a keeper task keeps this process listed among the budget's members (a
call at least every ``HEARTBEAT`` seconds). When a call fails, the process keeps to its
share of the window in its own gate (``_shares``: the last known limit divided among the
members it last saw), logs one warning, and probes Redis every ``PROBE_EVERY`` seconds.
The first process back proposes a window boundary at least ``GRACE`` seconds ahead; every
other one learns it from its next probe (or, if it never noticed the gap, from its next
call, which then puts it on its share too); all rejoin at that boundary, each logging one
info line that names the server holding the budget now (a promoted replica, say).

Imports: the in-process gate and the snapshot (types); ``_connect``, ``_shares``, ``_store``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from typing import Protocol

from .._gate import RateLimiter
from .._snapshot import RateLimit
from ._connect import REDIS_TIMEOUT
from ._shares import WindowClock, rejoin_at, share
from ._store import BudgetStore, Reply

log = logging.getLogger("cldprov_async")

#: Seconds between a quiet process's calls: its membership of the budget.
HEARTBEAT = 1.0
#: Seconds between probes while Redis is out of reach (jittered to 0.5x-1.5x).
PROBE_EVERY = 0.5
#: A rejoin instant is at least this far ahead, so every process probing learns it first.
GRACE = 2.0
#: The fleet switches this long after the boundary (its own gates open at +0.05 s).
SWITCH_DELAY = 0.01


class HandedBack(Exception):
    """Raised in the callers queued at this process's own gate when the fleet rejoins: they
    queue at the shared gate instead."""


class _Gate(Protocol):
    local: RateLimiter
    store: BudgetStore
    rng: random.Random

    @property
    def shared(self) -> bool: ...

    async def call(
        self, n_normal: int, n_bulk: int, n_extra: int, proposal: float = -1.0
    ) -> Reply | None: ...

    def go_local(self, give_back: bool) -> None: ...

    def go_shared(self) -> None: ...


class Gap:
    """A shared gate's membership, its fallback to a share, and its rejoin.

    Args:
        gate: The shared gate it serves.
    """

    def __init__(self, gate: _Gate) -> None:
        self._gate = gate
        self.clock = WindowClock()
        #: When the fleet rejoins the shared budget (wall seconds), once agreed.
        self.rejoin: float | None = None
        self._known: Reply | None = None  # the last reply: what a gap starts from
        self._heard = -math.inf  # loop time of the last reply
        self._keeper: asyncio.Task[None] | None = None

    @property
    def started(self) -> bool:
        """True once this process has called Redis."""
        return self._keeper is not None

    def start(self) -> None:
        """Run the keeper (membership while shared, probes while not), once."""
        if self._keeper is None or self._keeper.done():
            self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        if self._keeper is not None and not self._keeper.done():
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper

    # -- what this process learns ---------------------------------------------------------------

    def saw(self, seen: RateLimit | None) -> None:
        """An answer's snapshot: its window end tells where the boundaries are."""
        if seen is not None and seen.reset_at is not None:
            self.clock.see(seen.reset_at.timestamp())

    def heard(self, reply: Reply) -> None:
        """A reply from Redis: what the fleet knows, kept for a gap to come."""
        self._known = reply
        self._heard = asyncio.get_running_loop().time()
        if reply.last_end is not None:
            self.clock.see(reply.last_end, reply.window)

    # -- into a gap -----------------------------------------------------------------------------

    def lost(self, exc: BaseException) -> None:
        """A Redis call failed: keep to this process's share until the fleet rejoins."""
        if not self._gate.shared:
            return
        self._gate.go_local(give_back=False)
        self.rejoin = None
        log.warning(
            "the shared rate-limit budget at %s is unreachable (%s): this process keeps to %s"
            " until the fleet rejoins it",
            self._gate.store.fleet.where,
            type(exc).__name__,
            self._keep_share(self._known),
        )

    def joined(self, reply: Reply) -> None:
        """Redis answers, but the fleet is on its shares until ``reply.rejoin``: join it."""
        self._gate.go_local(give_back=True)
        self.rejoin = reply.rejoin
        log.warning(
            "the shared rate-limit budget at %s is back from a gap: this process keeps to %s"
            " until the fleet rejoins it in %.1fs",
            self._gate.store.fleet.where,
            self._keep_share(reply),
            (reply.rejoin or 0.0) - time.time(),
        )

    def _keep_share(self, known: Reply | None) -> str:
        """Hold this process's own gate to its share; say what that is."""
        if known is None:
            self._gate.local.share(None)
            return "its own gate (it never heard from the fleet)"
        self._gate.local.share(
            known.members,
            limit=known.limit,
            tokens=share(known.tokens, known.members),
            reset_at=known.last_end,
        )
        cap = share(known.limit, known.members)
        among = f"{known.members} process{'es' if known.members != 1 else ''}"
        if cap is None:
            return f"its share of the window among {among}"
        return f"its share of the window, {cap} of {known.limit} among {among},"

    # -- the keeper, and back -------------------------------------------------------------------

    async def _keep(self) -> None:
        loop = asyncio.get_running_loop()
        rng = self._gate.rng
        while True:
            if self._gate.shared:
                await asyncio.sleep(HEARTBEAT * rng.uniform(0.8, 1.2))
                if self._gate.shared and loop.time() - self._heard >= HEARTBEAT / 2:
                    await self._gate.call(0, 0, 0)
                continue
            if self.rejoin is None:
                await asyncio.sleep(PROBE_EVERY * rng.uniform(0.5, 1.5))
                await self._probe()
                continue
            pause = HEARTBEAT * rng.uniform(0.8, 1.2)
            if self.rejoin - time.time() > pause + REDIS_TIMEOUT:
                await asyncio.sleep(pause)
                await self._probe()  # membership, and the pending instant still holds
                continue
            server = await self._ready()
            await self._switch_at(self.rejoin + SWITCH_DELAY, server)

    async def _probe(self) -> None:
        """Call Redis from a gap: proposing a rejoin instant, unless one is agreed."""
        proposal = -1.0
        if self.rejoin is None:
            proposal = rejoin_at(time.time(), self.clock.last, self.clock.length, GRACE)
        reply = await self._gate.call(0, 0, 0, proposal)
        if reply is None:
            return
        if reply.rejoin is not None:
            self.rejoin = reply.rejoin
        elif self.rejoin is not None and time.time() < self.rejoin:
            self.rejoin = None  # Redis lost the instant (lost its state again): propose anew

    async def _ready(self) -> str:
        """Before the switch: drop idle connections (they may lead to a dead server) and
        learn which server holds the budget now."""
        fleet = self._gate.store.fleet
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                await fleet.drop_idle()
                return await fleet.server_for(self._gate.store.keys[0])
        except Exception:
            return "a server not known yet"

    async def _switch_at(self, wall: float, server: str) -> None:
        """Rejoin at ``wall``: a plain timer callback, so it runs before this process's own
        gate opens the new window (its timer is due later)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()

        def switch() -> None:
            self.rejoin = None
            self._gate.go_shared()
            log.info(
                "rejoined the shared rate-limit budget at %s at the window boundary (served by %s)",
                self._gate.store.fleet.where,
                server,
            )
            done.set_result(None)

        timer = loop.call_at(loop.time() + (wall - time.time()), switch)
        try:
            await done
        finally:
            timer.cancel()
