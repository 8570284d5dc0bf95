"""The fleet's Redis: one factory for every kind, and the rule that keeps a budget in one slot.

``connect(url)`` builds redis-py's asyncio client for a checked ``rate_limit_url``: a
``Redis`` for one server, a ``Redis`` on the Sentinel service's master (redis-py's
``Sentinel.master_for``: it asks the sentinels where the master is on every new connection,
so it follows failovers), or a ``RedisCluster``. ``adopt(redis)`` wraps a client the
application built itself (``rate_limit_redis=``): it stays the application's, never closed
here. The shared gate uses both; a lock or a cache on the same Redis should too.

The hash-slot rule: on Redis Cluster a Lua script may only touch keys of one hash slot, and
keys sharing a ``{tag}`` share a slot. Every key of one budget therefore carries the
budget's tag, ``budget_tag(prefix, host, account_id)``; name keys with
``fleet_key(tag, name)`` (``cldprov:{staging:api.cloudinary.com:443:ACCOUNT}:state``).

Imports: ``_url`` only; redis-py when a client is built.
"""

from __future__ import annotations

from typing import Any

from attrs import frozen

from ._url import FleetURL, Kind, redis_asyncio

#: Seconds a Redis call that callers wait on may take (a connection attempt too).
REDIS_TIMEOUT = 0.5
#: Seconds a call nobody waits on may take: a probe, a heartbeat, a client's first call
#: (a cluster client then maps the slots and reads the server's command table).
SLOW_TIMEOUT = 3.0


def budget_tag(prefix: str, host: str, account_id: str) -> str:
    """The hash tag every key of one budget carries: ``{prefix:host:account_id}``.

    Args:
        prefix: The URL's ``?prefix=`` ("" without one).
        host: The API's ``host:port``.
        account_id: The Cloudinary account.

    Returns:
        The tag, braces included.
    """
    return "{" + f"{prefix}:{host}:{account_id}" + "}"


def fleet_key(tag: str, name: str) -> str:
    """A key in the budget's hash slot: ``cldprov:{tag}:name``.

    Args:
        tag: From :func:`budget_tag`.
        name: What the key holds (``state``, ``leases``...): no braces.

    Returns:
        The key.

    Raises:
        ValueError: ``name`` holds a brace (the key would leave the slot rule unclear).
    """
    if "{" in name or "}" in name:
        raise ValueError(f"a fleet key name holds no braces, not {name!r}")
    return f"cldprov:{tag}:{name}"


@frozen
class FleetRedis:
    """redis-py's asyncio client for a fleet's Redis, what to call it in logs, how to close it.

    Attributes:
        redis: A ``redis.asyncio.Redis`` (one server, or the Sentinel service's master) or
            a ``redis.asyncio.RedisCluster``.
        kind: ``"redis"``, ``"sentinel"`` or ``"cluster"``.
        where: The servers, for messages: never a password.
    """

    redis: Any
    kind: Kind
    where: str
    _owned: tuple[Any, ...] = ()  # what aclose() closes: nothing the application built

    def __repr__(self) -> str:
        return f"FleetRedis(kind={self.kind!r}, where={self.where!r})"

    async def server_for(self, key: str) -> str:
        """``host:port`` of the server that holds ``key`` now (for logs after a failover).

        Args:
            key: A key of the budget.

        Returns:
            The master's address (Sentinel), the slot owner's (Cluster), else ``where``.
        """
        if self.kind == "sentinel":
            host, port = await self.redis.connection_pool.get_master_address()
            return f"{host}:{port}"
        if self.kind == "cluster":
            node = self.redis.get_node_from_key(key)
            return f"{node.host}:{node.port}"
        return self.where

    async def drop_idle(self) -> None:
        """Close the idle pooled connections: after a gap they may lead to a dead server.

        A cluster client redraws its own map of the nodes; it is left alone.
        """
        if self.kind != "cluster":
            await self.redis.connection_pool.disconnect(inuse_connections=False)

    async def aclose(self) -> None:
        """Close what :func:`connect` opened; an adopted client stays open."""
        for closable in self._owned:
            await closable.aclose()


