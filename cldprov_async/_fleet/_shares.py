"""The rules of a gap in the shared budget (Redis down, stalled, failing over), as pure functions.

During a gap each process keeps to its share of the last known limit, divided among the
processes it last saw sharing the budget (the members Redis lists), and the fleet goes back
to the shared budget together, at a window boundary far enough ahead that every process
probing Redis learns it first.

Imports nothing from the package.
"""

from __future__ import annotations

import math

from attrs import define


def share(permits: int | None, members: int) -> int | None:
    """One process's share of ``permits`` among ``members`` processes (rounded down).

    Args:
        permits: A window's limit, or what is left of it; None when unknown.
        members: The processes sharing it (at least 1 counts).

    Returns:
        The share, or None when ``permits`` is unknown.
    """
    return None if permits is None else permits // max(1, members)


def rejoin_at(now: float, last_end: float | None, window: float | None, grace: float) -> float:
    """When a fleet back from a gap rejoins its shared budget: the first window boundary at
    least ``grace`` seconds ahead.

    Args:
        now: Wall seconds.
        last_end: The latest window end the server announced (wall seconds), if any.
        window: The window's length, once learned from two successive ends.
        grace: Seconds every process needs to learn the instant (its probe interval and more).

    Returns:
        Wall seconds: a boundary, or ``now + grace`` when none is known that far ahead (no
        window end seen yet, or the length unknown and the last end too close).
    """
    earliest = now + grace
    if last_end is None:
        return earliest
    if last_end >= earliest:
        return last_end  # the one before it is no later than now: this is the first
    if window is None or window <= 0:
        return earliest
    return last_end + math.ceil((earliest - last_end) / window) * window


@define
class WindowClock:
    """The window ends a process has seen (from the server, or the fleet's state), and the
    window's length once two successive ends tell it."""

    last: float | None = None
    length: float | None = None

    def see(self, end: float, length: float | None = None) -> None:
        """Note a window end (wall seconds) and, if known elsewhere, the length.

        Args:
            end: A window end the server announced.
            length: A window length learned elsewhere (the fleet's state).
        """
        if self.last is not None and self.last + 0.5 < end <= self.last + 3600:
            length = end - self.last if length is None else min(length, end - self.last)
        if length is not None and length > 0:
            self.length = length if self.length is None else min(self.length, length)
        if self.last is None or end > self.last:
            self.last = end
