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

    ``rate_limit_url`` (else ``CLDPROV_RATE_LIMIT_URL``), a ``redis://``, ``rediss://`` or
    ``unix://`` URL, shares the rate-limit budget with every process of the account through
    Redis (needs ``cldprov-async[redis]``). Bulk calls (rotation, ``priority="bulk"``) leave
    ``bulk_reserve`` of each window's limit to normal ones (0 turns the reserve off).

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
        rate_limit_url: A Redis URL holding a rate-limit budget shared with other processes;
            from ``CLDPROV_RATE_LIMIT_URL`` when None, else each client has its own gate.
        bulk_reserve: The fraction of each window's limit, in [0, 1), that bulk calls leave
            to normal ones.

    Attributes:
        account_id (str): The account the client acts on.
        server_url (yarl.URL): The base URL requests go to.
        bulk_reserve (float): The fraction of each window's limit bulk work leaves to normal
            calls.
        access_keys (AccessKeysAPI): The access-key operations and rotation.
        product_environments (ProductEnvironmentOperations): The product-environment
            listing.

    Raises:
        ValueError: An argument has a bad value, naming it (credentials missing, an
            ``http://`` URL to another host, a malformed ``rate_limit_url``...).
        TypeError: An argument has the wrong type, naming it.
        ImportError: ``rate_limit_url`` is set but redis-py is missing (install
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
    ) -> None:
        account_id, security = resolve_credentials(account_id, security, env)
        bulk_reserve = check_bulk_reserve(bulk_reserve)
        if rate_limit_url is None:
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
        self.bulk_reserve = bulk_reserve
        limiter: Gate = RateLimiter(bulk_reserve=bulk_reserve)
        if fleet is not None:
            limiter = _fleet.make_gate(
                fleet,
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
        """Close the connections (not a borrowed ``session``); later calls raise RuntimeError.

        Leaving ``async with`` does this; closing twice is harmless.
        """
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
