"""The rate-limit gate: one ``RateLimiter`` hands out send permits to every call of a client.

Cloudinary counts requests in fixed windows and answers 420 (or 429) past the limit.
Retrying each call on its own would hammer the server with requests it will reject, so:

* until a response has told the budget, one request goes first (the probe);
* then no more than the last known ``remaining`` are sent in a window, counting requests
  still in flight, and at zero the rest queue (FIFO) until the window resets;
* at the reset, queued calls are released within the new budget, spread by a little jitter;
* a 420/429 closes the gate for everyone until ``Retry-After``, else the reset, else an
  exponential backoff with full jitter.

Imports: the snapshot, telemetry's log attributes, config and errors only; the middleware
drives it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from datetime import UTC, datetime

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
_RESET_MARGIN = 0.05


def backoff(config: RetryConfig, n: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2**n)]."""
    return rng.uniform(0.0, min(config.backoff_max, config.backoff_initial * (2.0**n)))


@define
class RateLimitStats:
    """Counters for a client's lifetime: what it sent, what the server turned away."""

    sent: int = 0
    rejected: int = 0
    retried: int = 0
    waited_seconds: float = 0.0


class RateLimiter:
    """The gate shared by every request of one client."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.snapshot: RateLimit | None = None
        self.stats = RateLimitStats()
        self.rng = rng or random.Random()
        self._tokens: int | None = None  # None: unknown, a probe must go first
        self._limit: int | None = None
        self._reset: float | None = None  # loop time of the current window's end
        self._blocked_until = 0.0
        self._unlimited = False
        self._in_flight = 0
        self._window = 1.0
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()  # (fut, deadline)
        self._timer: asyncio.TimerHandle | None = None

    # -- permits ---------------------------------------------------------------------------

    def _try_take(self, now: float) -> bool:
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
        elif self._tokens <= 0:
            return False
        else:
            self._tokens -= 1
        self._in_flight += 1
        return True

    def _opens_at(self, now: float) -> float | None:
        """When the gate may next open, if that is known; None while waiting on answers."""
        t = max(now, self._blocked_until)
        if self._tokens == 0 and self._reset is not None:
            t = max(t, self._reset)
        return t if t > now else None

    def try_acquire(self, now: float) -> bool:
        """A permit at once if one is free and nobody queues before us (no coroutine needed)."""
        return not self._waiters and self._try_take(now)

    async def acquire(self, deadline: float, method: str, path: str, operation: str = "") -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.try_acquire(now):
            return
        opens = self._opens_at(now)
        if opens is not None and opens > deadline:
            raise self._too_far(opens - now)
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
        self._waiters.append((fut, deadline))
        self._arm(loop)
        started = now
        try:
            async with asyncio.timeout_at(deadline):
                await fut
        except TimeoutError:
            self._abandon(fut)
            raise self._too_far(0.0) from None
        except BaseException:
            self._abandon(fut)
            raise
        finally:
            self.stats.waited_seconds += loop.time() - started

    def _abandon(self, fut: asyncio.Future[None]) -> None:
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            self._give_back()  # granted just as its caller left
        else:
            fut.cancel()

    def _too_far(self, wait: float) -> RateLimitedError:
        reset_at = datetime.fromtimestamp(time.time() + wait, UTC)
        said = self.snapshot.reset_at if self.snapshot is not None else None
        if said is not None and abs((said - reset_at).total_seconds()) < 1.0:
            reset_at = said  # the server's own words, not our arithmetic
        return RateLimitedError(
            f"rate limited: the window reopens in {wait:.0f}s, past this call's retry budget"
            if wait
            else "rate limited: the retry budget ran out while waiting for the window",
            reset_at=reset_at,
            rate_limit=self.snapshot,
        )

    def _give_back(self) -> None:
        self._in_flight -= 1
        if self._tokens is not None:
            self._tokens += 1
        self._wake(jitter=False)

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        opens = self._opens_at(loop.time())
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
                len(self._waiters),
                wait,
                extra=log_extra(wait_s=wait),
            )

    def _on_timer(self) -> None:
        self._timer = None
        self._wake(jitter=True)

    def _wake(self, *, jitter: bool) -> None:
        if not self._waiters:
            return
        loop = asyncio.get_running_loop()
        now = loop.time()
        spread = min(0.25, 0.1 * self._window)
        while self._waiters:
            fut = self._waiters[0][0]
            if fut.done():
                self._waiters.popleft()
                continue
            if not self._try_take(now):
                break
            self._waiters.popleft()
            if jitter:
                loop.call_later(self.rng.uniform(0.0, spread), self._grant, fut)
            else:
                fut.set_result(None)
        if self._waiters:
            self._refuse_past_budget(now)
            self._arm(loop)

    def _refuse_past_budget(self, now: float) -> None:
        """Fail at once the waiters whose budget ends before the gate can reopen."""
        opens = self._opens_at(now)
        if opens is None:
            return
        keep: deque[tuple[asyncio.Future[None], float]] = deque()
        for fut, deadline in self._waiters:
            if fut.done():
                continue
            if deadline < opens:
                fut.set_exception(self._too_far(opens - now))
            else:
                keep.append((fut, deadline))
        self._waiters = keep

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
        self._wake(jitter=False)

    def _learn(self, seen: RateLimit) -> None:
        loop_now = asyncio.get_running_loop().time()
        self.snapshot = seen
        self._unlimited = False
        if seen.limit is not None:
            self._limit = seen.limit
        reset: float | None = None
        if seen.reset_at is not None:
            reset = loop_now + (seen.reset_at.timestamp() - time.time()) + _RESET_MARGIN
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
        now_wall = time.time()
        wait = retry_after_seconds(headers, now_wall)
        if wait is None:
            seen = parse_rate_limit(headers)
            if seen is not None and seen.reset_at is not None:
                ahead = seen.reset_at.timestamp() - now_wall
                wait = ahead + _RESET_MARGIN if ahead > 0 else None
        if wait is None:
            wait = backoff(retry, n, self.rng)
        loop = asyncio.get_running_loop()
        self._blocked_until = max(self._blocked_until, loop.time() + wait)
        self._tokens = 0
        self._arm(loop)
        return wait
