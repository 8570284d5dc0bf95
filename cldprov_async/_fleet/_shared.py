"""``SharedGate``: the rate-limit gate of a whole fleet, kept in Redis.

Every process of the fleet (same server host, account and prefix) takes its send permits
from one budget held in Redis by one Lua script (``_script``): one probe for the fleet
until the budget is known, requests in flight counted fleet-wide as leases that expire
(attempt timeout, or 60 s), what answers say (remaining, reset, limit, a 420/429) folded
into the shared state, and bulk calls leaving the reserve to normal ones.

One round trip serves many requests: a single pump per process asks for as many permits
as its callers wait for (plus a few to hold while the budget is large, used without any
round trip), and the lease releases of finished requests ride along with the next call.
Waiting processes sleep until the shared window reopens, plus jitter, or poll with jitter
while they wait on answers from elsewhere.

Redis never breaks a call: each Redis call has a short timeout; on any failure this
process falls back to its own in-process gate (one warning), probes Redis in the
background, and rejoins the shared gate when it answers again.

Imports: the in-process gate, snapshot, config and errors; ``_script``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import secrets
import time
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from typing import Any

from attrs import frozen

from .._config import RetryConfig
from .._gate import RATE_LIMITED, RateLimiter, RateLimitStats, rejection_wait
from .._snapshot import RateLimit, parse_rate_limit
from ._script import SCRIPT

log = logging.getLogger("cldprov_async")

#: Seconds each Redis call may take before this process falls back to its own gate.
REDIS_TIMEOUT = 0.5
#: Permits a process may hold beyond what its callers wait for, while the budget is large.
BATCH = 64
#: Seconds between attempts to rejoin Redis (jittered to 0.5x-1.5x).
REJOIN_EVERY = 1.0
#: Shared state outlives the longest (hourly) window.
STATE_TTL = 7200
#: Jitter (seconds) on waking at a reopened window: one pump per process wakes, not every
#: caller, so a little spreads the fleet's processes enough.
SPREAD = 0.03
#: Seconds a process holds a permit nobody asked for before giving it back.
HOLD_FOR = 0.5
_LOCAL = "local"  # a permit from the in-process gate
_Waiter = tuple["asyncio.Future[str | None]", float, bool]  # (fut, deadline, bulk)


@frozen
class _Grant:
    normal: list[str]
    bulk: list[str]
    opens_n: float  # wall time the window reopens for normal calls, -1 when unknown
    opens_b: float


def namespace(prefix: str, host: str, account_id: str) -> str:
    """The keys' common stem; the braces keep both keys in one Redis Cluster slot."""
    return f"cldprov:{{{prefix}:{host}:{account_id}}}"


