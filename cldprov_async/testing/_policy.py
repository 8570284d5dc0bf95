"""The fake server's rate limiting: the ``RateLimitPolicy``, the ``WindowLimiter`` that
applies one policy, and the ``RateLimiter`` holding the current one.

Imports nothing from the package (nor from ``cldprov_async``).
"""

from __future__ import annotations

import math
from email.utils import formatdate
from typing import Final, Literal

import attrs

_LIMIT_H: Final = "X-FeatureRateLimit-Limit"
_REMAINING_H: Final = "X-FeatureRateLimit-Remaining"
_RESET_H: Final = "X-FeatureRateLimit-Reset"


@attrs.frozen
class RateLimitPolicy:
    """Fixed windows aligned to the wall clock, like the live API's hourly windows.

    ``RateLimitPolicy(limit=N, window=3600)`` gives a reset up to an hour ahead; whole-second
    windows make the ``X-FeatureRateLimit-Reset`` date exact (sub-second ones round it up to the
    next second).

    Attributes:
        limit: Requests accepted per window.
        window: The window's length, in seconds.
        status: The rejection status: 420 (Cloudinary's historical one) or 429.
        retry_after: Whether a rejection carries ``Retry-After``, as ``"seconds"`` or an HTTP
            ``"date"``; None for none (the reset header alone).
    """

    limit: int = attrs.field(validator=[attrs.validators.instance_of(int), attrs.validators.ge(0)])
    window: float = attrs.field(default=1.0, converter=float, validator=attrs.validators.gt(0.0))
    status: Literal[420, 429] = attrs.field(default=420, validator=attrs.validators.in_((420, 429)))
    retry_after: Literal["seconds", "date"] | None = attrs.field(
        default=None, validator=attrs.validators.in_((None, "seconds", "date"))
    )


class WindowLimiter:
    """Window state for one policy; replaced as a whole when the policy changes."""

    def __init__(self, policy: RateLimitPolicy) -> None:
        self.policy = policy
        self._limit = str(policy.limit)
        self._start = math.nan
        self._count = 0
        self._reset_at = 0.0
        self._reset_date = ""

    def check(self, now: float, consume: bool) -> tuple[bool, dict[str, str]]:
        """Return (accepted, the rate-limit headers); ``consume`` spends budget if accepted."""
        policy = self.policy
        start = math.floor(now / policy.window) * policy.window
        if start != self._start:
            self._start, self._count = start, 0
            self._reset_at = start + policy.window
            self._reset_date = formatdate(math.ceil(round(self._reset_at, 6)), usegmt=True)
        accepted = self._count < policy.limit
        if accepted and consume:
            self._count += 1
        headers = {
            _LIMIT_H: self._limit,
            _REMAINING_H: str(policy.limit - self._count),
            _RESET_H: self._reset_date,
        }
        if consume and not accepted and policy.retry_after is not None:
            if policy.retry_after == "seconds":
                headers["Retry-After"] = str(max(1, math.ceil(self._reset_at - now)))
            else:
                headers["Retry-After"] = self._reset_date
        return accepted, headers


class RateLimiter:
    """The server's current policy (None: no limit); setting one starts a fresh window budget."""

    def __init__(self, policy: RateLimitPolicy | tuple[int, float] | None) -> None:
        self.current: WindowLimiter | None = None
        """The limiter requests go through; read it once per request."""
        self.policy = policy

    @property
    def policy(self) -> RateLimitPolicy | None:
        current = self.current
        return None if current is None else current.policy

    @policy.setter
    def policy(self, policy: RateLimitPolicy | tuple[int, float] | None) -> None:
        if isinstance(policy, tuple):
            policy = RateLimitPolicy(limit=policy[0], window=policy[1])
        self.current = None if policy is None else WindowLimiter(policy)
