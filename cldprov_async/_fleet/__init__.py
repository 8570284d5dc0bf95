"""The fleet: one rate-limit budget shared through Redis by every process of an account.

``make_gate`` checks the ``rate_limit_url`` and builds a ``SharedGate`` (``_shared``) on
redis-py's asyncio client (the optional extra ``cldprov-async[redis]``, imported only here
and only when a URL is given). ``redis_client`` is the one place a Redis client is made:
the gate and the key cache (``_keycache``) both get theirs from it.

Imports: the in-process gate (the fallback) and what it imports; nothing above it.
"""

from __future__ import annotations

from typing import Any

from ._shared import REDIS_TIMEOUT, SharedGate, namespace
from ._url import ENV, EXTRA, FleetURL, parse, redis_asyncio

__all__ = [
    "ENV",
    "EXTRA",
    "FleetURL",
    "SharedGate",
    "make_gate",
    "namespace",
    "parse",
    "redis_client",
    "redis_where",
]


def redis_client(url: FleetURL, *, timeout: float = REDIS_TIMEOUT) -> Any:
    """redis-py's asyncio client for ``url``; each call is bounded by ``timeout`` seconds."""
    return redis_asyncio().from_url(
        url.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )


def redis_where(redis: Any) -> str:
    """``host:port`` or the socket path of a client, for messages (never its password)."""
    where = redis.connection_pool.connection_kwargs
    return str(where.get("path") or f"{where.get('host')}:{where.get('port')}")


def make_gate(
    url: FleetURL, *, host: str, account_id: str, bulk_reserve: float, lease_ttl: float
) -> SharedGate:
    """A gate sharing the budget of (``url.prefix``, ``host``, ``account_id``) through Redis."""
    redis = redis_client(url)
    return SharedGate(
        redis,
        namespace(url.prefix, host, account_id),
        bulk_reserve=bulk_reserve,
        lease_ttl=lease_ttl,
        where=redis_where(redis),
    )
