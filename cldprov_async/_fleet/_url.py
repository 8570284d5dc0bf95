"""The ``rate_limit_url``: checked before anything is sent, and redis-py imported lazily.

``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs as redis-py takes them, plus an
optional ``prefix`` query parameter of ours (``redis://host/0?prefix=staging``) that names
the budget apart from others on the same Redis; it is taken off before redis-py sees it.

Imports: nothing from the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from attrs import frozen

SCHEMES = ("redis", "rediss", "unix")
ENV = "CLDPROV_RATE_LIMIT_URL"
EXTRA = "cldprov-async[redis]"


@frozen
class FleetURL:
    """A checked Redis URL (what redis-py gets) and our prefix."""

    url: str
    prefix: str

    def __repr__(self) -> str:  # the URL may carry a Redis password
        return f"FleetURL(prefix={self.prefix!r})"


def parse(value: object) -> FleetURL:
    """A checked URL, or ValueError/TypeError naming ``rate_limit_url``."""
    if not isinstance(value, str):
        raise TypeError(f"rate_limit_url must be a str, not {type(value).__name__}")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("rate_limit_url is not a valid URL") from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"rate_limit_url must start with redis://, rediss:// or unix://, not {parts.scheme!r}"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("rate_limit_url: a unix:// URL needs a socket path")
    else:
        if not parts.hostname:
            raise ValueError("rate_limit_url: a redis:// URL needs a host")
        db = parts.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError("rate_limit_url: the path must be a database number")
    query = parse_qsl(parts.query, keep_blank_values=True)
    prefix = "".join(v for k, v in query if k == "prefix")
    if any(c in prefix for c in "{}: \r\n"):
        raise ValueError("rate_limit_url: prefix must not hold ':', '{', '}' or whitespace")
    rest = urlencode([(k, v) for k, v in query if k != "prefix"])
    if parts.scheme == "unix":  # urlunsplit would drop the empty authority ("unix:/path")
        return FleetURL(f"unix://{parts.netloc}{parts.path}" + (f"?{rest}" if rest else ""), prefix)
    return FleetURL(urlunsplit(parts._replace(query=rest)), prefix)


def redis_asyncio() -> ModuleType:
    """``redis.asyncio``, or an ImportError naming the extra to install."""
    try:
        return importlib.import_module("redis.asyncio")
    except ImportError as exc:
        raise ImportError(f"rate_limit_url needs redis-py: pip install {EXTRA!r}") from exc
