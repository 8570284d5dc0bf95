"""``CldProvisioning``: configuration in, ``client.access_keys`` and
``client.product_environments`` out, one session underneath.

Imports: the operations classes (``_api``), the session, the gates (in-process, and the
shared one of ``_fleet``), the snapshot and config; the CLI and users import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from types import TracebackType

import aiohttp
from yarl import URL

from . import _fleet
from ._api import AccessKeysAPI
from ._config import RetryConfig, Security, resolve_credentials, resolve_server_url
from ._gate import Gate, RateLimiter, RateLimitStats, check_bulk_reserve
from ._product_environments import DEFAULT_MAX_LISTING_BYTES, ProductEnvironmentOperations
from ._session import Session
from ._snapshot import RateLimit

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


class CldProvisioning:
    """An asyncio client for the Account Provisioning API.

    Use it as ``async with CldProvisioning(...) as client`` (or ``await client.close()``).
    ``account_id`` and ``security`` fall back to ``CLOUDINARY_ACCOUNT_URL``
    (``account://KEY:SECRET@ACCOUNT_ID``). ``timeout`` is seconds per attempt;
    ``retry_config`` is the default budget of every call (override per call with
    ``retries=``). ``max_response_bytes`` caps each answer; the product-environment listing,
    one unpaged answer for the whole account, has its own cap, ``max_listing_bytes`` (128 MiB).
    Pass ``session`` to share an ``aiohttp.ClientSession``: the client then
    leaves it open on close.

    ``rate_limit_url`` (else ``CLDPROV_RATE_LIMIT_URL``) shares the rate-limit budget with
    every process of the account through Redis (needs ``cldprov-async[redis]``): one server
    (``redis://``, ``rediss://``, ``unix://``), Sentinel
    (``redis+sentinel://[:password@]host:port[,host:port...]/SERVICE[/db]``) or Cluster
    (``redis+cluster://[:password@]host:port[,host:port...]``), ``?prefix=NAME`` to keep
    budgets apart. Or pass ``rate_limit_redis``, a ``redis.asyncio.Redis`` or ``RedisCluster``
    you built: it stays yours (never closed by the client). Bulk calls (rotation,
    ``priority="bulk"``) leave ``bulk_reserve`` of each window's limit to normal ones (0 turns
    the reserve off).
    """

    def __init__(
        self,
        account_id: str | None = None,
        security: Security | None = None,
        *,
        region: str = "api",
        server_url: str | URL | None = None,
        timeout: float | None = 30.0,
        retry_config: RetryConfig | None = None,
        session: aiohttp.ClientSession | None = None,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
        max_connections: int = 100,
        env: Mapping[str, str] | None = None,
        rate_limit_url: str | None = None,
        bulk_reserve: float = 0.1,
        rate_limit_redis: object = None,
    ) -> None:
        account_id, security = resolve_credentials(account_id, security, env)
        bulk_reserve = check_bulk_reserve(bulk_reserve)
        if rate_limit_redis is not None and rate_limit_url is not None:
            raise ValueError("pass rate_limit_url or rate_limit_redis, not both")
        if rate_limit_url is None and rate_limit_redis is None:
            rate_limit_url = (os.environ if env is None else env).get(_fleet.ENV) or None
        fleet = None if rate_limit_url is None else _fleet.parse(rate_limit_url)
        base_url = resolve_server_url(region, server_url)
        if timeout is not None and (isinstance(timeout, bool) or not timeout > 0):
            raise ValueError(f"timeout must be a positive number of seconds or None, not {timeout}")
        if retry_config is not None and not isinstance(retry_config, RetryConfig):
            raise TypeError(
                f"retry_config must be a RetryConfig, not {type(retry_config).__name__}"
            )
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise TypeError(
                f"session must be an aiohttp.ClientSession, not {type(session).__name__}"
            )
        for name, value in (
            ("max_response_bytes", max_response_bytes),
            ("max_listing_bytes", max_listing_bytes),
            ("max_connections", max_connections),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        self.account_id = account_id
        self.server_url = base_url
        #: The fraction of each window's limit bulk work leaves to normal calls.
        self.bulk_reserve = bulk_reserve
        limiter: Gate = RateLimiter(bulk_reserve=bulk_reserve)
        redis = None
        if rate_limit_redis is not None:
            redis = _fleet.adopt(rate_limit_redis)
        elif fleet is not None:
            redis = _fleet.connect(fleet)
        if redis is not None:
            limiter = _fleet.make_gate(
                redis,
                prefix="" if fleet is None else fleet.prefix,
                host=f"{base_url.host}:{base_url.port}",
                account_id=account_id,
                bulk_reserve=bulk_reserve,
                lease_ttl=timeout or 60.0,
            )
        self._session = Session(
            base_url=base_url,
            security=security,
            timeout=timeout,
            retry=retry_config or RetryConfig(),
            max_response_bytes=max_response_bytes,
            max_connections=max_connections,
            session=session,
            limiter=limiter,
        )
        self.access_keys = AccessKeysAPI(self._session, account_id)
        self.product_environments = ProductEnvironmentOperations(
            self._session, account_id, max_listing_bytes=max_listing_bytes
        )

    @property
    def rate_limit(self) -> RateLimit | None:
        """What the server last said about the rate limit (None before the first answer)."""
        return self._session.limiter.snapshot

    @property
    def stats(self) -> RateLimitStats:
        """Requests sent, rejected by the rate limit, retried, and seconds spent waiting."""
        return self._session.limiter.stats

    async def close(self) -> None:
        await self._session.close()

    async def __aenter__(self) -> CldProvisioning:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return (
            f"CldProvisioning(account_id={self.account_id!r}, server_url={str(self.server_url)!r})"
        )

    def __del__(self) -> None:
        session = getattr(self, "_session", None)
        if session is not None:
            session.abandon()
