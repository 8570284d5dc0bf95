"""The ``rate_limit_url``: checked before anything is sent, and redis-py imported lazily.

Three kinds of Redis, spelled as the ``limits`` library (flask-limiter, slowapi) spells them:

* one server: ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs as redis-py takes them;
* Sentinel: ``redis+sentinel://[[user]:password@]host:port[,host:port...]/SERVICE[/db]``
  (``rediss+sentinel://`` for TLS): the master of SERVICE, found through the sentinels;
* Cluster: ``redis+cluster://[[user]:password@]host:port[,host:port...]`` (``rediss+cluster://``
  for TLS): any of the cluster's nodes, the rest are discovered.

Every host of a Sentinel or Cluster URL needs its port (as in ``limits``). The credentials
serve the master and the sentinels alike (as in ``limits``), or every cluster node. Any URL
may end with our ``?prefix=NAME`` (naming the budget apart from others on the same Redis:
taken off before redis-py sees the URL) and with redis-py's own connection options
(``?ssl_cert_reqs=none``), which apply to every node.

Imports: nothing from the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from attrs import frozen

ENV = "CLDPROV_RATE_LIMIT_URL"
EXTRA = "cldprov-async[redis]"
#: URL scheme -> (kind, the scheme redis-py gets for each node)
SCHEMES: dict[str, tuple[str, str]] = {
    "redis": ("redis", "redis"),
    "rediss": ("redis", "rediss"),
    "unix": ("redis", "unix"),
    "redis+sentinel": ("sentinel", "redis"),
    "rediss+sentinel": ("sentinel", "rediss"),
    "redis+cluster": ("cluster", "redis"),
    "rediss+cluster": ("cluster", "rediss"),
}
Kind = Literal["redis", "sentinel", "cluster"]


@frozen
class FleetURL:
    """A checked ``rate_limit_url``.

    Attributes:
        kind: ``"redis"`` (one server), ``"sentinel"`` or ``"cluster"``.
        url: What redis-py parses. One server: the whole URL. Sentinel and Cluster: the
            same URL without its hosts (``redis://`` or ``rediss://``, credentials, db and
            connection options), applied to every node.
        prefix: Our ``?prefix=``: names the budget apart from others on the same Redis.
        nodes: The sentinels, or the cluster's startup nodes, as (host, port).
        service: The Sentinel service name (the master's name in the sentinels' config).
    """

    kind: Kind
    url: str
    prefix: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""

    def __repr__(self) -> str:  # the URL may carry a Redis password
        where = ",".join(f"{h}:{p}" for h, p in self.nodes)
        return f"FleetURL(kind={self.kind!r}, prefix={self.prefix!r}, nodes={where!r})"


def parse(value: object) -> FleetURL:
    """Check a ``rate_limit_url`` (the messages never repeat it: it may hold a password).

    Args:
        value: The URL, from the argument, ``CLDPROV_RATE_LIMIT_URL`` or ``--rate-limit-url``.

    Returns:
        The checked URL.

    Raises:
        TypeError: ``value`` is not a str.
        ValueError: A malformed URL (unknown scheme, no host, a bad port, no service
            name...), naming ``rate_limit_url``.
    """
    if not isinstance(value, str):
        raise TypeError(f"rate_limit_url must be a str, not {type(value).__name__}")
    try:
        parts = urlsplit(value)
    except ValueError:
        raise ValueError("rate_limit_url is not a valid URL") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            "rate_limit_url must start with one of "
            + ", ".join(f"{s}://" for s in SCHEMES)
            + f", not {parts.scheme!r}"
        )
    kind, node_scheme = SCHEMES[parts.scheme]
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "".join(v for k, v in query if k == "prefix")
    if any(c in prefix for c in "{}: \r\n"):
        raise ValueError("rate_limit_url: prefix must not hold ':', '{', '}' or whitespace")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    if kind == "redis":
        return FleetURL("redis", _one_server(parts, rest), prefix)
    userinfo, _at, hosts = parts.netloc.rpartition("@")
    nodes = tuple(_node(loc) for loc in hosts.split(","))
    path = [p for p in parts.path.split("/") if p]
    if kind == "cluster":
        if path:
            raise ValueError("rate_limit_url: a redis+cluster:// URL takes no path (database 0)")
        return FleetURL("cluster", _node_url(node_scheme, userinfo, "", rest), prefix, nodes)
    if not path:
        raise ValueError("rate_limit_url: a redis+sentinel:// URL needs /SERVICE_NAME")
    if len(path) > 2 or (len(path) == 2 and not path[1].isdigit()):
        raise ValueError("rate_limit_url: a redis+sentinel:// path is /SERVICE_NAME[/db]")
    db = path[1] if len(path) == 2 else ""
    url = _node_url(node_scheme, userinfo, db, rest)
    return FleetURL("sentinel", url, prefix, nodes, service=path[0])


def _one_server(parts: SplitResult, rest: str) -> str:
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("rate_limit_url has a bad port") from None
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("rate_limit_url: a unix:// URL needs a socket path")
        # urlunsplit would drop the empty authority ("unix:/path")
        return f"unix://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else "")
    if not parts.hostname:
        raise ValueError("rate_limit_url: a redis:// URL needs a host")
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        raise ValueError("rate_limit_url: the path must be a database number")
    return urlunsplit(parts._replace(query=rest))


def _node(location: str) -> tuple[str, int]:
    """One ``host:port`` of a Sentinel or Cluster URL."""
    try:
        loc = urlsplit(f"//{location.strip()}")
        host, port = loc.hostname, loc.port
    except ValueError:
        raise ValueError("rate_limit_url has a bad port") from None
    if not host:
        raise ValueError("rate_limit_url: every node needs a host (host:port[,host:port...])")
    if port is None:
        raise ValueError("rate_limit_url: every node needs its port (host:port[,host:port...])")
    return host, port


def _node_url(scheme: str, userinfo: str, db: str, rest: str) -> str:
    """The URL redis-py parses for every node: credentials, db and options, no host."""
    auth = f"{userinfo}@" if userinfo else ""
    return f"{scheme}://{auth}/{db}" + (f"?{rest}" if rest else "")


def redis_asyncio() -> ModuleType:
    """``redis.asyncio``, or an ImportError naming the extra to install."""
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:
        raise ImportError(f"rate_limit_url needs redis-py: pip install {EXTRA!r}") from exc
