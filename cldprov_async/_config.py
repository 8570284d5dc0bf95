"""Client configuration: credentials, retry budget, and where requests go.

Everything here is checked when the client is built, so a bad setting fails with a
ValueError/TypeError naming it, before any connection is opened.

Imports nothing from this package.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from attrs import field, frozen
from yarl import URL

REGIONS = ("api", "api-eu", "api-ap")
ACCOUNT_URL_ENV = "CLOUDINARY_ACCOUNT_URL"


def _positive(inst: object, attribute: object, value: Any) -> None:
    name = getattr(attribute, "name", "value")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {value}")


def _attempts(inst: object, attribute: object, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_attempts must be an int, not {type(value).__name__}")
    if value < 1:
        raise ValueError(f"max_attempts must be >= 1, not {value}")


def _nonempty_str(inst: object, attribute: object, value: Any) -> None:
    name = getattr(attribute, "name", "value")
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{name} must not be empty")


@frozen
class Security:
    """The account's provisioning key and secret (HTTP Basic auth). The secret stays out of repr.

    Attributes:
        provisioning_api_key: The account's provisioning key.
        provisioning_api_secret: Its secret; never in a repr, a log record or an error.
    """

    provisioning_api_key: str = field(validator=_nonempty_str)
    provisioning_api_secret: str = field(validator=_nonempty_str, repr=False)


@frozen
class RetryConfig:
    """How hard one call tries before it raises.

    ``max_attempts`` counts sends (1 means never retry). ``max_wait`` caps the seconds one
    call may spend waiting, for backoff and for the rate-limit window together: when the
    server's window resets later than that, the call raises RateLimitedError at once
    instead of sleeping. Backoff is exponential with full jitter between ``backoff_initial``
    and ``backoff_max``.

    Attributes:
        max_attempts: Sends per call, the first included (1: never retry).
        max_wait: Seconds one call may spend waiting: backoff and rate-limit windows together.
        backoff_initial: Seconds: the first backoff's cap, doubled at each retry.
        backoff_max: Seconds: the cap of any one backoff.
        retry_connection_errors: Whether failed exchanges (a connection refused or dropped,
            a timeout) are retried; answers such as a 503 are retried either way.
    """

    max_attempts: int = field(default=5, validator=_attempts)
    max_wait: float = field(default=60.0, validator=_positive)
    backoff_initial: float = field(default=0.25, validator=_positive)
    backoff_max: float = field(default=8.0, validator=_positive)
    retry_connection_errors: bool = True


def _parse_account_url(value: str) -> tuple[str, Security]:
    """``account://KEY:SECRET@ACCOUNT_ID``; errors never repeat the value (it holds a secret)."""
    problem = f"{ACCOUNT_URL_ENV} must look like account://KEY:SECRET@ACCOUNT_ID"
    scheme, sep, rest = value.strip().partition("://")
    if not sep or scheme != "account":
        raise ValueError(problem)
    userinfo, at, account_id = rest.rpartition("@")
    key, colon, secret = userinfo.partition(":")
    account_id = account_id.rstrip("/")
    if not at or not colon or not key or not secret or not account_id:
        raise ValueError(problem)
    return unquote(account_id), Security(
        provisioning_api_key=unquote(key), provisioning_api_secret=unquote(secret)
    )


def resolve_credentials(
    account_id: str | None, security: Security | None, env: Mapping[str, str] | None = None
) -> tuple[str, Security]:
    """Explicit arguments win; what is missing comes from CLOUDINARY_ACCOUNT_URL."""
    env = os.environ if env is None else env
    if security is not None and not isinstance(security, Security):
        raise TypeError(f"security must be a Security, not {type(security).__name__}")
    if account_id is not None:
        _nonempty_str(None, _Named("account_id"), account_id)
    if account_id is None or security is None:
        raw = env.get(ACCOUNT_URL_ENV)
        if not raw:
            missing = "account_id" if account_id is None else "security"
            raise ValueError(
                f"{missing} is required: pass it, or set {ACCOUNT_URL_ENV}="
                "account://KEY:SECRET@ACCOUNT_ID"
            )
        env_account, env_security = _parse_account_url(raw)
        account_id = account_id if account_id is not None else env_account
        security = security if security is not None else env_security
    return account_id, security


class _Named:
    def __init__(self, name: str) -> None:
        self.name = name


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def resolve_server_url(region: str, server_url: str | URL | None) -> URL:
    """HTTPS to Cloudinary or a custom host; plain http only to this machine."""
    if server_url is None:
        if region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, not {region!r}")
        return URL(f"https://{region}.cloudinary.com")
    if not isinstance(server_url, str | URL):
        raise TypeError(f"server_url must be a str, not {type(server_url).__name__}")
    url = URL(server_url)
    if url.scheme not in ("https", "http") or not url.host:
        raise ValueError("server_url must be an absolute https:// URL")
    if url.scheme == "http" and not is_loopback(url.host):
        raise ValueError("server_url may use plain http only for a loopback host; use https")
    if url.user is not None or url.password is not None:
        raise ValueError("server_url must not carry credentials; pass security instead")
    if url.query_string or url.fragment:
        raise ValueError("server_url must not have a query or fragment")
    return url.with_path(url.path.rstrip("/"))