@frozen
class FleetTarget:
    """Where a fleet's Redis is: a URL to connect to, or a client the application built.

    The gate, the rotation lock and the key cache each get their client from ``connect``:
    a new one for a URL (its own timeouts, closed by its user), or the adopted one (never
    closed here).

    Attributes:
        url: The checked ``rate_limit_url``, or None.
        adopted: The application's client (``rate_limit_redis=``), or None.
    """

    url: FleetURL | None = None
    adopted: FleetRedis | None = None

    @property
    def prefix(self) -> str:
        """The URL's ``?prefix=`` ("" without one, and for an adopted client)."""
        return "" if self.url is None else self.url.prefix

    def connect(self, *, timeout: float = REDIS_TIMEOUT) -> FleetRedis:
        """A client: the adopted one, or a new one for the URL.

        Args:
            timeout: Seconds each connection attempt may take (a new client only).

        Returns:
            The client; ``await client.aclose()`` closes it unless it is adopted.
        """
        if self.adopted is not None:
            return self.adopted
        assert self.url is not None, "a FleetTarget holds a URL or an adopted client"
        return connect(self.url, timeout=timeout)


def connect(url: FleetURL, *, timeout: float = REDIS_TIMEOUT) -> FleetRedis:
    """Build redis-py's asyncio client for a checked URL (no connection is opened yet).

    Args:
        url: From :func:`parse`.
        timeout: Seconds each connection attempt may take (commands: ``SLOW_TIMEOUT``;
            bound a call more tightly with ``asyncio.timeout``).

    Returns:
        The client; close it with ``await fleet_redis.aclose()``.

    Raises:
        ImportError: redis-py is missing (naming the extra to install).
        ValueError: A connection option of the URL that redis-py refuses, naming
            ``rate_limit_url``.
    """
    mod = redis_asyncio()
    timeouts = {"socket_timeout": SLOW_TIMEOUT, "socket_connect_timeout": timeout}
    try:
        if url.kind == "redis":
            client = mod.from_url(url.url, decode_responses=True, **timeouts)
            return FleetRedis(client, "redis", _address(client), (client,))
        options = _node_options(mod, url.url)
    except ValueError as exc:  # redis-py's messages name the option, never its value
        raise ValueError(f"rate_limit_url: {exc}") from None
    nodes = ",".join(f"{h}:{p}" for h, p in url.nodes)
    if url.kind == "sentinel":
        # The sentinels take the same credentials and TLS as the master (as in ``limits``).
        to_sentinels = {k: v for k, v in options.items() if k != "db"} | timeouts
        sentinel = mod.Sentinel(list(url.nodes), sentinel_kwargs=to_sentinels, **timeouts)
        master = sentinel.master_for(url.service, decode_responses=True, **options)
        where = f"sentinel service {url.service!r} via {nodes}"
        return FleetRedis(master, "sentinel", where, (master, sentinel))
    startup = [mod.cluster.ClusterNode(h, p) for h, p in url.nodes]
    cluster = mod.RedisCluster(startup_nodes=startup, decode_responses=True, **options, **timeouts)
    return FleetRedis(cluster, "cluster", f"cluster via {nodes}", (cluster,))


def adopt(redis: object) -> FleetRedis:
    """Wrap a client the application built (``rate_limit_redis=``); it is never closed here.

    Args:
        redis: A ``redis.asyncio.Redis`` (a Sentinel's ``master_for`` included) or a
            ``redis.asyncio.RedisCluster``. Any ``decode_responses`` works.

    Returns:
        The wrapped client.

    Raises:
        ImportError: redis-py is missing.
        TypeError: ``redis`` is neither, naming ``rate_limit_redis``.
    """
    mod = redis_asyncio()
    if isinstance(redis, mod.RedisCluster):
        nodes = ",".join(f"{n.host}:{n.port}" for n in redis.startup_nodes)
        return FleetRedis(redis, "cluster", f"cluster via {nodes}")
    if not isinstance(redis, mod.Redis):
        raise TypeError(
            "rate_limit_redis must be a redis.asyncio.Redis or redis.asyncio.RedisCluster,"
            f" not {type(redis).__name__}"
        )
    pool = redis.connection_pool
    if isinstance(pool, mod.sentinel.SentinelConnectionPool):
        return FleetRedis(redis, "sentinel", f"sentinel service {pool.service_name!r}")
    return FleetRedis(redis, "redis", _address(redis))


def _address(client: Any) -> str:
    """``host:port`` (or the socket path) of a one-server client."""
    at = client.connection_pool.connection_kwargs
    return str(at.get("path") or f"{at.get('host')}:{at.get('port')}")


def _node_options(mod: Any, node_url: str) -> dict[str, Any]:
    """redis-py's connection options from a host-less URL: credentials, db, TLS, the query's."""
    options: dict[str, Any] = mod.connection.parse_url(node_url)
    if options.pop("connection_class", None) is mod.connection.SSLConnection:
        options["ssl"] = True
    return options
