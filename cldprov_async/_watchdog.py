"""One timer per client for every attempt's timeout, in place of an ``asyncio.timeout`` each.

``asyncio.timeout`` schedules a ``TimerHandle`` per use (a context snapshot and a heap push)
and leaves the cancelled handle on the loop's heap; per attempt that was the largest single
cost of a call. A client's attempts share one timeout, so their deadlines arrive in order:
a dict in insertion order (O(1) to add and to drop) and one armed timer for the earliest
deadline watch them all. A deadline earlier than the newest one watched (a call's own
shorter ``timeout_ms``) goes to a small heap instead, dropped lazily and compacted once
half of it is finished, so both stay bounded by the attempts in flight.

An expired watch cancels its task and turns that cancellation into ``TimeoutError`` on exit
exactly as ``asyncio.timeout`` (3.11) does: only when no other cancellation was requested
meanwhile (``Task.uncancel``), so a caller's own cancellation, even at the very deadline,
stays a cancellation.

Imports: asyncio only.
"""

from __future__ import annotations

import asyncio
import contextvars
import heapq
import math
from types import TracebackType

_CREATED, _ACTIVE, _EXPIRING, _EXITED, _EXPIRED = range(5)
#: The early heap is rebuilt without its finished watches once they are half of it (and
#: more than this many).
_COMPACT_AT = 64


class Watch:
    """One block's deadline: ``with watchdog.watch(seconds):``. Not reusable."""

    __slots__ = ("_cancelling", "_dog", "_early", "_state", "_timeout", "deadline", "task")

    def __init__(self, dog: Watchdog, timeout: float) -> None:
        self._dog = dog
        self._timeout = timeout
        self.deadline = math.inf
        self.task: asyncio.Task[object] | None = None
        self._cancelling = 0
        self._state = _CREATED
        self._early = False

    def expired(self) -> bool:
        """True once the deadline passed while the block was running."""
        return self._state in (_EXPIRING, _EXPIRED)

    def __enter__(self) -> Watch:
        if self._state != _CREATED:
            raise RuntimeError("a Watch can be entered once")
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Watch must be used inside a task")
        self.task = task
        self._cancelling = task.cancelling()
        self._state = _ACTIVE
        dog = self._dog
        loop = asyncio.get_running_loop()
        if loop is not dog._loop:
            dog._reset(loop)
        deadline = self.deadline = loop.time() + self._timeout
        if deadline >= dog._last:  # the usual case: in order, O(1) in and out
            dog._ordered[self] = None
            dog._last = deadline
        else:
            dog._add_early(self)
        if deadline < dog._timer_at:
            dog._arm(loop, deadline)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self.task = self.task, None  # nothing pinned once the block is over
        if self._state == _ACTIVE:
            self._state = _EXITED
            dog = self._dog
            if self._early:
                dog._drop_early()
            else:
                ordered = dog._ordered
                del ordered[self]
                if not ordered:
                    dog._last = -math.inf
            return
        # Expired: the timer cancelled the task. Ours to turn into TimeoutError unless
        # someone else asked for a cancellation too.
        self._state = _EXPIRED
        assert task is not None
        if task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc

    def _expire(self) -> None:
        self._state = _EXPIRING
        assert self.task is not None
        self.task.cancel()


def _deadline(watch: Watch) -> float:
    return watch.deadline


class _NoWatch:
    """``watch(None)``: no deadline, nothing to do."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_NO_WATCH = _NoWatch()


class Watchdog:
    """Deadlines for many blocks, one timer; bound to the loop it is first used in."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        #: Active watches in deadline order (insertion order is deadline order here).
        self._ordered: dict[Watch, None] = {}
        self._last = -math.inf
        #: Watches whose deadline came earlier than ``_last``: (deadline, seq, watch).
        self._early: list[tuple[float, int, Watch]] = []
        self._early_done = 0
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def watch(self, timeout: float | None) -> Watch | _NoWatch:
        """A context manager cancelling the block after ``timeout`` seconds (None: never)."""
        if timeout is None:
            return _NO_WATCH
        return Watch(self, timeout)

    def __len__(self) -> int:
        """Watches held (active ones, and finished ones not yet compacted out of the heap)."""
        return len(self._ordered) + len(self._early)

    # -- bookkeeping -------------------------------------------------------------------------

    def _add_early(self, watch: Watch) -> None:
        watch._early = True
        self._seq += 1
        heapq.heappush(self._early, (watch.deadline, self._seq, watch))

    def _drop_early(self) -> None:
        self._early_done += 1
        if self._early_done > _COMPACT_AT and self._early_done * 2 > len(self._early):
            self._early = [e for e in self._early if e[2]._state == _ACTIVE]
            heapq.heapify(self._early)
            self._early_done = 0

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        # An empty context: the timer must not pin the context (and call) it was armed from.
        self._timer = loop.call_at(when, self._fire, context=contextvars.Context())
        self._timer_at = when

    def _fire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        loop = self._loop
        assert loop is not None
        now = loop.time()
        due: list[Watch] = []
        ordered = self._ordered
        while ordered:
            first = next(iter(ordered))
            if first.deadline > now:
                break
            del ordered[first]
            due.append(first)
        if not ordered:
            self._last = -math.inf
        early = self._early
        if early and early[0][0] <= now:
            while early and early[0][0] <= now:
                watch = heapq.heappop(early)[2]
                if watch._state == _ACTIVE:
                    due.append(watch)
                else:
                    self._early_done -= 1
            due.sort(key=_deadline)  # both kinds due at once: still in deadline order
        for watch in due:
            watch._expire()
        when = next(iter(ordered)).deadline if ordered else math.inf
        if early:
            when = min(when, early[0][0])
        if when < math.inf:
            self._arm(loop, when)

    def _reset(self, loop: asyncio.AbstractEventLoop) -> None:
        """First use, or a new loop (the old one's watches and timer died with it)."""
        if self._timer is not None:
            self._timer.cancel()
        self._loop = loop
        self._ordered, self._last = {}, -math.inf
        self._early, self._early_done = [], 0
        self._timer, self._timer_at = None, math.inf
