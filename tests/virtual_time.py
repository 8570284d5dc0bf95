"""An event loop on virtual time, for tests where waiting is not the point.

When nothing is ready to run and no I/O is waiting to be read, the loop's clock jumps to its
next timer instead of sleeping: a test of windows, backoffs and deadlines runs in
milliseconds. The clock never passes the next timer: a machine that stalls the loop for a
while (a preemption) lets the timers due meanwhile fire one after another, each one's
consequences run before the next, as on an idle machine. So a loaded machine cannot make a
deadline pass before the work that beat it, or a short sleep look long. Everything the
test waits on must live in this loop (the in-process fake server, not ``run_in_thread``);
with nothing scheduled at all, it waits for I/O for real.

A frozen loop (``on_frozen_time``) goes further: its clock moves only by those jumps, so
the machine's own speed never counts, and a test of throughput against windows (how many
requests a window takes, an ETA) cannot be slowed into missing one. Each jump there costs
a short real wait (``SETTLE``), so it is for tests with few timers.

``clock()`` is the matching wall clock (epoch seconds moving with the loop), for the fake
server's and the client's ``clock=``; ``on_virtual_time`` runs an async test on such a loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import functools
import math
import selectors
import socket
import sys
import termios
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any, ParamSpec, TypeVar

#: Real seconds an idle loop waits for I/O in flight before it jumps to its next timer.
SETTLE = 0.03
#: Real seconds an idle loop waits at most for TCP data or a connection still on its way.
IN_FLIGHT_LIMIT = 2.0
_SYN_STATES = (2, 3)  # tcpi_state: SYN_SENT, SYN_RECV


def _outgoing(fd: int) -> bool:
    sock = socket.socket(fileno=fd)  # borrowed: detached below, never closed here
    try:
        if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
            return False
        if sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] in _SYN_STATES:
            return True
        queued = fcntl.ioctl(fd, termios.TIOCOUTQ, b"\0\0\0\0")
        return int.from_bytes(queued, sys.byteorder) > 0
    finally:
        sock.detach()


T = TypeVar("T")
P = ParamSpec("P")


class _JumpingSelector(selectors.BaseSelector):
    """The real selector, asked never to wait: an idle wait becomes a jump of ``offset``."""

    def __init__(self, frozen: bool) -> None:
        self._real = selectors.DefaultSelector()
        self.offset = 0.0
        self.frozen = frozen

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._real.modify(fileobj, events, data)

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        ready = self._real.select(0)
        if ready or timeout == 0:
            return ready
        if timeout is None:  # no timer at all: only I/O (or another thread) can wake us
            return self._real.select(None)
        # Loopback data is usually readable as soon as it is sent, but a loaded machine may
        # deliver it a little later: wait that long for real before calling the loop idle.
        waited, ready = 0.0, self._real.select(min(timeout, SETTLE))
        # Sent but not yet received (a busy machine defers loopback delivery past SETTLE): a
        # jump now would move the clock while a request is on its way. Wait, within reason.
        while not ready and waited < IN_FLIGHT_LIMIT and self._in_flight():
            waited += SETTLE
            ready = self._real.select(min(timeout, SETTLE))
        if ready:
            return ready
        # (Unfrozen, the real waits above count already: the clock lands on the timer.)
        self.offset += timeout if self.frozen else max(0.0, timeout - SETTLE - waited)
        return []

    def _in_flight(self) -> bool:
        """A registered TCP socket still connecting, or with bytes its peer has not taken in
        (SIOCOUTQ: sent and not acknowledged; loopback acknowledges on arrival)."""
        for key in self._real.get_map().values():
            try:
                if _outgoing(key.fd):
                    return True
            except OSError:
                continue  # not a TCP socket (the loop's self-pipe)
        return False

    def close(self) -> None:
        self._real.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._real.get_key(fileobj)

    def get_map(self) -> Mapping[Any, selectors.SelectorKey]:
        return self._real.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    """``time()`` is the monotonic clock plus every idle wait skipped so far, held at the
    next timer until that timer has run."""

    def __init__(self, frozen: bool = False) -> None:
        self._jumping = _JumpingSelector(frozen)
        self._start = time.monotonic()
        self._shown = -math.inf
        super().__init__(self._jumping)

    def time(self) -> float:
        real = self._start if self._jumping.frozen else time.monotonic()
        now = real + self._jumping.offset
        scheduled: list[asyncio.TimerHandle] = self._scheduled  # type: ignore[attr-defined]
        if scheduled:
            now = min(now, scheduled[0].when())
        # Never backwards (a timer set for a time already shown is simply due).
        self._shown = now = max(now, self._shown)
        return now


class LoopWallClock:
    """Epoch seconds that move with ``loop.time()``, and sleeps on the loop: a ``Clock`` for
    the fake server and the client."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._base = time.time() - loop.time()

    def __call__(self) -> float:
        return self._base + self._loop.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def run(main: Callable[[], Coroutine[Any, Any, T]], frozen: bool = False) -> T:
    """``main()`` to completion on a new ``VirtualTimeLoop`` (``frozen``: see the module)."""
    with asyncio.Runner(loop_factory=functools.partial(VirtualTimeLoop, frozen)) as runner:
        return runner.run(main())


def clock() -> LoopWallClock:
    """The wall clock of the running loop, which must be a ``VirtualTimeLoop``."""
    loop = asyncio.get_running_loop()
    assert isinstance(loop, VirtualTimeLoop), "run on virtual time (virtual_time.run)"
    return LoopWallClock(loop)


def on_virtual_time(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """An async test run on its own ``VirtualTimeLoop`` (its fixtures and parameters kept)."""

    @functools.wraps(test)
    def synchronous(*args: P.args, **kwargs: P.kwargs) -> None:
        run(lambda: test(*args, **kwargs))

    return synchronous


def on_frozen_time(test: Callable[P, Coroutine[Any, Any, None]]) -> Callable[P, None]:
    """``on_virtual_time`` on a frozen loop: only the jumps move its clock."""

    @functools.wraps(test)
    def synchronous(*args: P.args, **kwargs: P.kwargs) -> None:
        run(lambda: test(*args, **kwargs), frozen=True)

    return synchronous
