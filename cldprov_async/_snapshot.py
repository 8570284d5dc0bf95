"""What the server says about its rate limit: the ``RateLimit`` snapshot and header parsing.

Cloudinary sends ``X-FeatureRateLimit-Limit/-Remaining/-Reset`` on every answer and may send
``Retry-After`` with a 429. This module only reads them; it sits below ``errors`` (whose
errors carry a snapshot) and the gate, so it imports nothing from this package.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from attrs import frozen
from multidict import istr

# As ``istr``: aiohttp's headers (a ``CIMultiDictProxy``) look them up without folding their
# case again on every answer; to any other mapping they are the plain strings.
_H_LIMIT = istr("X-FeatureRateLimit-Limit")
_H_REMAINING = istr("X-FeatureRateLimit-Remaining")
_H_RESET = istr("X-FeatureRateLimit-Reset")
#: Limits and reset dates as parsed, by their text: every answer of a window repeats both
#: (only ``Remaining`` counts down), so the usual answer parses one number. At most this
#: many of each are kept.
_KEPT = 64
_LIMITS: dict[str | None, int] = {}
_DATES: dict[str | None, datetime] = {}


@frozen
class RateLimit:
    """What the server last said about the budget. Any field may be None if it did not say.

    Attributes:
        limit: Requests allowed per window (``X-FeatureRateLimit-Limit``).
        remaining: Requests left in the current window (``X-FeatureRateLimit-Remaining``).
        reset_at: When the window ends (``X-FeatureRateLimit-Reset``), timezone-aware.
    """

    limit: int | None
    remaining: int | None
    reset_at: datetime | None


def _int_header(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _date(raw: str | None) -> datetime | None:
    """An HTTP date, or None if it is not one; kept (``_DATES``)."""
    if not raw:
        return None
    known = _DATES.get(raw)
    if known is not None:
        return known
    try:
        parsed = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if len(_DATES) >= _KEPT:
        _DATES.clear()
    _DATES[raw] = parsed
    return parsed


#: (limit, remaining, reset_at) as a server said them; any may be None.
Said = tuple[int | None, int | None, datetime | None]


def parse_budget(headers: Mapping[str, str]) -> Said | None:
    """The X-FeatureRateLimit-* headers; garbage in a header counts as that header missing.

    None when the answer says nothing of a budget. The gate calls this on every answer, so
    the usual one (a limit and a date seen before) parses one number and takes no further
    Python call.
    """
    raw_limit, raw_remaining = headers.get(_H_LIMIT), headers.get(_H_REMAINING)
    raw_reset = headers.get(_H_RESET)
    if raw_limit is None and raw_remaining is None and not raw_reset:
        return None  # a server that does not announce a budget: every answer, cheaply
    limit: int | None = _LIMITS.get(raw_limit)
    try:
        remaining: int | None = int(raw_remaining)  # type: ignore[arg-type]
        if limit is None:
            limit = int(raw_limit)  # type: ignore[arg-type]
            if limit >= 0 and len(_LIMITS) < _KEPT:
                _LIMITS[raw_limit] = limit
    except (TypeError, ValueError):
        limit, remaining = _int_header(raw_limit), _int_header(raw_remaining)
    else:
        if limit < 0 or remaining < 0:  # type: ignore[operator]
            limit, remaining = _int_header(raw_limit), _int_header(raw_remaining)
    reset_at = _DATES.get(raw_reset)
    if reset_at is None and raw_reset:
        reset_at = _date(raw_reset)
    if limit is None and remaining is None and reset_at is None:
        return None
    return limit, remaining, reset_at


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimit | None:
    """The X-FeatureRateLimit-* headers as a ``RateLimit`` (see ``parse_budget``)."""
    said = parse_budget(headers)
    return None if said is None else RateLimit(*said)


def retry_after_seconds(headers: Mapping[str, str], now_wall: float) -> float | None:
    """``Retry-After`` as seconds from now: delta-seconds or an HTTP date."""
    raw = headers.get("Retry-After")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        when = _date(raw)
        if when is None:
            return None
        seconds = when.timestamp() - now_wall
    if seconds != seconds or seconds == float("inf"):  # NaN, inf
        return None
    return max(0.0, seconds)