class SharedGate:
    """A gate with the in-process gate's interface, its budget shared through Redis."""

    def __init__(
        self,
        redis: Any,
        ns: str,
        *,
        bulk_reserve: float,
        lease_ttl: float,
        where: str,
    ) -> None:
        self.local = RateLimiter(bulk_reserve=bulk_reserve)
        self.stats: RateLimitStats = self.local.stats
        self.rng = self.local.rng
        self.bulk_reserve = self.local.bulk_reserve
        self._redis = redis
        self._script = redis.register_script(SCRIPT)
        self._keys = [f"{ns}:state", f"{ns}:leases"]
        self._lease_ttl = lease_ttl
        self._where = where  # host:port for messages, never the password
        self._owner = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._seq = itertools.count()
        self._lease: ContextVar[str | None] = ContextVar("cldprov_lease", default=None)
        self._snapshot: RateLimit | None = None
        self._held: list[tuple[str, float]] = []  # (lease, loop time granted)
        self._records: list[str] = []
        self._waiters: deque[_Waiter] = deque()
        self._blocked_until = 0.0  # loop time: a 420/429 this process saw
        self._shared = True
        self._pump: asyncio.Task[None] | None = None
        self._flush: asyncio.Task[None] | None = None
        self._rejoin: asyncio.Task[None] | None = None
        self._wakeup: asyncio.Event | None = None

    @property
    def shared(self) -> bool:
        """True while the budget is Redis's; False while this process falls back to its own."""
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
        lease: str | None = None
        if self._shared:
            fut: asyncio.Future[str | None] = loop.create_future()
            self._waiters.append((fut, deadline, bulk))
            self._start_pump()
            started = loop.time()
            try:
                async with asyncio.timeout_at(deadline):
                    lease = await fut
            except TimeoutError:
                self._abandon(fut)
                raise self.local.too_far(0.0, self.snapshot) from None
            except BaseException:
                self._abandon(fut)
                raise
            finally:
                self.stats.waited_seconds += loop.time() - started
        if lease is None:  # Redis failed: this process's own gate decides
            await self.local.acquire(deadline, method, path, bulk, operation)
            lease = _LOCAL
        self._lease.set(lease)

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
            return
        seen = parse_rate_limit(headers) if headers is not None else None
        if seen is not None:
            self._snapshot = seen
            reset = -1.0 if seen.reset_at is None else seen.reset_at.timestamp()
            self._record("a", lease, _n(seen.remaining), reset, _n(seen.limit))
        elif headers is not None and status < 500 and status not in RATE_LIMITED:
            self._record("u", lease)
        else:
            self._record("f", lease)

    def on_rejected(self, headers: Mapping[str, str], n: int, retry: RetryConfig) -> float:
        if not self._shared:
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
        if len(self._records) < 50_000:  # while Redis is away, keep what fits; leases expire
            self._records += (kind, lease, repr(a), repr(b), repr(c))
        if not self._shared:
            return
        if self._pump is not None and not self._pump.done():
            if self._wakeup is not None:
                self._wakeup.set()  # the pump's next call carries the record
        elif self._flush is None or self._flush.done():
            self._flush = asyncio.get_running_loop().create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        await asyncio.sleep(0.002)  # let the answers landing together go in one call
        if self._records and self._shared:
            await self._call(0, 0, 0)

    # -- talking to Redis ------------------------------------------------------------------

    async def _call(self, n_normal: int, n_bulk: int, n_extra: int) -> _Grant | None:
        """One script run; None when Redis failed (and this process fell back)."""
        records, self._records = self._records, []
        now = time.time()
        first = next(self._seq)
        total = n_normal + n_bulk + n_extra
        for _ in range(max(0, total - 1)):
            next(self._seq)
        args: list[Any] = [
            repr(now),
            repr(now + self._lease_ttl),
            n_normal,
            n_bulk,
            n_extra,
            repr(self.bulk_reserve),
            self._owner,
            first,
            STATE_TTL,
            int(self._lease_ttl) + 60,
            *records,
        ]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT):
                got = await self._script(keys=self._keys, args=args)
        except Exception as exc:  # any Redis trouble: never the caller's
            self._fall_back(exc)
            return None
        g_n, g_b, g_e = int(got[0]), int(got[1]), int(got[2])
        leases = [f"{self._owner}:{first + k}" for k in range(g_n + g_b + g_e)]
        if g_e:
            loop = asyncio.get_running_loop()
            self._held += [(lease, loop.time()) for lease in leases[g_n + g_b :]]
            loop.call_later(HOLD_FOR + 0.01, self._drop_stale)
        return _Grant(leases[:g_n], leases[g_n : g_n + g_b], float(got[3]), float(got[4]))

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
            self._fall_back(exc)

    async def _pump_once(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._wakeup is not None
        while self._shared:
            normal = [w for w in self._waiters if w[2] is False and not w[0].done()]
            bulk = [w for w in self._waiters if w[2] is True and not w[0].done()]
            self._waiters = deque(normal + bulk)
            if not self._waiters:
                if self._records:
                    await self._call(0, 0, 0)
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
            got = await self._call(len(normal), len(bulk), extra)
            if got is None:
                return
            g_n, g_b, opens_n, opens_b = len(got.normal), len(got.bulk), got.opens_n, got.opens_b
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
            opens = [(opens_n if w[2] is False else opens_b) for w in left]
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

    # -- Redis faults ------------------------------------------------------------------------

    def _fall_back(self, exc: BaseException) -> None:
        if not self._shared:
            return
        self._shared = False
        log.warning(
            "the shared rate-limit budget at %s is unreachable (%s): this process uses its"
            " own gate until Redis answers again",
            self._where,
            type(exc).__name__,
        )
        self._held.clear()
        for fut, _d, _b in self._waiters:
            if not fut.done():
                fut.set_result(None)  # to the in-process gate
        self._waiters.clear()
        if self._rejoin is None or self._rejoin.done():
            self._rejoin = asyncio.get_running_loop().create_task(self._try_rejoin())

    async def _try_rejoin(self) -> None:
        while not self._shared:
            await asyncio.sleep(REJOIN_EVERY * self.rng.uniform(0.5, 1.5))
            try:
                async with asyncio.timeout(REDIS_TIMEOUT):
                    await self._redis.ping()
            except Exception:
                continue
            self._shared = True
            log.info("the shared rate-limit budget at %s answers again: rejoined", self._where)

    async def aclose(self) -> None:
        """Give back held permits, stop the background tasks, close the Redis connections."""
        for task in (self._pump, self._flush, self._rejoin):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
        if self._shared:
            for lease, _at in self._held:
                self._record("g", lease)
            self._held.clear()
            if self._records:
                await self._call(0, 0, 0)
        with contextlib.suppress(Exception):
            await self._redis.aclose()


def _n(value: int | None) -> int:
    return -1 if value is None else value
