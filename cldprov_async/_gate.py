"""The rate-limit gate: one ``RateLimiter`` hands out send permits to every call of a client.

Cloudinary counts requests in fixed windows and answers 420 (or 429) past the limit.
Retrying each call on its own would hammer the server with requests it will reject, so:

* until a response has told the budget, one request goes first (the probe);
* then no more than the last known ``remaining`` are sent in a window, counting requests
  still in flight, and at zero the rest queue (FIFO) until the window resets;
* at the reset, queued calls are released within the new budget, spread by a little jitter;
* a 420/429 closes the gate for everyone until ``Retry-After``, else the reset, else an
  exponential backoff with full jitter;
* bulk calls (rotation, ``priority="bulk"``) leave ``ceil(limit * bulk_reserve)`` of each
  window to normal ones, and queue apart from them, so a rotation never starves a service.

``Gate`` is the interface the middleware drives; ``_fleet.SharedGate`` is the other one.

Imports: the snapshot, telemetry's log attributes, config and errors only; the middleware
drives it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Protocol

from attrs import define

from ._config import RetryConfig
from ._snapshot import RateLimit, parse_rate_limit, retry_after_seconds
from ._telemetry import log_extra
from .errors import RateLimitedError

log = logging.getLogger("cldprov_async")

RATE_LIMITED = frozenset({420, 429})
#: Gate waits at least this long (seconds) are logged as warnings, not silently slept.
_LONG_WAIT = 10.0
#: Send a hair after the server's reset, not a hair before it.
RESET_MARGIN = 0.05


def backoff(config: RetryConfig, n: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2**n)]."""
    return rng.uniform(0.0, min(config.backoff_max, config.backoff_initial * (2.0**n)))


def rejection_wait(
    headers: Mapping[str, str], n: int, retry: RetryConfig, rng: random.Random
) -> float:
    """Seconds a 420/429 closes the gate: ``Retry-After``, else the reset, else a backoff."""
    now_wall = time.time()
    wait = retry_after_seconds(headers, now_wall)
    if wait is None:
        seen = parse_rate_limit(headers)
        if seen is not None and seen.reset_at is not None:
            ahead = seen.reset_at.timestamp() - now_wall
            wait = ahead + RESET_MARGIN if ahead > 0 else None
    return backoff(retry, n, rng) if wait is None else wait


@define
class RateLimitStats:
    """Counters for a client's lifetime: what it sent, what the server turned away.

    Attributes:
        sent: Requests sent, retries included.
        rejected: Answers of 420 or 429 (the server's rate limit).
        retried: Requests sent again after a failed attempt.
        waited_seconds: Seconds calls spent waiting at the gate and in backoff, summed.
    """

    sent: int = 0
    rejected: int = 0
    retried: int = 0
    waited_seconds: float = 0.0


class Gate(Protocol):
    """What the middleware needs of a gate (in-process or shared)."""

    stats: RateLimitStats
    rng: random.Random

    @property
    def snapshot(self) -> RateLimit | None: ...

    def try_acquire(self, now: float, bulk: bool = False) -> bool: ...

    async def acquire(
        self, deadline: float, method: str, path: str, bulk: bool = False, operation: str = ""
    ) -> None: ...

    def on_answer(self, headers: Mapping[str, str] | None, status: int = 0) -> None: ...

    def on_rejected(self, headers: Mapping[str, str], n: int, retry: RetryConfig) -> float: ...

    async def aclose(self) -> None: ...


def check_bulk_reserve(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"bulk_reserve must be a number, not {type(value).__name__}")
    if not 0.0 <= value < 1.0:
        raise ValueError(f"bulk_reserve must be in [0, 1), not {value!r}")
    return float(value)


def reserve_of(limit: int | None, bulk_reserve: float) -> int:
    """Permits of a window that bulk calls leave to normal ones."""
    return 0 if limit is None else math.ceil(limit * bulk_reserve)


