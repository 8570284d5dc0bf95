"""The base every operation class shares: the session's request path, checks, path encoding.

An operation module (``_access_keys``, and any tag added later) subclasses ``Operations`` and
names, per operation, its method, path, parameters and result type; ``_call`` (the session's
``call``) does the rest: JSON body out through the one converter, a typed error for a
non-2xx answer, a frozen model for a 2xx one, one span. Here: the operations' shared
argument checks and path encoding.

Imports: the session and config; nothing above the operations.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal
from urllib.parse import quote

from ._config import RetryConfig
from ._session import Session

#: Bulk calls leave the gate's reserve (``bulk_reserve``) of each window to normal ones.
Priority = Literal["normal", "bulk"]


#: Text ``quote(safe="")`` leaves as it is, and not only dots: most ids, passed through.
_PLAIN = re.compile(r"(?=[A-Za-z0-9_.~-]*[A-Za-z0-9_~-])[A-Za-z0-9_.~-]+").fullmatch


def segment(value: str) -> str:
    """Percent-encode a path parameter so it cannot leave its segment ("/", "?", "..")."""
    if _PLAIN(value) is not None:
        return value
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded.strip(".") == "" else encoded


#: ``call_options`` when nothing is set (most calls): one shared, read-only mapping.
_DEFAULT_OPTIONS: Mapping[str, Any] = MappingProxyType(
    {"retries": None, "timeout_ms": None, "http_headers": None, "priority": "normal"}
)


def call_options(
    retries: RetryConfig | None,
    timeout_ms: float | None,
    http_headers: Mapping[str, str] | None,
    priority: Priority = "normal",
) -> Mapping[str, Any]:
    if retries is None and timeout_ms is None and http_headers is None and priority == "normal":
        return _DEFAULT_OPTIONS
    if priority not in ("normal", "bulk"):
        raise ValueError(f"priority must be 'normal' or 'bulk', not {priority!r}")
    if retries is not None and not isinstance(retries, RetryConfig):
        raise TypeError(f"retries must be a RetryConfig, not {type(retries).__name__}")
    if timeout_ms is not None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float):
            raise TypeError(f"timeout_ms must be a number, not {type(timeout_ms).__name__}")
        if not timeout_ms > 0:
            raise ValueError(f"timeout_ms must be > 0, not {timeout_ms}")
    if http_headers is not None:
        if not isinstance(http_headers, Mapping):
            raise TypeError(f"http_headers must be a mapping, not {type(http_headers).__name__}")
        for k, v in http_headers.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("http_headers must map str to str")
            if not k or any(c in k + v for c in "\r\n\x00"):
                raise ValueError(f"http_headers has an invalid header {k!r}")
    return {
        "retries": retries,
        "timeout_ms": timeout_ms,
        "http_headers": http_headers,
        "priority": priority,
    }


class Operations:
    """The base of every operation class: one session, one account, one request path."""

    def __init__(self, session: Session, account_id: str) -> None:
        self._session = session
        #: The one request path (``Session.call``), bound here rather than wrapped: a
        #: wrapper would be one more coroutine level on every call.
        self._call = session.call
        self._account_path = f"/v1_1/provisioning/accounts/{segment(account_id)}"

    @property
    def default_retry(self) -> RetryConfig:
        """The client's retry budget, for calls that pass no ``retries``."""
        return self._session.retry
