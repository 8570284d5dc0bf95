"""The clock: what "now" is for a client's decisions, and how it sleeps.

Rotation decides from the keys' server dates and now (a grace period of days, a prune age of
weeks), so tests must move time without waiting. One object serves the client and the fake
server: called, it gives wall-clock seconds since the epoch (what the fake server stamps keys
with and what reset headers are read against); ``sleep`` waits on it (the ping verifier's
backoff). ``cldprov_async.testing.ManualClock`` is the one tests move by hand. The rate-limit
gate's waits stay on the event loop's monotonic time whatever the clock.

Imports: nothing from the package (the bottom layer).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

__all__ = ["SYSTEM_CLOCK", "Clock", "SystemClock", "check_clock", "utc"]


@runtime_checkable
class Clock(Protocol):
    """Wall-clock time for decisions: ``clock()`` is seconds since the epoch."""

    def __call__(self) -> float: ...

    async def sleep(self, seconds: float) -> None:
        """Wait this long on this clock (a manual clock may return at once).

        Args:
            seconds: How long to wait.
        """
        ...


class SystemClock:
    """The machine's clock (``time.time``) and ``asyncio.sleep``."""

    def __call__(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        """Wait with ``asyncio.sleep``.

        Args:
            seconds: How long to wait.
        """
        await asyncio.sleep(seconds)

    def __repr__(self) -> str:
        return "SystemClock()"


SYSTEM_CLOCK = SystemClock()


def check_clock(clock: object, param: str = "clock") -> Clock:
    """``clock`` if it is a ``Clock``, else a TypeError naming ``param``."""
    if not isinstance(clock, Clock):
        raise TypeError(f"{param} must be callable and have an async sleep(seconds) method")
    return clock


def utc(clock: Clock) -> datetime:
    """The clock's now as an aware UTC datetime."""
    return datetime.fromtimestamp(clock(), UTC)
