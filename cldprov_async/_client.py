"""``CldProvisioning``: configuration in, ``client.access_keys`` and
``client.product_environments`` out, one session underneath.

Imports: the operations classes (``_api``), the session, the gates (in-process, and the
shared one of ``_fleet``), the lifecycle's tools (verifier, hook, lock), the key cache, the
clock, the snapshot and config; the CLI and users import it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import TracebackType

import aiohttp
from yarl import URL

from . import _fleet
from ._api import AccessKeysAPI
from ._clock import SYSTEM_CLOCK, Clock, check_clock
from ._config import RetryConfig, Security, resolve_credentials, resolve_server_url
from ._gate import Gate, RateLimiter, RateLimitStats, check_bulk_reserve
from ._hook import ShellHook
from ._keycache import DEFAULT_TTL, KeyCache, open_key_cache
from ._lock import RotationLock
from ._product_environments import DEFAULT_MAX_LISTING_BYTES, ProductEnvironmentOperations
from ._session import Session
from ._snapshot import RateLimit
from ._verify import PingVerifier

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

    ``clock`` (default: the system's) is "now" for rotation decisions, for reading the
    server's reset dates and for the ping verifier's backoff; give the client and the fake
    server one ``cldprov_async.testing.ManualClock`` to move time in tests. (The fleet's
    shared gate keeps the system clock: its leases are shared with other processes.)

    The key cache (``client.key_cache``) remembers what key listings said (never a secret)
    so that audits and age-filtered rotations list only the environments whose keys
    changed. It lives in the fleet's Redis (``rate_limit_url`` or ``rate_limit_redis``) when
    one is set, else in a file
    under ``key_cache_dir`` (default ``$XDG_CACHE_HOME/cldprov-async``, else
    ``~/.cache/cldprov-async``); a given ``key_cache_dir`` wins over Redis. Entries are
    trusted for at most ``key_cache_ttl`` (7 days, of the client's clock).
    ``key_cache=False`` turns it off.

    Nothing connects until the first call. Every argument is checked here, before any
    connection is opened.

    Args:
        account_id: The account's id; from ``CLOUDINARY_ACCOUNT_URL`` when None.
        security: The provisioning key and secret; from ``CLOUDINARY_ACCOUNT_URL`` when None.
        region: ``api`` (the default), ``api-eu`` or ``api-ap``, for
            ``https://{region}.cloudinary.com``.
        server_url: Another base URL instead of a region: ``https://`` (plain ``http://``
            only to a loopback host, such as the fake server).
        timeout: Seconds each attempt may take; None for no limit.
        retry_config: The retry budget of every call that passes no ``retries``.
        session: An ``aiohttp.ClientSession`` to use; the client leaves it open on close.
        max_response_bytes: The largest answer read (4 MiB); a larger one raises
            ``ResponseTooLargeError`` without being read whole.
        max_listing_bytes: The same cap for the product-environment listing (128 MiB).
        max_connections: The connection pool's size.
        env: Where to read ``CLOUDINARY_ACCOUNT_URL`` and ``CLDPROV_RATE_LIMIT_URL``;
            ``os.environ`` when None.
        rate_limit_url: A Redis URL (one server, Sentinel or Cluster) holding a rate-limit
            budget shared with other processes; from ``CLDPROV_RATE_LIMIT_URL`` when None,
            else each client has its own gate.
        bulk_reserve: The fraction of each window's limit, in [0, 1), that bulk calls leave
            to normal ones.
        rate_limit_redis: A ``redis.asyncio.Redis`` or ``RedisCluster`` holding the shared
            budget instead of a URL; never closed by the client.
        clock: "Now" for rotation decisions, reset dates and the ping verifier's backoff;
            the system's when None.
        key_cache: Whether the client keeps a key cache (``client.key_cache``).
        key_cache_dir: The key cache's folder; wins over the fleet's Redis.
        key_cache_ttl: How long a cache entry is trusted.

    Attributes:
        account_id (str): The account the client acts on.
        server_url (yarl.URL): The base URL requests go to.
        bulk_reserve (float): The fraction of each window's limit bulk work leaves to normal
            calls.
        clock (Clock): The client's clock.
        access_keys (AccessKeysAPI): The access-key operations and rotation.
        product_environments (ProductEnvironmentOperations): The product-environment
            listing.

    Raises:
        ValueError: An argument has a bad value, naming it (credentials missing, an
            ``http://`` URL to another host, a malformed ``rate_limit_url``, both
            ``rate_limit_url`` and ``rate_limit_redis``...).
        TypeError: An argument has the wrong type, naming it.
        ImportError: A fleet Redis is set but redis-py is missing (install
            ``cldprov-async[redis]``).
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
        clock: Clock | None = None,
        key_cache: bool = True,
        key_cache_dir: str | os.PathLike[str] | None = None,
        key_cache_ttl: timedelta = DEFAULT_TTL,
    ) -> None:
        account_id, security = resolve_credentials(account_id, security, env)
        self.clock: Clock = SYSTEM_CLOCK if clock is None else check_clock(clock)
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
        if not isinstance(key_cache, bool):
            raise TypeError(f"key_cache must be a bool, not {type(key_cache).__name__}")
        if key_cache_dir is not None and not isinstance(key_cache_dir, str | os.PathLike):
            raise TypeError(
                f"key_cache_dir must be a path or None, not {type(key_cache_dir).__name__}"
            )
        host = f"{base_url.host}:{base_url.port}"
        target = None
        if rate_limit_redis is not None:
            target = _fleet.FleetTarget(adopted=_fleet.adopt(rate_limit_redis))
        elif fleet is not None:
            target = _fleet.FleetTarget(url=fleet)
        cache: KeyCache | None = None
        if key_cache:
            cache = open_key_cache(
                account_id=account_id,
                server=host,
                directory=None if key_cache_dir is None else Path(key_cache_dir),
                fleet=target,
                ttl=key_cache_ttl,
            )
        self.account_id = account_id
        self.server_url = base_url
        self.bulk_reserve = bulk_reserve
        self._fleet = target
        self._host = host
        self._secret = security.provisioning_api_secret
        self._closables: list[PingVerifier] = []
        limiter: Gate = RateLimiter(bulk_reserve=bulk_reserve, wall=self.clock)
        if target is not None:
            limiter = _fleet.make_gate(
                target.connect(),
                prefix=target.prefix,
                host=host,
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
        self.product_environments = ProductEnvironmentOperations(
            self._session, account_id, max_listing_bytes=max_listing_bytes
        )
        self.access_keys = AccessKeysAPI(
            self._session,
            account_id,
            environments=self.product_environments,
            key_cache=cache,
            clock=self.clock,
        )

    @property
    def rate_limit(self) -> RateLimit | None:
        """What the server last said about the rate limit (None before the first answer)."""
        return self._session.limiter.snapshot

    @property
    def stats(self) -> RateLimitStats:
        """Requests sent, rejected by the rate limit, retried, and seconds spent waiting."""
        return self._session.limiter.stats

    def ping_verifier(self, timeout: float = 120.0) -> PingVerifier:
        """A ready ``verify=`` for rotations: the Admin API's ping must accept the new key.

        It pings this client's server with the new key (no provisioning budget spent or
        waited on), retrying a refused key with backoff for ``timeout`` seconds of the
        client's clock. Closed with the client.

        Args:
            timeout: seconds to keep retrying a key that is not accepted yet.

        Returns:
            The ``PingVerifier``.
        """
        verifier = PingVerifier(self.server_url, timeout=timeout, clock=self.clock)
        self._closables.append(verifier)
        return verifier

    def deploy_hook(self, command: str, timeout: float = 60.0) -> ShellHook:
        """A ``deliver=`` that runs ``command`` through the shell per handed-off key.

        The hook's environment is ours minus ``CLOUDINARY_ACCOUNT_URL`` and any variable
        holding this client's provisioning secret (see ``ShellHook``).

        Args:
            command: the shell command; it reads one JSON object from stdin.
            timeout: seconds it may run before its process group is killed.

        Returns:
            The ``ShellHook``.
        """
        return ShellHook(command, timeout=timeout, hide=(self._secret,))

    def rotation_lock(self, directory: str | None = None) -> RotationLock:
        """The lock that lets one rotation at a time write to this account on this server.

        A Redis lease when the client has a ``rate_limit_url``, else a lock file on this
        machine (``directory``, else ``$CLDPROV_LOCK_DIR``, else the user's runtime or cache
        directory). ``async with client.rotation_lock():`` takes it or raises
        ``RotationLockedError`` naming the holder's host and pid; it never waits.

        Args:
            directory: where the lock file goes (no effect with Redis).

        Returns:
            The ``RotationLock`` (not yet taken).
        """
        return RotationLock(self._host, self.account_id, fleet=self._fleet, directory=directory)

    @property
    def key_cache(self) -> KeyCache | None:
        """The key cache audits and age-filtered rotations use (None: turned off)."""
        return self.access_keys.key_cache

    async def close(self) -> None:
        """Close the connections (not a borrowed ``session``); later calls raise RuntimeError.

        Leaving ``async with`` does this; closing twice is harmless.
        """
        try:
            for closable in self._closables:
                await closable.aclose()
        finally:
            try:
                await self._session.close()
            finally:
                if self.access_keys.key_cache is not None:
                    await self.access_keys.key_cache.close()

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
