"""The fleet: one rate-limit budget shared through Redis by every process of an account.

``make_gate`` checks the ``rate_limit_url`` and builds a ``SharedGate`` (``_shared``) on
redis-py's asyncio client (the optional extra ``cldprov-async[redis]``, imported only here
and only when a URL is given). ``connect`` is the one place a Redis client is made: the
gate, the rotation lock (``_lock``) and the key cache (``_keycache``) all get theirs from it.

Imports: the in-process gate (the fallback) and what it imports; nothing above it.
"""

from __future__ import annotations

from typing import Any

from ._shared import REDIS_TIMEOUT, SharedGate, namespace
from ._url import ENV, EXTRA, FleetURL, parse, redis_asyncio

__all__ = [
    "ENV",
    "EXTRA",
    "REDIS_TIMEOUT",
    "FleetURL",
    "SharedGate",
    "connect",
    "make_gate",
    "namespace",
    "parse",
    "where",
]


def connect(url: FleetURL, *, timeout: float = REDIS_TIMEOUT) -> Any:
    """The one place a Redis client is made: redis-py's asyncio client for ``url``, strings
    decoded, every call bounded by ``timeout`` seconds. The gate, the rotation lock and the
    key cache all get theirs here."""
    return redis_asyncio().from_url(
        url.url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        decode_responses=True,
    )


def where(redis: Any) -> str:
    """``host:port`` (or the socket path) of a client, for messages: never its password."""
    kwargs = redis.connection_pool.connection_kwargs
    return str(kwargs.get("path") or f"{kwargs.get('host')}:{kwargs.get('port')}")


def make_gate(
    url: FleetURL, *, host: str, account_id: str, bulk_reserve: float, lease_ttl: float
) -> SharedGate:
    """A gate sharing the budget of (``url.prefix``, ``host``, ``account_id``) through Redis."""
    redis = connect(url)
    return SharedGate(
        redis,
        namespace(url.prefix, host, account_id),
        bulk_reserve=bulk_reserve,
        lease_ttl=lease_ttl,
        where=where(redis),
    )
