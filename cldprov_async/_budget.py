"""``BudgetTracker``: when will N more requests have been sent, given what the server announced?

The server announces a budget per window (``X-FeatureRateLimit-Limit/-Remaining/-Reset``)
but not the window's length: ``Reset`` is the instant the current window ends. The length
is learned from two successive resets; until then hourly windows are assumed (the
published Admin-API limits are hourly) and ``window_known`` says so. The tracker also
measures the wall time spent with the window's budget used up: the time a run waits. Bulk
work (a rotation) stops short of the reserve its client keeps for normal calls
(``bulk_reserve``): pass that fraction as ``reserve`` so both count from there.

Imports: the snapshot only; the CLI's progress and dry-run totals use it.
"""

from __future__ import annotations

import math
import time

from ._snapshot import RateLimit

#: The window length assumed before two resets have been seen.
ASSUMED_WINDOW = 3600.0


class BudgetTracker:
    """Feed it every snapshot you see (``observe(client.rate_limit)``); ask it for an ETA."""

    def __init__(self, reserve: float = 0.0) -> None:
        self.reserve = reserve
        self.snapshot: RateLimit | None = None
        self._last_reset: float | None = None
        self._window: float | None = None
        self._spent_since: float | None = None  # when the current window's budget ran out
        self._spent_until = 0.0
        self._waited = 0.0

    @property
    def window(self) -> float:
        """The window length in seconds: learned, else ``ASSUMED_WINDOW``."""
        return self._window if self._window is not None else ASSUMED_WINDOW

    @property
    def window_known(self) -> bool:
        return self._window is not None

    def observe(self, snapshot: RateLimit | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._close_wait(now)
        if snapshot is None:
            return
        self.snapshot = snapshot
        reset = snapshot.reset_at.timestamp() if snapshot.reset_at is not None else None
        if reset is not None:
            if self._last_reset is not None and reset > self._last_reset + 0.5:
                self._window = reset - self._last_reset
            if self._last_reset is None or reset > self._last_reset + 0.5:
                self._last_reset = reset
        kept = self._kept(snapshot.limit)
        if (
            snapshot.remaining is not None
            and snapshot.remaining <= kept
            and reset is not None
            and reset > now
        ):
            if self._spent_since is None:
                self._spent_since = now
            self._spent_until = max(self._spent_until, reset)

    def _kept(self, limit: int | None) -> int:
        """Requests of a window left to normal calls: bulk work cannot use them."""
        return math.ceil(limit * self.reserve) if limit and self.reserve else 0

    def _close_wait(self, now: float) -> None:
        if self._spent_since is not None and now >= self._spent_until:
            self._waited += self._spent_until - self._spent_since
            self._spent_since = None

    def waited(self, now: float | None = None) -> float:
        """Wall seconds spent so far with the window's budget used up."""
        now = time.time() if now is None else now
        self._close_wait(now)
        if self._spent_since is None:
            return self._waited
        return self._waited + max(0.0, now - self._spent_since)

    def seconds_for(self, requests: float, now: float | None = None) -> float | None:
        """Seconds until ``requests`` more will have been let through by the budget, or None
        when they fit in what the current window has left (or no budget was announced):
        then only the requests' own pace bounds the time."""
        snap = self.snapshot
        if snap is None or snap.limit is None or snap.limit < 1 or snap.reset_at is None:
            return None
        now = time.time() if now is None else now
        kept = self._kept(snap.limit)
        per_window = max(1, snap.limit - kept)
        remaining = max(0, (snap.remaining or 0) - kept)
        until_reset = snap.reset_at.timestamp() - now
        if until_reset <= 0:  # that window is over: a fresh one holds the whole limit
            remaining, until_reset = per_window, until_reset % self.window
        if requests <= remaining:
            return None
        windows = math.ceil((requests - remaining) / per_window)
        return max(0.0, until_reset) + (windows - 1) * self.window
