"""One budget in Redis: its keys (one hash slot), its script, one call of it, the reply read.

Imports: ``_connect`` and ``_script``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import secrets
import time
from collections.abc import Coroutine
from typing import Any

from attrs import frozen

from ._connect import REDIS_TIMEOUT, SLOW_TIMEOUT, FleetRedis, fleet_key
from ._script import SCRIPT

#: Shared state outlives the longest (hourly) window.
STATE_TTL = 7200
#: Seconds a process stays listed among the budget's members after its last call.
MEMBER_TTL = 5.0


@frozen
class Reply:
    """What one script run granted, and what the fleet knows (for a gap to come).

    Attributes:
        normal: Leases granted to normal calls.
        bulk: Leases granted to bulk calls.
        extra: Leases granted beyond what callers wait for (held for the next ones).
        opens_n: Wall time the window reopens for normal calls; -1 when unknown.
        opens_b: The same for bulk calls.
        tokens: What the window has left, if known.
        ends: When that window ends (wall seconds), if known.
        limit: The last known limit, if any.
        last_end: The latest window end the server announced, if any.
        members: Processes listed as sharing the budget (this one included).
        rejoin: When the fleet rejoins (rejoined) after a gap, wall seconds: ahead while
            a gap lasts.
        window: The window's length, once learned.
    """

    normal: list[str]
    bulk: list[str]
    extra: list[str]
    opens_n: float
    opens_b: float
    tokens: int | None
    ends: float | None
    limit: int | None
    last_end: float | None
    members: int
    rejoin: float | None
    window: float | None


class BudgetStore:
    """The budget's three keys (state, leases, members) under one hash tag, and the script.

    Each process is a member (``pid-random``); its leases are ``member.epoch:seq``, and it
    starts a new epoch each time it loses Redis, so the leases of an epoch it could not
    release can be dropped when it is back (record ``p``).

    Args:
        fleet: The Redis client, from ``connect`` or ``adopt``.
        tag: The budget's hash tag (``budget_tag``).
        lease_ttl: Seconds a request in flight counts against the budget at most.
    """

    def __init__(self, fleet: FleetRedis, tag: str, *, lease_ttl: float) -> None:
        self.fleet = fleet
        self.keys = [fleet_key(tag, name) for name in ("state", "leases", "members")]
        self.member = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.epoch = 0
        self._script = fleet.redis.register_script(SCRIPT)
        self._lease_ttl = lease_ttl
        self._seq = itertools.count()
        self._warm = False  # a first call succeeded: the client is connected and mapped

    @property
    def owner(self) -> str:
        """The prefix of this process's leases in the current epoch."""
        return f"{self.member}.{self.epoch}"

    async def run(
        self,
        n_normal: int,
        n_bulk: int,
        n_extra: int,
        records: list[str],
        *,
        bulk_reserve: float,
        proposal: float = -1.0,
        patient: bool = False,
    ) -> Reply:
        """Run the script once, within ``REDIS_TIMEOUT`` (``SLOW_TIMEOUT`` when ``patient``
        or before the first call succeeded).

        Args:
            n_normal: Permits wanted for normal calls.
            n_bulk: Permits wanted for bulk calls.
            n_extra: Permits to hold beyond those, if the budget is large.
            records: What answers said, 5 strings a record (see the script).
            bulk_reserve: The fraction of a window bulk calls leave to normal ones.
            proposal: Back from a gap: when this process proposes the fleet rejoins.
            patient: Nobody waits on this call (a probe, a heartbeat, a flush).

        Returns:
            The reply.

        Raises:
            Exception: Whatever Redis or redis-py raised, or TimeoutError.
        """
        now = time.time()
        owner = self.owner
        first = next(self._seq)
        for _ in range(max(0, n_normal + n_bulk + n_extra - 1)):
            next(self._seq)
        args: list[Any] = [
            repr(now),
            repr(now + self._lease_ttl),
            n_normal,
            n_bulk,
            n_extra,
            repr(bulk_reserve),
            owner,
            first,
            STATE_TTL,
            int(self._lease_ttl) + 60,
            self.member,
            repr(MEMBER_TTL),
            repr(proposal),
            *records,
        ]
        timeout = REDIS_TIMEOUT if self._warm and not patient else SLOW_TIMEOUT
        got = await _within(timeout, self._script(keys=self.keys, args=args))
        self._warm = True
        values = [v.decode() if isinstance(v, bytes) else str(v) for v in got]
        g_n, g_b, g_e = int(values[0]), int(values[1]), int(values[2])
        leases = [f"{owner}:{first + k}" for k in range(g_n + g_b + g_e)]
        return Reply(
            normal=leases[:g_n],
            bulk=leases[g_n : g_n + g_b],
            extra=leases[g_n + g_b :],
            opens_n=float(values[3]),
            opens_b=float(values[4]),
            tokens=_known_int(values[5]),
            ends=_known(values[11]),
            limit=_known_int(values[6]),
            last_end=_known(values[7]),
            members=int(values[8]),
            rejoin=_known(values[9]),
            window=_known(values[10]),
        )


async def _within(seconds: float, call: Coroutine[Any, Any, Any]) -> Any:
    """``call``'s result, or TimeoutError after ``seconds`` at the latest: a call that runs
    over is cancelled and left to finish its cleanup on its own (redis-py's cluster client
    closes every node's connections when a slot map refresh is cancelled: seconds, sometimes,
    that no caller should wait)."""
    task = asyncio.ensure_future(call)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except BaseException:  # our own caller gave up
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise TimeoutError(f"Redis did not answer within {seconds}s")
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved: no warning


def _known(text: str) -> float | None:
    value = float(text)
    return None if value < 0 else value


def _known_int(text: str) -> int | None:
    value = _known(text)
    return None if value is None else int(value)
