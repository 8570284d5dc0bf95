"""The rate-limit-aware retry middleware and the one gate all of a client's calls share.

Cloudinary counts requests in fixed windows and answers 420 (or 429) past the limit, with
``X-FeatureRateLimit-Limit/-Remaining/-Reset`` on every response. Retrying each call on its
own would hammer the server with requests it will reject, so one ``RateLimiter`` per client
hands out send permits:

* until a response has told the budget, one request goes first (the probe);
* then no more than the last known ``remaining`` are sent in a window, counting requests
  still in flight, and at zero the rest queue (FIFO) until the window resets;
* at the reset, queued calls are released within the new budget, spread by a little jitter;
* a 420/429 closes the gate for everyone until ``Retry-After``, else the reset, else an
  exponential backoff with full jitter.

The middleware runs each attempt through the gate and decides what to retry: 420/429 for
any method (the server rejected it before doing anything); 5xx, connection errors and
timeouts only for idempotent methods; a POST only when it provably never left (the
connection could not be opened). A POST whose outcome is unknown raises
``OutcomeUnknownError`` for the caller (``AccessKeysAPI.generate``) to resolve by name.

Per-call settings (retry budget, attempt timeout, size cap) travel in a context variable
set by the session wrapper, so the middleware can sit on the ``ClientSession`` itself.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from attrs import define, field, frozen

from ._config import RetryConfig
from .errors import (
    APIError,
    CldProvisioningError,
    OutcomeUnknownError,
    RateLimitedError,
    RequestTimeoutError,
    ResponseTooLargeError,
    TransportError,
)

log = logging.getLogger("cldprov_async")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RATE_LIMITED = frozenset({420, 429})
RETRYABLE_5XX = frozenset({500, 502, 503, 504})
_H_LIMIT = "X-FeatureRateLimit-Limit"
_H_REMAINING = "X-FeatureRateLimit-Remaining"
_H_RESET = "X-FeatureRateLimit-Reset"
#: Gate waits at least this long (seconds) are logged as warnings, not silently slept.
_LONG_WAIT = 10.0
#: Send a hair after the server's reset, not a hair before it.
_RESET_MARGIN = 0.05


@frozen
class RateLimit:
    """What the server last said about the budget. Any field may be None if it did not say."""

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


def _int_header(headers: Mapping[str, str], name: str) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


@functools.lru_cache(maxsize=64)
def _date(raw: str | None) -> datetime | None:
    """An HTTP date; cached, since every answer of a window repeats the same reset."""
    if not raw:
        return None
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The X-FeatureRateLimit-* headers; garbage in a header counts as that header missing."""
    limit = _int_header(headers, _H_LIMIT)
    remaining = _int_header(headers, _H_REMAINING)
    reset_at = _date(headers.get(_H_RESET))
    if limit is None and remaining is None and reset_at is None:
        return None
    return RateLimit(limit, remaining, reset_at)


def retry_after_seconds(headers: Mapping[str, str], now_wall: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        when = _date(raw)
        if when is None:
            return None
        seconds = when.timestamp() - now_wall
    if seconds != seconds or seconds == float("inf"):  # NaN, inf
        return None
    return max(0.0, seconds)


def backoff(config: RetryConfig, n: int, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, initial * 2**n)]."""
    return rng.uniform(0.0, min(config.backoff_max, config.backoff_initial * (2.0**n)))


@define
class CallContext:
    """One call's settings in, and its body out (read inside the attempt's timeout)."""

    retry: RetryConfig
    timeout: float | None
    max_bytes: int
    deadline: float
    body: bytes = field(default=b"", repr=False)  # may hold secrets
    #: The decoded JSON of a 2xx answer (decoded here, so a garbled one can be retried).
    data: Any = field(default=None, repr=False)
    attempts: int = 0


current_call: ContextVar[CallContext | None] = ContextVar("cldprov_call", default=None)


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

    async def acquire(self, call: CallContext, method: str, path: str) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        if self.try_acquire(now):
            return
        opens = self._opens_at(now)
        if opens is not None and opens > call.deadline:
            raise self._too_far(opens - now)
        log.debug(
            "%s %s waits for the rate-limit gate (%s)",
            method,
            path,
            "the first answer" if opens is None else f"{opens - now:.2f}s",
        )
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append((fut, call.deadline))
        self._arm(loop)
        started = now
        try:
            async with asyncio.timeout_at(call.deadline):
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


# -- the middleware --------------------------------------------------------------------------


class GarbledBodyError(Exception):
    """A 2xx answer whose body is not JSON (cut short by a proxy, say): retried like a drop."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__("garbled response body")
        self.status = status
        self.text = body.decode("utf-8", "replace")


def _decode(body: bytes, status: int) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise GarbledBodyError(status, body) from None


def _never_sent(exc: BaseException) -> bool:
    """True only when the request provably did not reach the server."""
    return isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ConnectionTimeoutError)


