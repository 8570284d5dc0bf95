"""``ManualClock``: time that moves only when a test moves it (or, ticking, with real time).

Give the same clock to the fake server and the client (``FakeProvisioningServer(clock=c)``,
``CldProvisioning(clock=c)``) and a test lives through months of daily runs in seconds: the
server stamps keys with it, the client decides with it, and ``sleep`` moves it forward at once
instead of waiting. The standalone server (``python -m cldprov_async.testing``) runs on one
and moves it through its control route.

Imports nothing from the package (nor from ``cldprov_async``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta


def _seconds(value: float | datetime | timedelta, param: str) -> float:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError(f"{param} must be timezone-aware")
        return value.timestamp()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{param} must be a number, a datetime or a timedelta")
    return float(value)


class ManualClock:
    """Wall-clock seconds that stand still until ``advance``/``set`` (or ``sleep``) move them.

    Args:
        start: the starting time (epoch seconds or an aware datetime); now by default.
        ticking: also advance with real (monotonic) time, like a clock that was set.

    ``await clock.sleep(s)`` returns at once (after yielding to the loop once), the clock
    moved forward by ``s``: time jumps instead of passing, so a backoff of minutes costs
    nothing. It is thread-safe, so a fake server running in another thread may share it.
    """

    def __init__(self, start: float | datetime | None = None, *, ticking: bool = False) -> None:
        self._offset = time.time() if start is None else _seconds(start, "start")
        self._ticking = ticking
        self._base = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Now, in seconds since the epoch."""
        if self._ticking:
            return self._offset + (time.monotonic() - self._base)
        return self._offset

    @property
    def now(self) -> datetime:
        """Now as an aware UTC datetime."""
        return datetime.fromtimestamp(self(), UTC)

    def set(self, when: float | datetime) -> None:
        """Move to a given time, backwards too.

        Args:
            when: Epoch seconds or an aware datetime.

        Raises:
            TypeError: ``when`` is neither a number nor a datetime.
            ValueError: ``when`` is a naive datetime.
        """
        target = _seconds(when, "when")
        with self._lock:
            self._offset += target - self()

    def advance(self, seconds: float | timedelta) -> None:
        """Move forward.

        Args:
            seconds: How far: a number of seconds or a timedelta.

        Raises:
            TypeError: ``seconds`` is neither a number nor a timedelta.
            ValueError: ``seconds`` is negative (use ``set`` to go back).
        """
        step = _seconds(seconds, "seconds")
        if step < 0:
            raise ValueError("seconds must be >= 0 (use set() to go back)")
        with self._lock:
            self._offset += step

    async def sleep(self, seconds: float) -> None:
        """Move forward at once, then yield to the loop once: a backoff costs no time.

        Args:
            seconds: How far to move (a negative value moves nothing).
        """
        with self._lock:
            self._offset += max(0.0, seconds)
        await asyncio.sleep(0)

    def __repr__(self) -> str:
        return f"ManualClock({self():.3f}, ticking={self._ticking})"
