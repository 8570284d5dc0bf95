"""The session wrapper: one aiohttp ``ClientSession`` and the one path every request takes.

It owns the session (or borrows the caller's and leaves it open), puts the credentials in
an ``Authorization`` header built once, never follows redirects, and hands each call's
budget to the rate-limit middleware through a context variable. ``Session.call`` is the one
request path every operation takes (``Operations._call`` is it): the JSON body out through
the one converter, the answer read whole inside the attempt (so nothing downstream can leak
a connection), a typed error for a non-2xx answer, a frozen model for a 2xx one, and one
span per call. One layer, not two: every coroutine level is paid on every resumption.

Imports: the middleware, the gate, telemetry, converter, errors, config and version; the
operations sit above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import platform
import warnings
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from . import _telemetry as telemetry
from ._config import RetryConfig, Security
from ._converter import structure, unstructure
from ._gate import Gate, RateLimiter
from ._middleware import (
    CallContext,
    GarbledBodyError,
    RateLimitMiddleware,
    current_call,
    read_answer,
)
from ._version import __version__
from .errors import CldProvisioningError, from_response

T = TypeVar("T")
#: A query: (name, value) pairs in the order sent (hashable, so its URL can be kept).
Query = tuple[tuple[str, str], ...]
USER_AGENT = (
    f"cldprov-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


#: Request URLs kept per path and query (a client talks to few; cleared when this many).
_URL_CACHE_SIZE = 1024


class Session:
    """Sends requests for one client; see the module docstring."""

    def __init__(
        self,
        *,
        base_url: URL,
        security: Security,
        timeout: float | None,
        retry: RetryConfig,
        max_response_bytes: int,
        max_connections: int,
        session: aiohttp.ClientSession | None,
        limiter: Gate | None = None,
    ) -> None:
        self.base_url = base_url
        self._base_path = base_url.raw_path.rstrip("/")  # a custom host may serve under a prefix
        self.timeout = timeout
        self.retry = retry
        self.max_response_bytes = max_response_bytes
        self.limiter: Gate = limiter or RateLimiter()
        self._middleware = RateLimitMiddleware(self.limiter, max_connections)
        self._borrowed = session
        self._owned: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._closed = False
        auth = aiohttp.encode_basic_auth(
            security.provisioning_api_key, security.provisioning_api_secret
        )
        self._headers = {
            "Authorization": auth,
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._json_headers = {**self._headers, "Content-Type": "application/json"}
        self._urls: dict[str | tuple[str, Query], URL] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def _session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("this CldProvisioning client is closed")
        if self._borrowed is not None:
            return self._borrowed
        if self._owned is None:
            self._owned = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                middlewares=(self._middleware,),
                timeout=_NO_TIMEOUT,  # the middleware times each attempt instead
                raise_for_status=False,
            )
        return self._owned

    async def call(
        self,
        method: str,
        path: str,
        result: type[T],
        *,
        operation: str,
        sub_account_id: str | None = None,
        params: Query = (),
        body: object = None,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        priority: str = "normal",
    ) -> T:
        """One call of ``operation``, named as called (``access_keys.list``): one span.

        ``params`` is the query, as pairs in the order sent; ``max_bytes`` overrides the
        client's response cap for this call.
        """
        scope = telemetry.start(operation, sub_account_id)
        try:
            session = self._owned
            if session is None or self._closed:  # not yet opened, borrowed, or closed
                session = self._session()
            data = None if body is None else json.dumps(unstructure(body)).encode()
            retry = retries or self.retry
            timeout = self.timeout if timeout_ms is None else timeout_ms / 1000.0
            loop = asyncio.get_running_loop()
            call = CallContext(  # positional: the settings in the order the class lists them
                retry,
                timeout,
                self.max_response_bytes if max_bytes is None else max_bytes,
                loop.time() + retry.max_wait,
                priority == "bulk",
                operation,
                scope is not None,
            )
            headers: Mapping[str, str] = self._headers if data is None else self._json_headers
            if http_headers:
                headers = {**headers, **http_headers}
            # A URL built once per path and query: yarl parses and aiohttp reads each new one.
            # Only listings repeat their queries; a delete by name names a new key each time.
            where = (path, params) if params else path
            url = self._urls.get(where)
            if url is None:
                url = self.base_url.with_path(self._base_path + path, encoded=True)
                url = url.with_query(params) if params else url
                if not params or method == "GET":
                    if len(self._urls) >= _URL_CACHE_SIZE:
                        self._urls.clear()
                    self._urls[where] = url
            extra: Mapping[str, Any] = _NO_EXTRA
            if self._borrowed is not None:
                # A borrowed session has its own middlewares and timeout; use ours for our calls.
                extra = {
                    "middlewares": (self._middleware,),
                    "timeout": _NO_TIMEOUT,
                    "raise_for_status": False,
                }
            raw_path = url.raw_path
            token = current_call.set(call)
            try:
                async with session.request(
                    method, url, data=data, headers=headers, allow_redirects=False, **extra
                ) as resp:
                    if not call.attempts:
                        # Our middleware did not run (a test double such as aioresponses
                        # replaced the transport): read the answer here, without retries.
                        await read_answer(resp, call, method, raw_path)
                        call.attempts, call.status = 1, resp.status
                    status, answer_headers = resp.status, resp.headers
                    raw, decoded = call.body, call.data
            except (aiohttp.ClientError, TimeoutError, GarbledBodyError) as exc:
                error = RateLimitMiddleware.final_error(exc, method, raw_path)
                error.rate_limit = self.limiter.snapshot
                raise error from exc
            except CldProvisioningError as exc:
                if exc.rate_limit is None:
                    exc.rate_limit = self.limiter.snapshot
                raise
            finally:
                current_call.reset(token)
                if scope is not None:
                    telemetry.request_done(call.attempts, call.waited, call.status)
                # Timer handles keep a snapshot of the context (and so of `call`) until the
                # loop drops them; let the answer go now rather than dozens of calls later.
                call.body, call.data = b"", None
            if not 200 <= status < 300:
                raise from_response(
                    status,
                    answer_headers,
                    raw,
                    method=method,
                    path=raw_path,
                    rate_limit=self.limiter.snapshot,
                )
            value = structure(decoded, result, status=status, method=method, path=raw_path)
        except BaseException as exc:
            if scope is not None:
                scope.finish(exc)
            raise
        if scope is not None:
            scope.finish(None)
        return value

    async def close(self) -> None:
        """Close the owned session (a borrowed one stays open: it is the caller's)."""
        self._closed = True
        try:
            await self.limiter.aclose()
        finally:
            if self._owned is not None:
                owned, self._owned = self._owned, None
                await owned.close()

    def abandon(self) -> None:
        """The client is being collected unclosed: say so once, clearly, and drop the sockets.

        Closing the connector here (synchronously; the loop may be gone) spares the caller
        aiohttp's vaguer "Unclosed client session" and "Unclosed connector" warnings.
        """
        owned = self._owned
        if owned is None or owned.closed:
            return
        warnings.warn(
            "a CldProvisioning client was never closed; use `async with CldProvisioning(...)`"
            " or `await client.close()`",
            ResourceWarning,
            stacklevel=3,
        )
        connector = owned.connector
        if connector is not None:
            with contextlib.suppress(Exception):
                connector._close(abort_ssl=True)  # the sync core of close(); no loop needed
