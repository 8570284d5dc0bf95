"""The session wrapper: one aiohttp ``ClientSession`` and the one path every request takes.

It owns the session (or borrows the caller's and leaves it open), puts the credentials in
an ``Authorization`` header built once, never follows redirects, and hands each call's
budget to the rate-limit middleware through a context variable. What comes back is a
``Reply`` with the body already read, so nothing downstream can leak a connection.

Imports: the middleware, the gate, telemetry, config and version; the operations sit above it.
"""

from __future__ import annotations

import asyncio
import contextlib
import platform
import warnings
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NamedTuple

import aiohttp
from multidict import CIMultiDictProxy
from yarl import URL

from . import _telemetry as telemetry
from ._config import RetryConfig, Security
from ._gate import Gate, RateLimiter
from ._middleware import (
    CallContext,
    GarbledBodyError,
    RateLimitMiddleware,
    current_call,
    read_answer,
)
from ._version import __version__

USER_AGENT = (
    f"cldprov-async/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)
_NO_TIMEOUT = aiohttp.ClientTimeout(total=None)
_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})


#: Request URLs kept per path (a client talks to few paths; cleared when this many).
_URL_CACHE_SIZE = 1024


class Reply(NamedTuple):
    """A finished exchange: status, headers and the whole body (a tuple: built per call)."""

    method: str
    path: str
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes  # may hold secrets: not in repr
    #: The decoded JSON when the status is 2xx.
    data: Any

    def __repr__(self) -> str:
        return f"Reply(method={self.method!r}, path={self.path!r}, status={self.status!r})"


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
        self._urls: dict[str, URL] = {}

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

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
        body: bytes | None = None,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        max_bytes: int | None = None,
        operation: str = "",
        bulk: bool = False,
    ) -> Reply:
        """One exchange; ``max_bytes`` overrides the client's response cap for this call."""
        session = self._session()
        retry = retries or self.retry
        timeout = self.timeout if timeout_ms is None else timeout_ms / 1000.0
        loop = asyncio.get_running_loop()
        call = CallContext(
            retry=retry,
            timeout=timeout,
            max_bytes=self.max_response_bytes if max_bytes is None else max_bytes,
            deadline=loop.time() + retry.max_wait,
            operation=operation,
            bulk=bulk,
        )
        headers: Mapping[str, str] = self._headers if body is None else self._json_headers
        if http_headers:
            headers = {**headers, **http_headers}
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= _URL_CACHE_SIZE:
                self._urls.clear()
            url = self._urls[path] = self.base_url.with_path(self._base_path + path, encoded=True)
        if params:
            url = url.with_query(params)
        extra: Mapping[str, Any] = _NO_EXTRA
        if self._borrowed is not None:
            # A borrowed session has its own middlewares and timeout; use ours for our calls.
            extra = {
                "middlewares": (self._middleware,),
                "timeout": _NO_TIMEOUT,
                "raise_for_status": False,
            }
        token = current_call.set(call)
        try:
            async with session.request(
                method, url, data=body, headers=headers, allow_redirects=False, **extra
            ) as resp:
                if not call.attempts:
                    # Our middleware did not run (a test double such as aioresponses
                    # replaced the transport): read the answer here, without retries.
                    await read_answer(resp, call, method, url.raw_path)
                    call.attempts, call.status = 1, resp.status
                return Reply(method, url.raw_path, resp.status, resp.headers, call.body, call.data)
        except (aiohttp.ClientError, TimeoutError, GarbledBodyError) as exc:
            raise RateLimitMiddleware.final_error(exc, method, url.raw_path) from exc
        finally:
            current_call.reset(token)
            telemetry.request_done(call.attempts, call.waited, call.status)
            # Timer handles keep a snapshot of the context (and so of `call`) until the loop
            # drops them; let the answer go now rather than dozens of calls later.
            call.body, call.data = b"", None

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
