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
import logging
import math
import random
import time
from typing import Protocol

from .._gate import RateLimiter
from .._snapshot import RateLimit
from ._connect import REDIS_TIMEOUT, SLOW_TIMEOUT
from ._shares import WindowClock, rejoin_at, share
from ._store import BudgetStore, Reply

log = logging.getLogger("cldprov_async")

#: Seconds between a quiet process's calls: its membership of the budget.
HEARTBEAT = 1.0
#: Seconds between probes while Redis is out of reach (jittered to 0.5x-1.5x).
PROBE_EVERY = 0.5
#: A rejoin instant is at least this far ahead, so every process probing learns it first
#: (a probe waits up to 0.75 s, and a cluster client's first call after a failover maps the
#: slots and reads the command table again: up to a second under load).
GRACE = 3.0
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
        self._seen: tuple[int, float] | None = None  # (remaining, window end) from answers
        self._heard = -math.inf  # loop time of the last reply
        self._keeper: asyncio.Task[None] | None = None
        self._switch: asyncio.TimerHandle | None = None  # at the rejoin instant
        self._announce: asyncio.Task[None] | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        """True once this process has called Redis."""
        return self._keeper is not None

    def start(self) -> None:
        """Run the keeper (membership while shared, probes while not), once."""
        if not self._stopped and (self._keeper is None or self._keeper.done()):
            self._keeper = asyncio.get_running_loop().create_task(self._keep())

    async def stop(self) -> None:
        """Stop the keeper (within ``SLOW_TIMEOUT``, whatever redis-py does with a cancel)."""
        self._stopped = True
        self._plan(None)
        tasks = {t for t in (self._keeper, self._announce) if t is not None and not t.done()}
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=SLOW_TIMEOUT)

    # -- what this process learns ---------------------------------------------------------------

    def saw(self, seen: RateLimit | None) -> None:
        """An answer's snapshot: its window end tells where the boundaries are."""
        if seen is not None and seen.reset_at is not None:
            end = seen.reset_at.timestamp()
            self.clock.see(end)
            if seen.remaining is None:
                return
            last = self._seen  # the least the server said is left of the latest window
            if (
                last is None
                or end > last[1] + 0.5
                or (end >= last[1] - 0.5 and seen.remaining < last[0])
            ):
                self._seen = (seen.remaining, end)

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
        self._plan(None)
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
        kept = self._keep_share(reply)
        self._plan(reply.rejoin)
        log.warning(
            "the shared rate-limit budget at %s is back from a gap: this process keeps to %s"
            " until the fleet rejoins it in %.1fs",
            self._gate.store.fleet.where,
            kept,
            (reply.rejoin or 0.0) - time.time(),
        )

    def _keep_share(self, known: Reply | None) -> str:
        """Hold this process's own gate to its share; say what that is."""
        if known is None:  # it knows of no other process: alone, until a rejection says not
            self._gate.local.share(1)
            return "the whole window (it never heard from the fleet; less after a rejection)"
        left, ends = known.tokens, known.ends
        if ends is None or ends <= time.time():  # that window is over: a probe will tell
            left = ends = None
        if self._seen is not None and self._seen[1] > time.time():  # answers may be newer
            ends = self._seen[1]
            left = self._seen[0] if left is None else min(left, self._seen[0])
        now = share(left, known.members)
        self._gate.local.share(known.members, limit=known.limit, tokens=now, reset_at=ends)
        cap = share(known.limit, known.members)
        among = f"{known.members} process{'es' if known.members != 1 else ''}"
        if cap is None:
            return f"its share of the window among {among}"
        this = "" if now is None else f" ({now} more in this one)"
        return f"its share of the window, {cap} of {known.limit} among {among}{this},"

    # -- the keeper, and back -------------------------------------------------------------------

    async def _keep(self) -> None:
        try:
            await self._keep_going()
        except Exception:  # a bug of ours: say so; calls go on, on a share if in a gap
            log.exception("the shared rate-limit gate's keeper failed")

    async def _keep_going(self) -> None:
        loop = asyncio.get_running_loop()
        rng = self._gate.rng
        while not self._stopped:
            if self._gate.shared:
                await asyncio.sleep(HEARTBEAT * rng.uniform(0.8, 1.2))
                if self._gate.shared and loop.time() - self._heard >= HEARTBEAT / 2:
                    await self._gate.call(0, 0, 0)
            elif self.rejoin is None:
                await asyncio.sleep(PROBE_EVERY * rng.uniform(0.5, 1.5))
                await self._probe()
            else:  # the instant is agreed: stay listed, and check it still holds
                await asyncio.sleep(HEARTBEAT * rng.uniform(0.8, 1.2))
                if not self._gate.shared and self.rejoin is not None:
                    await self._probe()

    async def _probe(self) -> None:
        """Call Redis from a gap: proposing a rejoin instant, unless one is agreed."""
        proposal = -1.0
        if self.rejoin is None:
            proposal = rejoin_at(time.time(), self.clock.last, self.clock.length, GRACE)
        reply = await self._gate.call(0, 0, 0, proposal)
        if reply is None or self._gate.shared:
            return
        self._gate.local.at_least(reply.members)  # processes that joined since: less each
        if reply.rejoin is None:
            if self.rejoin is not None:
                self._plan(None)  # Redis lost the instant (lost its state again): propose anew
            return
        if self.rejoin is None:  # Redis is back: idle connections may lead to a dead server
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    await self._gate.store.fleet.drop_idle()
            except Exception:
                pass
        self._plan(reply.rejoin)  # passed already if this probe came late: at once

    def _plan(self, instant: float | None) -> None:
        """Switch back at ``instant`` (wall seconds), or not at all (None). A plain timer, so
        it runs before this process's own gate opens the new window (due 0.05 s later)."""
        if instant == self.rejoin and (instant is None or self._switch is not None):
            return
        if self._switch is not None:
            self._switch.cancel()
            self._switch = None
        self.rejoin = instant
        if not self._gate.shared:
            self._gate.local.close_at(instant)
        if instant is not None and not self._stopped:
            loop = asyncio.get_running_loop()
            at = loop.time() + (instant - time.time()) + SWITCH_DELAY
            self._switch = loop.call_at(at, self._rejoin)

    def _rejoin(self) -> None:
        self._switch = None
        self.rejoin = None
        self._gate.go_shared()
        self._announce = asyncio.get_running_loop().create_task(self._say_rejoined())

    async def _say_rejoined(self) -> None:
        """One info line, naming the server that holds the budget now (a promoted replica)."""
        fleet = self._gate.store.fleet
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                server = await fleet.server_for(self._gate.store.keys[0])
        except Exception:
            server = "a server not known yet"
        log.info("rejoined the shared rate-limit budget at %s (served by %s)", fleet.where, server)