class RateLimiter:
    """The gate shared by every request of one client."""

    def __init__(self, rng: random.Random | None = None, bulk_reserve: float = 0.0) -> None:
        self.snapshot: RateLimit | None = None
        self.stats = RateLimitStats()
        self.rng = rng or random.Random()
        self.bulk_reserve = check_bulk_reserve(bulk_reserve)
        self._tokens: int | None = None  # None: unknown, a probe must go first
        self._limit: int | None = None
        self._reset: float | None = None  # loop time of the current window's end
        self._blocked_until = 0.0
        self._unlimited = False
        self._in_flight = 0
        self._window = 1.0
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()  # (fut, deadline)
        self._bulk_waiters: deque[tuple[asyncio.Future[None], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    # -- permits ---------------------------------------------------------------------------

    def _floor(self, bulk: bool) -> int:
        """Tokens a call must leave: the reserve, for bulk calls once the window is known."""
        if not bulk or self._reset is None:
            return 0
        return reserve_of(self._limit, self.bulk_reserve)

    def _try_take(self, now: float, bulk: bool = False) -> bool:
        if now < self._blocked_until:
            return False
        if self._unlimited:
            self._in_flight += 1
            return True
        if self._reset is not None and now >= self._reset:
            # The window rolled: assume the last known limit, minus what may land in it.
            self._tokens = None if self._limit is None else max(0, self._limit - self._in_flight)
            self._reset = None
        if self._tokens == 0 and self._reset is None and self._in_flight == 0:
            self._tokens = None  # nobody left to tell us the new window: probe
        if self._tokens is None:
            if self._in_flight:
                return False
        elif self._tokens <= self._floor(bulk):
            return False
        else:
            self._tokens -= 1
        self._in_flight += 1
        return True

    def _opens_at(self, now: float, bulk: bool = False) -> float | None:
        """When the gate may next open, if that is known; None while waiting on answers."""
        t = max(now, self._blocked_until)
        if (
            self._tokens is not None
            and self._tokens <= self._floor(bulk)
            and self._reset is not None
        ):
            t = max(t, self._reset)
        return t if t > now else None

    def try_acquire(self, now: float, bulk: bool = False) -> bool:
        """A permit at once if one is free and nobody queues before us (no coroutine needed)."""
        if self._waiters or (bulk and self._bulk_waiters):
            return False
        if self._unlimited and now >= self._blocked_until:  # _try_take's first case, inline
            self._in_flight += 1
            return True
        return self._try_take(now, bulk)

    async def acquire(
        self, deadline: float, method: str, path: str, bulk: bool = False, operation: str = ""
    ) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.try_acquire(now, bulk):
            return
        opens = self._opens_at(now, bulk)
        if opens is not None and opens > deadline:
            raise self.too_far(opens - now)
        log.debug(
            "%s %s waits for the rate-limit gate (%s)",
            method,
            path,
            "the first answer" if opens is None else f"{opens - now:.2f}s",
            extra=log_extra(
                operation or None, method, path, wait_s=None if opens is None else opens - now
            ),
        )
        fut: asyncio.Future[None] = loop.create_future()
        (self._bulk_waiters if bulk else self._waiters).append((fut, deadline))
        self._arm(loop)
        started = now
        try:
            async with asyncio.timeout_at(deadline):
                await fut
        except TimeoutError:
            self._abandon(fut)
            raise self.too_far(0.0) from None
        except BaseException:
            self._abandon(fut)
            raise
        finally:
            self.stats.waited_seconds += loop.time() - started

    async def aclose(self) -> None:
        """Nothing to release: the in-process gate holds no outside resource."""

    def _abandon(self, fut: asyncio.Future[None]) -> None:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self._give_back()  # granted just as its caller left
        else:
            fut.cancel()

    def too_far(self, wait: float, seen: RateLimit | None = None) -> RateLimitedError:
        """The error for a call whose budget ends before the gate reopens (``seen``: the
        snapshot to quote, the gate's own by default)."""
        seen = seen or self.snapshot
        reset_at = datetime.fromtimestamp(time.time() + wait, UTC)
        said = seen.reset_at if seen is not None else None
        if said is not None and abs((said - reset_at).total_seconds()) < 1.0:
            reset_at = said  # the server's own words, not our arithmetic
        return RateLimitedError(
            f"rate limited: the window reopens in {wait:.0f}s, past this call's retry budget"
            if wait
            else "rate limited: the retry budget ran out while waiting for the window",
            reset_at=reset_at,
            rate_limit=seen,
        )

    def _give_back(self) -> None:
        self._in_flight -= 1
        if self._tokens is not None:
            self._tokens += 1
        self._wake(jitter=False)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        opens = self._opens_at(loop.time(), bulk=not self._waiters and bool(self._bulk_waiters))
        if opens is None:
            return
        if self._timer is not None:
            if self._timer.when() <= opens:
                return
            self._timer.cancel()
        self._timer = loop.call_at(opens, self._on_timer)
        wait = opens - loop.time()
        if wait >= _LONG_WAIT:  # say so: an hourly window can hold a batch for a long time
            log.warning(
                "rate limit reached: %d call(s) paused for %.0fs until the window reopens",
                len(self._waiters) + len(self._bulk_waiters),
                wait,
                extra=log_extra(wait_s=wait),
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._wake(jitter=True)

    def _wake(self, *, jitter: bool) -> None:
        if not (self._waiters or self._bulk_waiters):
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        spread = min(0.25, 0.1 * self._window)
        for bulk, waiters in ((False, self._waiters), (True, self._bulk_waiters)):
            while waiters:
                fut = waiters[0][0]
                if fut.done():
                    waiters.popleft()
                    continue
                if not self._try_take(now, bulk):
                    break
                waiters.popleft()
                if jitter:
                    loop.call_later(self.rng.uniform(0.0, spread), self._grant, fut)
                else:
                    fut.set_result(None)
            if waiters:
                self._refuse_past_budget(now, waiters, bulk)
        if self._waiters or self._bulk_waiters:
            self._arm(loop)

    def _refuse_past_budget(
        self, now: float, waiters: deque[tuple[asyncio.Future[None], float]], bulk: bool
    ) -> None:
        """Fail at once the waiters whose budget ends before the gate can reopen."""
        opens = self._opens_at(now, bulk)
        if opens is None:
            return
        keep = [(fut, deadline) for fut, deadline in waiters if not fut.done()]
        waiters.clear()
        for fut, deadline in keep:
            if deadline < opens:
                fut.set_exception(self.too_far(opens - now))
            else:
                waiters.append((fut, deadline))

    def _grant(self, fut: asyncio.Future[None]) -> None:
        if fut.done():
            self._give_back()  # its caller left while the jitter ran
        else:
            fut.set_result(None)

    # -- what the server said --------------------------------------------------------------

    def on_answer(self, headers: Mapping[str, str] | None, status: int = 0) -> None:
        """An attempt finished: with the response's status and headers, or None if it failed."""
        self._in_flight -= 1
        seen = parse_rate_limit(headers) if headers is not None else None
        if seen is not None:
            self._learn(seen)
        elif status < 500 and status not in RATE_LIMITED and self._limit is None:
            self._unlimited = headers is not None  # this server does not announce a budget
        if self._waiters or self._bulk_waiters:
            self._wake(jitter=False)

    def _learn(self, seen: RateLimit) -> None:
        loop_now = asyncio.get_running_loop().time()
        self.snapshot = seen
        self._unlimited = False
        if seen.limit is not None:
            self._limit = seen.limit
        reset: float | None = None
        if seen.reset_at is not None:
            reset = loop_now + (seen.reset_at.timestamp() - time.time()) + RESET_MARGIN
            if reset <= loop_now:
                return  # an answer from a window that has already ended
        if seen.remaining is None:
            return
        fresh = max(0, seen.remaining - self._in_flight)
        if reset is not None and (self._reset is None or reset > self._reset + 0.5):
            if self._reset is not None and reset - self._reset < 3600:
                self._window = reset - self._reset
            self._reset = reset
            self._tokens = fresh
        else:
            self._tokens = fresh if self._tokens is None else min(self._tokens, fresh)

    def on_rejected(self, headers: Mapping[str, str], n: int, retry: RetryConfig) -> float:
        """A 420/429: close the gate for every caller; returns seconds until it reopens."""
        self.stats.rejected += 1
        wait = rejection_wait(headers, n, retry, self.rng)
        loop = asyncio.get_running_loop()
        self._blocked_until = max(self._blocked_until, loop.time() + wait)
        self._tokens = 0
        self._arm(loop)
        return wait
