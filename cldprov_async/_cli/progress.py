"""The progress of a long rotation on stderr, answering "when will it be done?".

On a terminal, one status line redrawn in place; otherwise (a log, cron, CI) plain lines
carrying the same figures, at most one every ``interval`` seconds, plus one per failure.
The figures: done/total, failed, skipped, environments per minute, wall time spent waiting
for the rate-limit window, and the ETA from the budget the server announced.

May import: ``output`` (beside it at the bottom of the CLI), the standard library and the
rest of cldprov_async (the client, the budget tracker, rotation's result type).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TextIO

from .._budget import BudgetTracker
from .._client import CldProvisioning
from .._rotation import RotationResult
from .output import StatusLine, one_line

#: Between plain lines while environments finish, and while nothing does (a long wait).
LINE_EVERY = 5.0
QUIET_LINE_EVERY = 60.0


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


def requests_of(result: RotationResult) -> int:
    """What an environment's rotation sent, from its outcome (a failure: its listing)."""
    if result.plan is not None or result.skipped is not None or result.new_key is None:
        return 1
    return 2 + len(result.retired) + bool(result.new_key.dedicated_for)


class RunProgress(StatusLine):
    """Counts results as they come (``update``) and draws them; ``ticker()`` keeps the line
    fresh while the run waits for a window. Time is the client's clock, which the reset
    dates the ETA comes from are read against (a test's virtual clock too)."""

    def __init__(
        self,
        total: int,
        stream: TextIO,
        client: CldProvisioning,
        *,
        concurrency: int,
        live: bool | None = None,
        interval: float = LINE_EVERY,
    ) -> None:
        super().__init__(stream)
        self.total = total
        self.client = client
        self.concurrency = concurrency
        self.live = stream.isatty() if live is None else live
        self.interval = interval
        self.budget = BudgetTracker(reserve=client.bulk_reserve)
        self.done = self.failed = self.skipped = 0
        self._now = client.clock
        self.started = self._now()
        self._sent_at_start = self._spent()
        self._finished_requests = 0  # what the finished environments sent
        self._last_line = float("-inf")

    # -- the figures -------------------------------------------------------------------------

    def eta(self) -> float | None:
        """Seconds until the last environment is done, from the announced budget when the
        remaining requests exceed it, else from the pace so far; None before any result."""
        left = self.total - self.done
        if left <= 0:
            return 0.0
        if self.done == 0:
            return None
        now = self._now()
        elapsed = now - self.started
        per_env = self._finished_requests / self.done
        in_flight = self._spent() - self._sent_at_start - self._finished_requests
        needed = max(0.0, left * per_env - in_flight)
        by_budget = self.budget.seconds_for(needed, now)
        if by_budget is not None:
            return by_budget
        # It fits the window's budget: the pace while not waiting for a window decides.
        active = max(1e-3, elapsed - self.budget.waited(now))
        return needed / max(1.0, self._finished_requests) * active

    def _spent(self) -> int:
        """Requests that counted against the budget (rejected ones did not)."""
        stats = self.client.stats
        return stats.sent - stats.rejected

    def line(self) -> str:
        now = self._now()
        elapsed = now - self.started
        rate = self.done / elapsed * 60 if elapsed > 0 else 0.0
        eta = self.eta()
        width = len(str(self.total))
        return (
            f"[{self.done:>{width}}/{self.total}] failed {self.failed}, skipped {self.skipped},"
            f" {rate:.0f}/min, waited {duration(self.budget.waited(now))} for the rate limit,"
            f" ETA {'?' if eta is None else duration(eta)}"
        )

    # -- drawing -----------------------------------------------------------------------------

    def update(self, result: RotationResult) -> None:
        self.done += 1
        self._finished_requests += requests_of(result)
        if result.status == "failed":
            self.failed += 1
        elif result.status == "skipped":
            self.skipped += 1
        now = self._now()
        self.budget.observe(self.client.rate_limit, now)
        if self.live:
            self._draw()
            return
        if result.error is not None:
            self._print(f"failed: {result.sub_account_id}: {one_line(result.error)}")
        if now - self._last_line >= self.interval or self.done == self.total:
            self._print(self.line())
            self._last_line = now

    async def ticker(self) -> None:
        """Watch the budget (a spent window shows as ``remaining == 0`` until it resets, so
        a tenth of a second bounds the error on the time waited); redraw every second on a
        terminal, a plain line every minute otherwise."""
        drawn = self._now()
        while True:
            await asyncio.sleep(0.1)
            now = self._now()
            self.budget.observe(self.client.rate_limit, now)
            if self.live and now - drawn >= 1.0:
                self._draw()
                drawn = now
            elif not self.live and now - self._last_line >= QUIET_LINE_EVERY:
                self._print(self.line())
                self._last_line = now

    def _print(self, text: str) -> None:
        self.stream.write(("\r\x1b[K" if self._drawn else "") + text + "\n")
        self.stream.flush()
        self._drawn = False

    def _draw(self) -> None:
        self.redraw(self.line())


@contextlib.asynccontextmanager
async def ticking(progress: RunProgress) -> AsyncIterator[RunProgress]:
    """Keep ``progress`` ticking for the block's duration, then end its line."""
    task = asyncio.create_task(progress.ticker())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        progress.close()