async def _read_capped(resp: ClientResponse, cap: int, method: str, path: str) -> bytes:
    """A body whose length is unknown or over ``cap``: refused without being read whole."""
    too_large = ResponseTooLargeError(
        f"the response exceeds the {cap}-byte cap",
        status_code=resp.status,
        method=method,
        path=path,
    )
    if resp.content_length is not None:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in resp.content.iter_any():
        total += len(chunk)
        if total > cap:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_answer(resp: ClientResponse, call: CallContext, method: str, path: str) -> None:
    """Read the body into ``call`` (capped) and decode it if the status is 2xx."""
    length = resp.content_length
    if length is not None and length <= call.max_bytes:
        call.body = await resp.read()  # the common case, without another coroutine layer
    else:
        call.body = await _read_capped(resp, call.max_bytes, method, path)
    if 200 <= resp.status < 300:
        call.data = _decode(call.body, resp.status)


class RateLimitMiddleware:
    """An aiohttp client middleware: ``ClientSession(middlewares=(RateLimitMiddleware(...),))``."""

    def __init__(self, limiter: RateLimiter, max_connections: int) -> None:
        self.limiter = limiter
        self._slots = asyncio.Semaphore(max_connections)

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        call = current_call.get()
        if call is None:
            return await handler(req)  # not one of ours
        limiter, retry = self.limiter, call.retry
        method, path = req.method, req.url.raw_path
        loop = asyncio.get_running_loop()
        n_backoff = 0
        while True:
            call.attempts += 1
            if not limiter.try_acquire(loop.time()):
                await limiter.acquire(call, method, path)
            limiter.stats.sent += 1
            answered = False
            resp: ClientResponse | None = None
            try:
                # The slots queue callers first come, first served: aiohttp's own pool
                # does not, and past its limit it starves the earliest callers.
                async with self._slots, asyncio.timeout(call.timeout):
                    resp = await handler(req)
                    status = resp.status
                    limiter.on_answer(resp.headers, status)
                    answered = True
                    wait = self._retry_wait(resp, method, call, n_backoff)
                    if wait is None:
                        await read_answer(resp, call, method, path)
                        return resp
            except (aiohttp.ClientError, TimeoutError, GarbledBodyError) as exc:
                if resp is not None:
                    resp.close()
                if not answered:
                    limiter.on_answer(None)
                failure = self._classify(exc, method, path, call)
                if failure is not None:
                    raise failure from exc
                wait = backoff(retry, n_backoff, limiter.rng)
                if loop.time() + wait > call.deadline:
                    raise self.final_error(exc, method, path) from exc
                why, gated = type(exc).__name__, False
            except BaseException:
                if resp is not None:
                    resp.close()
                if not answered:
                    limiter.on_answer(None)
                raise
            else:
                resp.release()  # discarded: hand its connection back before waiting
                why, gated = str(status), status in RATE_LIMITED
            n_backoff += 1
            self._log(method, path, why, wait, call)
            if not gated:  # after a 420/429 the shared gate does the waiting, in acquire()
                limiter.stats.waited_seconds += wait
                await asyncio.sleep(wait)

    def _retry_wait(
        self, resp: ClientResponse, method: str, call: CallContext, n: int
    ) -> float | None:
        """Seconds to wait before retrying this response, or None to hand it back."""
        status = resp.status
        if status in RATE_LIMITED:
            wait = self.limiter.on_rejected(resp.headers, n, call.retry)  # closes the gate
        elif status in RETRYABLE_5XX and method in IDEMPOTENT:
            wait = backoff(call.retry, n, self.limiter.rng)
        else:
            return None
        if call.attempts >= call.retry.max_attempts:
            return None
        if asyncio.get_running_loop().time() + wait > call.deadline:
            return None
        return wait

    def _classify(
        self, exc: BaseException, method: str, path: str, call: CallContext
    ) -> BaseException | None:
        """None if the failed attempt may be retried, else the error to raise."""
        if method not in IDEMPOTENT and not _never_sent(exc):
            return OutcomeUnknownError(
                f"the request was sent but no answer came back ({type(exc).__name__}); "
                "the server may or may not have acted on it",
                method=method,
                path=path,
            )
        if call.attempts >= call.retry.max_attempts or not call.retry.retry_connection_errors:
            return self.final_error(exc, method, path)
        return None

    @staticmethod
    def final_error(exc: BaseException, method: str, path: str) -> CldProvisioningError:
        """The library error for an exchange that failed for good."""
        if isinstance(exc, GarbledBodyError):
            return APIError(
                "the response body is not JSON",
                status_code=exc.status,
                method=method,
                path=path,
                body=exc.text,
            )
        if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
            return RequestTimeoutError("no answer within the timeout", method=method, path=path)
        return TransportError(f"connection failed: {type(exc).__name__}", method=method, path=path)

    def _log(self, method: str, path: str, why: str, wait: float, call: CallContext) -> None:
        self.limiter.stats.retried += 1
        log.info(
            "retrying %s %s after %s: waiting %.2fs (attempt %d of %d)",
            method,
            path,
            why,
            wait,
            call.attempts + 1,
            call.retry.max_attempts,
        )
