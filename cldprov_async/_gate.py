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

``Gate`` is the interface the middleware drives; ``_fleet.SharedGate`` is the other one. While
a fleet's shared budget is out of reach, its in-process gate keeps to one process's share of
the window (``share``) and hands its queue back when the fleet rejoins (``hand_over``).

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
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Protocol

from attrs import define

from ._backoff import RATE_LIMITED, RESET_MARGIN, rejection_wait
from ._config import RetryConfig
from ._snapshot import RateLimit, Said, parse_budget
from ._telemetry import log_extra
from .errors import RateLimitedError

log = logging.getLogger("cldprov_async")

#: Gate waits at least this long (seconds) are logged as warnings, not silently slept.
_LONG_WAIT = 10.0


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

    def __init__(
        self,
        rng: random.Random | None = None,
        bulk_reserve: float = 0.0,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._said: Said | None = None  # the last answer's budget, as parsed
        self._snapshot: RateLimit | None = None  # ... as a RateLimit, once asked for
        self._reset_said: datetime | None = None  # the last reset date seen ...
        self._reset_loop = 0.0  # ... in loop time
        #: The wall clock the server's reset dates are read against (the client's clock).
        self.wall = wall
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
        self._members: int | None = None  # sharing the window with this many processes
        self._counted_at = -2.0  # the window (its end) whose rejection counted one more
        self._accepted = 0  # while keeping to a share: this window's requests answered 2xx
        self._closes: float | None = None  # loop time: no new window from then (a rejoin)
        self._waiters: deque[tuple[asyncio.Future[None], float]] = deque()  # (fut, deadline)
        self._bulk_waiters: deque[tuple[asyncio.Future[None], float]] = deque()
        self._timer: asyncio.TimerHandle | None = None

    @property
    def snapshot(self) -> RateLimit | None:
        """What the server last said; built when asked for (most answers never are)."""
        if self._snapshot is None and self._said is not None:
            self._snapshot = RateLimit(*self._said)
        return self._snapshot

    # -- permits ---------------------------------------------------------------------------

    def _floor(self, bulk: bool) -> int:
        """Tokens a call must leave: the reserve, for bulk calls once the window is known."""
        if not bulk or self._reset is None:
            return 0
        return reserve_of(self._per_window(), self.bulk_reserve)

    def _per_window(self) -> int | None:
        """The permits of a window: the limit, or this process's share of it."""
        if self._limit is None or self._members is None:
            return self._limit
        return self._limit // self._members

    def share(
        self,
        members: int | None,
        *,
        limit: int | None = None,
        tokens: int | None = None,
        reset_at: float | None = None,
    ) -> None:
        """Keep to one process's share of a budget that ``members`` processes share.

        A fleet's process falls back to this gate while the shared budget is out of reach:
        ``limit // members`` permits a window, and in a window it did not see start, its
        share of what the server says is left.

        Args:
            members: The processes sharing the budget; None lifts the share.
            limit: The last known limit of a window.
            tokens: This process's share of what the current window has left.
            reset_at: When the current window ends (wall seconds); with ``tokens``.
        """
        self._members = None if members is None else max(1, members)
        self._closes = None
        if members is None:
            return
        if limit is not None:
            self._limit = limit
            self._unlimited = False
        now_wall = self.wall()
        if tokens is not None and reset_at is not None and reset_at > now_wall:
            loop_now = asyncio.get_running_loop().time()
            self._reset = loop_now + (reset_at - now_wall) + RESET_MARGIN
            self._tokens = max(0, tokens - self._in_flight)
        else:  # the current window is unknown: one probe asks the server
            self._reset = None
            self._tokens = None

    def at_least(self, members: int) -> None:
        """While keeping to a share: more processes share the window than this one saw, so
        its share shrinks, this window included.

        Args:
            members: How many processes share the window, at least.
        """
        if self._members is None or members <= self._members:
            return
        before = self._per_window()
        self._members = members
        after = self._per_window()
        if self._tokens is not None and before is not None and after is not None:
            self._tokens = max(0, self._tokens - (before - after))

    def one_more(self) -> None:
        """A rejection while keeping to a share: the processes take more than this one thinks
        (some it never saw). Once a window, count more of them: one more, or as many as
        ``limit / the requests of this process the window accepted`` says, at most twice as
        many as before."""
        window = -1.0 if self._reset is None else self._reset
        if self._members is None or window == self._counted_at:
            return
        self._counted_at = window
        guess = self._members + 1
        if self._limit:
            guess = max(guess, math.ceil(self._limit / max(1, self._accepted)))
        self.at_least(min(guess, 2 * self._members))

    def close_at(self, wall: float | None) -> None:
        """Open no window that starts at ``wall`` or later: a fleet rejoins its shared budget
        then, and this gate's callers are handed over (``hand_over``), even when the hand-over
        runs a little late.

        Args:
            wall: Wall seconds; None opens windows again.
        """
        if wall is None:
            self._closes = None
            self._wake(jitter=True)
            return
        self._closes = asyncio.get_running_loop().time() + (wall - self.wall())

    def hand_over(self, error: type[BaseException]) -> None:
        """Raise ``error`` in every queued caller: another gate takes them over.

        Args:
            error: The exception class to raise (its caller catches it and queues elsewhere).
        """
        for waiters in (self._waiters, self._bulk_waiters):
            while waiters:
                fut = waiters.popleft()[0]
                if not fut.done():
                    fut.set_exception(error())

    def _try_take(self, now: float, bulk: bool = False) -> bool:
        if now < self._blocked_until:
            return False
        if self._unlimited:
            self._in_flight += 1
            return True
        if self._reset is not None and now >= self._reset:
            if self._closes is not None and now >= self._closes:
                return False  # the fleet rejoins: no new window here
            # The window rolled: assume the last known limit, minus what may land in it.
            per_window = self._per_window()
            self._tokens = None if per_window is None else max(0, per_window - self._in_flight)
            self._accepted = 0
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
        tokens, reset = self._tokens, self._reset
        if (
            not bulk
            and tokens is not None
            and tokens > 0
            and reset is not None
            and self._blocked_until <= now < reset
        ):
            # _try_take's usual case, inline: a known window with permits left
            self._tokens = tokens - 1
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
        reset_at = datetime.fromtimestamp(self.wall() + wait, UTC)
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
        if self._members is not None and 200 <= status < 300:
            self._accepted += 1
        said = parse_budget(headers) if headers is not None else None
        if said is not None:
            self._learn(said)
        elif status < 500 and status not in RATE_LIMITED and self._limit is None:
            self._unlimited = headers is not None  # this server does not announce a budget
        if self._waiters or self._bulk_waiters:
            self._wake(jitter=False)

    def _learn(self, said: Said) -> None:
        loop_now = asyncio.get_running_loop().time()
        self._said, self._snapshot = said, None
        limit, remaining, reset_at = said
        self._unlimited = False
        if limit is not None:
            self._limit = limit
        reset: float | None = None
        if reset_at is not None:
            if reset_at is not self._reset_said:  # a new window's date: to loop time, once
                self._reset_said = reset_at
                self._reset_loop = loop_now + (reset_at.timestamp() - self.wall()) + RESET_MARGIN
            reset = self._reset_loop
            if reset <= loop_now:
                return  # an answer from a window that has already ended
        if remaining is None:
            return
        fresh = remaining - self._in_flight
        if fresh < 0:
            fresh = 0
        if reset is not None and (self._reset is None or reset > self._reset + 0.5):
            if self._reset is not None and reset - self._reset < 3600:
                self._window = reset - self._reset
            if self._members is not None:
                self._accepted = 0 if self._reset is not None else self._accepted
                if self._reset is None and self._tokens is not None:
                    fresh = min(fresh, self._tokens)  # rolled into it: the share counted since
                else:  # a window seen already started: a share of what is left
                    fresh = max(0, min(fresh, remaining // self._members - self._in_flight))
            self._reset = reset
            self._tokens = fresh
        else:
            if self._members is not None:  # of what the fleet has left, a share at most
                fresh = max(0, min(fresh, remaining // self._members - self._in_flight))
            tokens = self._tokens
            if tokens is None or fresh < tokens:
                self._tokens = fresh

    def on_rejected(self, headers: Mapping[str, str], n: int, retry: RetryConfig) -> float:
        """A 420/429: close the gate for every caller; returns seconds until it reopens."""
        self.stats.rejected += 1
        wait = rejection_wait(headers, n, retry, self.rng, self.wall())
        loop = asyncio.get_running_loop()
        self._blocked_until = max(self._blocked_until, loop.time() + wait)
        self._tokens = 0
        self._arm(loop)
        return wait
