"""The rate-limit-aware retry middleware: each attempt through the gate, and what to retry.

It retries 420/429 for any method (the server rejected it before doing anything); 5xx,
connection errors and timeouts only for idempotent methods; a POST only when it provably
never left (the connection could not be opened). A POST whose outcome is unknown raises
``OutcomeUnknownError`` for the caller (``generate``) to resolve by name.

Per-call settings (retry budget, attempt timeout, size cap) travel in a context variable
set by the session wrapper, so the middleware can sit on the ``ClientSession`` itself.

Imports: the gate, telemetry, config and errors; the session wrapper installs it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from contextvars import ContextVar
from typing import Any

import aiohttp
from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
from attrs import define, field

from . import _telemetry as telemetry
from ._backoff import RATE_LIMITED, backoff
from ._config import RetryConfig
from ._gate import Gate
from ._slots import Slots
from ._watchdog import Watchdog
from .errors import (
    APIError,
    CldProvisioningError,
    OutcomeUnknownError,
    RequestTimeoutError,
    ResponseTooLargeError,
    TransportError,
)

log = logging.getLogger("cldprov_async")

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRYABLE_5XX = frozenset({500, 502, 503, 504})
#: Statuses that may be retried at all (the common answer skips ``_retry_wait``).
_MAY_RETRY = RATE_LIMITED | RETRYABLE_5XX


@define
class CallContext:
    """One call's settings in, and its body out (read inside the attempt's timeout)."""

    retry: RetryConfig
    timeout: float | None
    max_bytes: int
    deadline: float
    #: Bulk work (rotation, ``priority="bulk"``) leaves the gate's reserve to normal calls.
    bulk: bool = False
    #: The operation as called (``access_keys.generate``), for logs and metrics.
    operation: str = ""
    #: Whether OpenTelemetry records this call (its spans and metrics).
    traced: bool = False
    body: bytes = field(default=b"", repr=False)  # may hold secrets
    #: The decoded JSON of a 2xx answer (decoded here, so a garbled one can be retried).
    data: Any = field(default=None, repr=False)
    attempts: int = 0
    #: Seconds this call waited at the rate-limit gate (the gate's stats are client-wide).
    waited: float = 0.0
    #: The status of the last answer, None until one came.
    status: int | None = None


current_call: ContextVar[CallContext | None] = ContextVar("cldprov_call", default=None)


class GarbledBodyError(Exception):
    """A 2xx answer whose body is not JSON (cut short by a proxy, say): retried like a drop."""

    def __init__(self, status: int, body: bytes) -> None:
        super().__init__("garbled response body")
        self.status = status
        self.text = body.decode("utf-8", "replace")


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


#: ``json.loads`` of text, without its per-call keyword checks (the same default decoder).
_decode_text = json.JSONDecoder().decode


def _decode(body: bytes, status: int) -> Any:
    """The body's JSON. Read as UTF-8 first, as RFC 8259 has every JSON exchange encoded:
    ``json.loads(bytes)`` would detect the encoding of each body in Python first. Anything
    that is not UTF-8 JSON (a BOM, UTF-16 or -32, garbage) goes to ``json.loads(bytes)``,
    so every body decodes as before (tests/test_fast_paths.py)."""
    try:
        return _decode_text(body.decode())
    except (ValueError, RecursionError):
        pass
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
        raise GarbledBodyError(status, body) from None


class RateLimitMiddleware:
    """An aiohttp client middleware: ``ClientSession(middlewares=(RateLimitMiddleware(...),))``."""

    def __init__(self, limiter: Gate, max_connections: int) -> None:
        self.limiter = limiter
        self._slots = Slots(max_connections)
        #: Every attempt's timeout on one timer (``asyncio.timeout`` costs one each).
        self._watchdog = Watchdog()

    async def __call__(self, req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        call = current_call.get()
        if call is None:
            return await handler(req)  # not one of ours
        limiter, retry, slots = self.limiter, call.retry, self._slots
        method, path = req.method, req.url.raw_path
        loop = asyncio.get_running_loop()
        n_backoff = 0
        while True:
            call.attempts += 1
            if not limiter.try_acquire(loop.time(), call.bulk):
                queued = loop.time()
                try:
                    await limiter.acquire(call.deadline, method, path, call.bulk, call.operation)
                finally:
                    call.waited += loop.time() - queued
            limiter.stats.sent += 1
            answered = False
            resp: ClientResponse | None = None
            try:
                # The slots queue callers first come, first served: aiohttp's own pool
                # does not, and past its limit it starves the earliest callers.
                if not slots.take_now():
                    await slots.take()
                try:
                    with self._watchdog.watch(call.timeout):
                        resp = await handler(req)
                        status = call.status = resp.status
                        limiter.on_answer(resp.headers, status)
                        answered = True
                        wait = (
                            self._retry_wait(resp, method, call, n_backoff)
                            if status in _MAY_RETRY
                            else None
                        )
                        if wait is None:
                            length = resp.content_length
                            if length is None or length > call.max_bytes or status >= 300:
                                await read_answer(resp, call, method, path)
                            else:  # the common answer, without another coroutine level
                                body = call.body = await resp.read()
                                call.data = _decode(body, status)
                            if call.traced:
                                telemetry.attempt(call.operation, _final_outcome(status))
                            return resp
                finally:
                    slots.give()
            except (aiohttp.ClientError, TimeoutError, GarbledBodyError) as exc:
                if resp is not None:
                    resp.close()
                if not answered:
                    limiter.on_answer(None)
                failure = self._classify(exc, method, path, call)
                if failure is not None:
                    telemetry.attempt(call.operation, telemetry.FAILED)
                    raise failure from exc
                wait = backoff(retry, n_backoff, limiter.rng)
                if loop.time() + wait > call.deadline:
                    telemetry.attempt(call.operation, telemetry.FAILED)
                    raise self.final_error(exc, method, path) from exc
                why, gated = type(exc).__name__, False
                telemetry.attempt(call.operation, telemetry.RETRIED)
            except BaseException as exc:
                if resp is not None:
                    resp.close()
                if not answered:
                    limiter.on_answer(None)
                if isinstance(exc, Exception):  # a body over the cap, say; not a cancellation
                    telemetry.attempt(call.operation, telemetry.FAILED)
                raise
            else:
                resp.release()  # discarded: hand its connection back before waiting
                why, gated = str(status), status in RATE_LIMITED
                telemetry.attempt(call.operation, _retried_outcome(status))
            n_backoff += 1
            self._log(method, path, why, wait, call, status if answered else None)
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

    def _log(
        self, method: str, path: str, why: str, wait: float, call: CallContext, status: int | None
    ) -> None:
        self.limiter.stats.retried += 1
        log.info(
            "retrying %s %s after %s: waiting %.2fs (attempt %d of %d)",
            method,
            path,
            why,
            wait,
            call.attempts + 1,
            call.retry.max_attempts,
            extra=telemetry.log_extra(
                call.operation, method, path, status=status, attempt=call.attempts + 1, wait_s=wait
            ),
        )


def _final_outcome(status: int) -> str:
    """The counter's outcome for an answer handed back to the caller."""
    if status in RATE_LIMITED:
        return telemetry.REJECTED
    return telemetry.OK if 200 <= status < 300 else telemetry.FAILED


def _retried_outcome(status: int) -> str:
    return telemetry.REJECTED if status in RATE_LIMITED else telemetry.RETRIED
