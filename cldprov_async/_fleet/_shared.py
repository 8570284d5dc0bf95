"""``SharedGate``: the rate-limit gate of a whole fleet, kept in Redis.

Every process of the fleet (same server host, account and prefix) takes its send permits
from one budget held in Redis by one Lua script (``_store``, ``_script``): one probe for the
fleet until the budget is known, requests in flight counted fleet-wide as leases that expire
(attempt timeout, or 60 s), what answers say (remaining, reset, limit, a 420/429) folded
into the shared state, and bulk calls leaving the reserve to normal ones.

One round trip serves many requests: a single pump per process asks for as many permits
as its callers wait for (plus a few to hold while the budget is large, used without any
round trip), and the lease releases of finished requests ride along with the next call.
Waiting processes sleep until the shared window reopens, plus jitter, or poll with jitter
while they wait on answers from elsewhere.

Redis never breaks a call: each Redis call has a short timeout, and a gap (Redis down,
stalled, failing over) is handled by ``_gap.Gap``: this process keeps to its share of the
window in its own gate until the fleet rejoins, together, at a window boundary.

Imports: the in-process gate, snapshot, config and errors; ``_store``, ``_gap``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar

from .._backoff import RATE_LIMITED, rejection_wait
from .._config import RetryConfig
from .._gate import RateLimiter, RateLimitStats
from .._snapshot import RateLimit, parse_rate_limit
from ._connect import SLOW_TIMEOUT
from ._gap import Gap, HandedBack
from ._store import BudgetStore, Reply

log = logging.getLogger("cldprov_async")

#: Permits a process may hold beyond what its callers wait for, while the budget is large.
BATCH = 64
#: Jitter (seconds) on waking at a reopened window: one pump per process wakes, not every
#: caller, so a little spreads the fleet's processes enough.
SPREAD = 0.03
#: Seconds a process holds a permit nobody asked for before giving it back.
HOLD_FOR = 0.5
#: At most this many strings of records wait for Redis to come back (leases expire anyway).
MAX_RECORDS = 50_000
_LOCAL = "local"  # a permit from the in-process gate
_Waiter = tuple["asyncio.Future[str | None]", float, bool]  # (fut, deadline, bulk)


class SharedGate:
    """A gate with the in-process gate's interface, its budget shared through Redis.

    Args:
        store: The budget's keys and script on the fleet's Redis.
        bulk_reserve: The fraction of each window bulk calls leave to normal ones.
    """

    def __init__(self, store: BudgetStore, *, bulk_reserve: float) -> None:
        self.local = RateLimiter(bulk_reserve=bulk_reserve)
        self.stats: RateLimitStats = self.local.stats
        self.rng = self.local.rng
        self.bulk_reserve = self.local.bulk_reserve
        self.store = store
        self.gap = Gap(self)
        self._lease: ContextVar[str | None] = ContextVar("cldprov_lease", default=None)
        self._snapshot: RateLimit | None = None
        self._held: list[tuple[str, float]] = []  # (lease, loop time granted)
        self._records: list[str] = []
        self._waiters: deque[_Waiter] = deque()
        self._blocked_until = 0.0  # loop time: a 420/429 this process saw
        self._shared = True
        self._closed = False
        self._pump: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    @property
    def shared(self) -> bool:
        """True while the budget is Redis's; False while this process keeps to its own share."""
        return self._shared

    @property
    def snapshot(self) -> RateLimit | None:
        return self._snapshot if self._shared else self.local.snapshot or self._snapshot

    # -- permits ---------------------------------------------------------------------------

    def try_acquire(self, now: float, bulk: bool = False) -> bool:
        if not self._shared:
            if self.local.try_acquire(now, bulk):
                self._lease.set(_LOCAL)
                return True
            return False
        if self._waiters or not self._held or now < self._blocked_until:
            return False
        self._lease.set(self._held.pop()[0])
        return True

    async def acquire(
        self, deadline: float, method: str, path: str, bulk: bool = False, operation: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        if self.try_acquire(loop.time(), bulk):
            return
        while True:
            if self._shared:
                lease = await self._wait_shared(loop, deadline, bulk)
                if lease is not None:
                    self._lease.set(lease)
                    return
            try:  # a gap: this process's own gate, held to its share, decides
                await self.local.acquire(deadline, method, path, bulk, operation)
            except HandedBack:  # the fleet rejoined while this call queued
                continue
            self._lease.set(_LOCAL)
            return

    async def _wait_shared(
        self, loop: asyncio.AbstractEventLoop, deadline: float, bulk: bool
    ) -> str | None:
        """A lease from the pump, or None when a gap began meanwhile."""
        fut: asyncio.Future[str | None] = loop.create_future()
        self._waiters.append((fut, deadline, bulk))
        self._start_pump()
        started = loop.time()
        try:
            async with asyncio.timeout_at(deadline):
                return await fut
        except TimeoutError:
            self._abandon(fut)
            raise self.local.too_far(0.0, self.snapshot) from None
        except BaseException:
            self._abandon(fut)
            raise
        finally:
            self.stats.waited_seconds += loop.time() - started

    def _abandon(self, fut: asyncio.Future[str | None]) -> None:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            lease = fut.result()
            if lease is not None:
                self._record("g", lease)  # granted just as its caller left: give it back
        else:
            fut.cancel()
        self._waiters = deque(w for w in self._waiters if not w[0].done())
        if self._wakeup is not None:
            self._wakeup.set()  # the pump may have nobody left to wait for

    # -- what the server said --------------------------------------------------------------

    def on_answer(self, headers: Mapping[str, str] | None, status: int = 0) -> None:
        lease = self._lease.get()
        self._lease.set(None)
        if lease == _LOCAL or lease is None:
            self.local.on_answer(headers, status)
            self.gap.saw(self.local.snapshot)
            return
        seen = parse_rate_limit(headers) if headers is not None else None
        if seen is not None:
            self._snapshot = seen
            self.gap.saw(seen)
            reset = -1.0 if seen.reset_at is None else seen.reset_at.timestamp()
            self._record("a", lease, _n(seen.remaining), reset, _n(seen.limit))
        elif headers is not None and status < 500 and status not in RATE_LIMITED:
            self._record("u", lease)
        else:
            self._record("f", lease)

    def on_rejected(self, headers: Mapping[str, str], n: int, retry: RetryConfig) -> float:
        if not self._shared:
            self.local.one_more()
            return self.local.on_rejected(headers, n, retry)
        self.stats.rejected += 1
        wait = rejection_wait(headers, n, retry, self.rng)
        loop = asyncio.get_running_loop()
        self._blocked_until = max(self._blocked_until, loop.time() + wait)
        self._record("b", "-", time.time() + wait)
        for lease, _at in self._held:  # the window is spent: held permits are worth nothing
            self._record("f", lease)
        self._held.clear()
        self._start_pump()
        return wait

    def _record(self, kind: str, lease: str, a: float = -1, b: float = -1, c: float = -1) -> None:
        if len(self._records) < MAX_RECORDS:  # while Redis is away, keep what fits
            self._records += (kind, lease, repr(a), repr(b), repr(c))
        if not self._shared or self._closed:
            return
        if self._pump is not None and not self._pump.done():
            if self._wakeup is not None:
                self._wakeup.set()  # the pump's next call carries the record
        elif self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0.002)  # let the answers landing together go in one call
        if self._records and self._shared:
            await self.call(0, 0, 0)

    # -- talking to Redis ------------------------------------------------------------------

    async def call(
        self, n_normal: int, n_bulk: int, n_extra: int, proposal: float = -1.0
    ) -> Reply | None:
        """One script run with the records so far; None when it failed (a gap began) or
        when the reply says the fleet keeps to its shares (a gap it joins). Only calls
        that grant permits are held to ``REDIS_TIMEOUT``: callers wait on them."""
        records, self._records = self._records, []
        self.gap.start()
        try:
            reply = await self.store.run(
                n_normal,
                n_bulk,
                n_extra,
                records,
                bulk_reserve=self.bulk_reserve,
                proposal=proposal,
                patient=n_normal + n_bulk == 0,  # nobody waits on it
            )
        except Exception as exc:  # any Redis trouble: never the caller's
            self._records = (records + self._records)[:MAX_RECORDS]
            self.gap.lost(exc)
            return None
        except BaseException:  # cancelled (closing): the records go with the last call
            self._records = (records + self._records)[:MAX_RECORDS]
            raise
        self.gap.heard(reply)
        if reply.extra:
            loop = asyncio.get_running_loop()
            self._held += [(lease, loop.time()) for lease in reply.extra]
            loop.call_later(HOLD_FOR + 0.01, self._drop_stale)
        if reply.rejoin is not None and reply.rejoin > time.time() and self._shared:
            self.gap.joined(reply)  # others are back from a gap: keep to a share with them
            return None
        return reply

    def _drop_stale(self) -> None:
        """Give back held permits nobody used for a while: the fleet may need them."""
        if not self._held:
            return
        cutoff = asyncio.get_running_loop().time() - HOLD_FOR
        stale = [lease for lease, at in self._held if at <= cutoff]
        if stale:
            self._held = [(lease, at) for lease, at in self._held if at > cutoff]
            for lease in stale:
                self._record("g", lease)

    def _start_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._wakeup = asyncio.Event()
            self._pump = asyncio.get_running_loop().create_task(self._run_pump())

    async def _run_pump(self) -> None:
        try:
            await self._pump_once()
        except Exception as exc:  # a bug of ours must not strand the waiters: fall back
            log.exception("the shared rate-limit gate failed")
            self.gap.lost(exc)

    async def _pump_once(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while self._shared and not self._closed:
            normal = [w for w in self._waiters if w[2] is False and not w[0].done()]
            bulk = [w for w in self._waiters if w[2] is True and not w[0].done()]
            self._waiters = deque(normal + bulk)
            if not self._waiters:
                if self._records:
                    await self.call(0, 0, 0)
                    continue  # callers may have queued meanwhile, counting on this pump
                return
            now = loop.time()
            if now < self._blocked_until:
                await self._sleep(self._blocked_until - now + self.rng.uniform(0.0, SPREAD))
                continue
            self._wakeup.clear()
            while self._held and self._waiters:  # permits in hand first
                fut = self._waiters.popleft()[0]
                fut.set_result(self._held.pop()[0])
            if not self._waiters:
                continue
            normal = [w for w in self._waiters if w[2] is False]
            bulk = [w for w in self._waiters if w[2] is True]
            extra = BATCH if len(normal) + len(bulk) > 1 else 0
            got = await self.call(len(normal), len(bulk), extra)
            if got is None:
                return
            g_n, g_b = len(got.normal), len(got.bulk)
            for (fut, _d, _b), lease in zip(
                normal[:g_n] + bulk[:g_b], got.normal + got.bulk, strict=True
            ):
                if fut.done():
                    self._record("g", lease)
                else:
                    fut.set_result(lease)
            left = normal[g_n:] + bulk[g_b:]
            # Callers that queued during the round trip are in self._waiters too: keep them.
            self._waiters = deque(w for w in self._waiters if not w[0].done())
            if not left:
                continue
            now_wall, now = time.time(), loop.time()
            opens = [(got.opens_n if w[2] is False else got.opens_b) for w in left]
            for (fut, deadline, _b), at in zip(left, opens, strict=True):
                if at > 0 and now + (at - now_wall) > deadline and not fut.done():
                    fut.set_exception(self.local.too_far(at - now_wall, self.snapshot))
            known = [at for at in opens if at > 0]
            if known and len(known) == len(opens):
                await self._sleep(min(known) - now_wall + self.rng.uniform(0.0, SPREAD))
            else:  # waiting on answers, here or elsewhere: a jittered poll
                await self._sleep(self.rng.uniform(0.01, 0.04))

    async def _sleep(self, seconds: float) -> None:
        """Sleep, or less when an answer of this process may have changed the budget."""
        assert self._wakeup is not None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, seconds)):
                await self._wakeup.wait()

    # -- a gap: to this process's share and back ---------------------------------------------

    def go_local(self, give_back: bool) -> None:
        """Leave the shared budget: the callers waiting on it go to this process's own gate.

        Args:
            give_back: Redis answers (the fleet is on its shares): give held permits back.
                Otherwise they are dropped, with the leases of this epoch.
        """
        self._shared = False
        if give_back:
            for lease, _at in self._held:
                self._record("g", lease)
        else:  # a new epoch: Redis drops the leases of the last one when it answers again
            self.store.epoch += 1
            self._record("p", self.store.owner)
        self._held.clear()
        for fut, _d, _b in self._waiters:
            if not fut.done():
                fut.set_result(None)  # to the in-process gate
        self._waiters.clear()

    def go_shared(self) -> None:
        """Back to the shared budget; the callers queued at this process's gate follow."""
        self._shared = True
        self.local.share(None)
        seen = self.local.snapshot
        if seen is not None and seen.reset_at is not None:  # what the server said last
            self._record("a", "-", _n(seen.remaining), seen.reset_at.timestamp(), _n(seen.limit))
        self.local.hand_over(HandedBack)

    async def aclose(self) -> None:
        """Give back held permits, stop the background tasks, close the Redis connections."""
        self._closed = True  # no new background task from here
        tasks = {t for t in (self._pump, self._flush) if t is not None and not t.done()}
        for task in tasks:
            task.cancel()
        if tasks:  # bounded, whatever redis-py does with a cancel
            await asyncio.wait(tasks, timeout=SLOW_TIMEOUT)
        await self.gap.stop()
        if self.gap.started:  # in a gap too: if Redis answers, the records and the purge land
            for lease, _at in self._held:
                self._record("g", lease)
            self._held.clear()
            self._records += ("q", "-", "-1", "-1", "-1")  # off the members: shares grow
            with contextlib.suppress(Exception):  # nobody waits on it: patient
                records = self._records
                await self.store.run(0, 0, 0, records, bulk_reserve=self.bulk_reserve, patient=True)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(SLOW_TIMEOUT):
                await self.store.fleet.aclose()


def _n(value: int | None) -> int:
    return -1 if value is None else value
