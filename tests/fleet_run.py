"""A fleet under a Redis fault: worker processes against the fake server, the fault mid-run,
and the checks issue 20 asks of the run. Shared by the fleet's Sentinel, Cluster and gap tests.

The fake server runs in a thread of the test process (its journal says what it received and
when); each client is a ``benchmarks/fleet_worker.py`` process that prints its results and the
library's log lines.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import forked

from cldprov_async import RotationLockedError
from cldprov_async._fleet import budget_tag
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy, ServerStats

WORKER = str(Path(__file__).parent.parent / "benchmarks" / "fleet_worker.py")
SECRET = "fleet-secret-zz9"
LIMIT, WINDOW = 40, 1.0


@contextmanager
def fake_server() -> Iterator[FakeProvisioningServer]:
    """40 requests per 1-second window (420, reset header only), journal kept."""
    server = FakeProvisioningServer(
        api_secret=SECRET,
        rate_limit=RateLimitPolicy(limit=LIMIT, window=WINDOW, status=420),
        keep_journal=True,
    )
    with server.run_in_thread():
        yield server


def spawn(fake: FakeProvisioningServer, **opts: Any) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CLOUDINARY_ACCOUNT_URL": f"account://{fake.api_key}:{SECRET}@{fake.account_id}",
    }
    opts = {"server_url": fake.url, "max_wait": 30.0, **opts}
    return forked.Popen(
        [sys.executable, WORKER, json.dumps(opts)], stdout=subprocess.PIPE, env=env, text=True
    )


def result(proc: subprocess.Popen[str], timeout: float = 90) -> dict[str, Any]:
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


async def two_clients(
    rate_limit_url: str, rate_limit_redis: Any, limit: int = 20
) -> tuple[ServerStats, str]:
    """A client on ``rate_limit_url`` and one on the caller's ``rate_limit_redis``, 25
    generates each, under ``limit`` a second: what the server counted, and the hash tag of
    the budget they share."""
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=limit, window=1.0)) as fake:
        one = fake.client(rate_limit_url=rate_limit_url)
        two = fake.client(rate_limit_redis=rate_limit_redis)
        async with one, two:
            await asyncio.gather(
                *(one.access_keys.generate("sub-1", {"name": f"a{i}"}) for i in range(25)),
                *(two.access_keys.generate("sub-1", {"name": f"b{i}"}) for i in range(25)),
            )
        return fake.stats, budget_tag("", f"127.0.0.1:{fake.port}", fake.account_id)


async def lock_and_cache(rate_limit_url: str, rate_limit_redis: Any) -> tuple[str, int]:
    """The rotation lock and the key cache on the fleet's Redis: a client on the URL holds
    the lock while one on the caller's client is refused (and the other way round), and an
    audit through one warms the cache for the other. Returns the budget's hash tag and the
    requests the second, warm audit sent."""
    async with FakeProvisioningServer(sub_accounts=["a", "b", "c"]) as fake:
        one = fake.client(rate_limit_url=rate_limit_url)
        two = fake.client(rate_limit_redis=rate_limit_redis)
        async with one, two:
            for holder, other in ((one, two), (two, one)):
                async with holder.rotation_lock():
                    try:
                        async with other.rotation_lock():
                            raise AssertionError("two runs held the rotation lock at once")
                    except RotationLockedError as refused:
                        assert refused.pid == os.getpid()
            cold = await one.access_keys.audit(refresh=True)
            before = len(fake.journal)
            warm = await two.access_keys.audit()
            assert [r.state for r in warm.rows] == [r.state for r in cold.rows]
            sent = len(fake.journal) - before
        return budget_tag("", f"127.0.0.1:{fake.port}", fake.account_id), sent


def run_with_fault(
    fake: FakeProvisioningServer,
    url: str,
    fault: Callable[[], None],
    procs: int = 4,
    n: int = 100,
) -> tuple[list[dict[str, Any]], float]:
    """``procs`` processes x ``n`` named generates (32 at a time each) on one budget; mid-run
    (every process has sent, through the shared budget, and the server has received two
    windows' worth), ``fault()``. Returns the outputs and the fault's time."""
    workers = [
        spawn(fake, mode="generate", n=n, concurrency=32, tag=f"p{i}", rate_limit_url=url)
        for i in range(procs)
    ]
    try:
        deadline = time.monotonic() + 60
        while not _mid_run(fake, procs) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _mid_run(fake, procs), "the fleet did not start"
        at = time.time()
        fault()
        return [result(w) for w in workers], at
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()


def lines(out: dict[str, Any], *words: str) -> list[tuple[float, str, str]]:
    """The worker's log lines (time, level, text) holding any of ``words``."""
    return [(t, level, text) for t, level, text in out["log"] if any(w in text for w in words)]


def check_gap_run(
    fake: FakeProvisioningServer,
    outs: list[dict[str, Any]],
    at: float,
    n: int = 100,
    served_by: int | None = None,
) -> list[float]:
    """What issue 20 asks of a run through a gap; returns the processes' rejoin times."""
    # Every call ended, and succeeded: the calls' budget (30 s) outlasts the gap.
    assert [(o["ok"], o["failed"]) for o in outs] == [(n, [])] * len(outs)
    assert fake.keys_created == n * len(outs)
    # At most 2% of what the server received was rejected.
    stats = fake.stats
    assert stats.rate_limited <= 0.02 * stats.received, (stats, story(fake, outs, at))
    rejoins = []
    for out in outs:
        # One warning for the gap (Redis unreachable, or back from a gap others saw) from each
        # process still running 2 s after the fault (it calls Redis at least once a second).
        gone = lines(out, "is unreachable", "is back from a gap")
        assert len(gone) <= 1, out["log"]
        assert len(gone) == 1 or out["start_epoch"] + out["wall"] < at + 2.0, out["log"]
        assert all(when >= at - 0.1 for when, _level, _text in gone)
        back = lines(out, "rejoined")
        assert len(back) <= 1, out["log"]
        if back:
            when, level, text = back[0]
            rejoins.append(when)
            assert level == "INFO"
            if served_by is not None:
                assert f"served by 127.0.0.1:{served_by}" in text
    # Back together, at a window boundary (the fake server's windows start on whole seconds;
    # the fleet switches 0.01 s after one).
    assert rejoins, "no process was still running to rejoin"
    assert max(rejoins) - min(rejoins) < 0.25, rejoins
    assert all(0.0 <= t % WINDOW < 0.25 for t in rejoins), rejoins
    # No process waited for Redis: through the gap (from the fault to the rejoin) each kept
    # sending, never silent for more than a window (its share may be spent) plus 2 seconds.
    # (Outside it the shared gate serves whichever process asks first: no such bound.)
    for i in range(len(outs)):
        times = sorted(e.time for e in fake.journal if _tag(e.body) == f"p{i}")
        until, pairs = min(rejoins), itertools.pairwise(times)
        silences = [min(b, until) - max(a, at) for a, b in pairs if at <= b and a < until]
        assert max(silences, default=0.0) <= WINDOW + 2.0, (i, story(fake, outs, at))
    return rejoins


def story(fake: FakeProvisioningServer, outs: list[dict[str, Any]], at: float) -> str:
    """What happened, for a failing check: per window of the server, each process's requests
    (rejected), and the log lines but retries, timed from the fault."""
    rows = [f"the fault at {at % WINDOW:.2f} s into its window"]
    first = math.floor(at / WINDOW)
    for w in sorted({math.floor(e.time / WINDOW) for e in fake.journal}):
        entries = [e for e in fake.journal if math.floor(e.time / WINDOW) == w]
        each = [[e for e in entries if _tag(e.body) == f"p{i}"] for i in range(len(outs))]
        counts = [f"{len(x)}({sum(e.status == 420 for e in x)})" for x in each]
        rows.append(f"window {w - first:+d}: " + " ".join(counts))
    for i, out in enumerate(outs):
        rows += [
            f"p{i} {t - at:+.2f} {level} {text}"
            for t, level, text in out["log"]
            if not text.startswith("retrying")
        ]
    return "\n".join(rows)


def _mid_run(fake: FakeProvisioningServer, procs: int) -> bool:
    if fake.stats.received < 2 * LIMIT:
        return False
    return {_tag(e.body) for e in fake.journal} >= {f"p{i}" for i in range(procs)}


def _tag(body: Any) -> str:
    name = body.get("name", "") if isinstance(body, dict) else ""
    return str(name).split("-", 1)[0]
