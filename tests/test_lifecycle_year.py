"""The proof of the lifecycle (issue 18, item 10): a year of daily cron runs in seconds.

The library's cron call (``rotate_many`` with ``max_age=30d, grace=7d, prune_after=14d``, the
ping verifier and a deliver) runs once per simulated day over 50 environments, on a manual
clock shared by the client and the fake server. Hand-offs fail at random (10%: half before
the consumer stored the key, half after), the ping accepts a new key only 20 s (of the clock)
after its creation, and some days' runs are killed at a random request. Each environment has a
consumer holding the key last delivered to it. Every day, from the server's state:

- every consumer's key is accepted by the ping;
- no environment keeps more than two enabled keys longer than grace + 1 day;
- every environment's current key is younger than policy + grace + 1 day, unless it was
  reported failed that day (or that day's run was killed before reaching it);
- no environment gets two new keys for one due date (rotation-made keys are >= 30 days apart);
- a retired key is deleted within prune age + 1 day.

Each day's run starts with the product-environment listing, as the CLI's does, so the key
cache (the client's default) answers for the environments with nothing due.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections import defaultdict
from datetime import datetime, timedelta
from types import SimpleNamespace

import aiohttp
import pytest

from cldprov_async import AccessKey, PingVerifier, ProductEnvironment
from cldprov_async._labels import parse_name
from cldprov_async.testing import FakeProvisioningServer, ManualClock

SEED = 18
DAYS = int(os.environ.get("YEAR_DAYS", "365"))
ENVS = [f"env-{n:02d}" for n in range(50)]
T0 = 1_800_000_000.0
DAY = 86400.0
POLICY, GRACE, PRUNE = 30, 7, 14
KILL_RATE = 0.15


def when(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


class Consumers:
    """Each environment's consumer: the key last delivered to it (api_key, secret)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.held: dict[str, tuple[str, str]] = {}
        self.failed = 0

    async def deliver(self, key: AccessKey, env: ProductEnvironment) -> None:
        fate = self.rng.random()
        if fate < 0.05:
            self.failed += 1
            raise RuntimeError("the secret store is down")
        assert key.api_secret is not None
        self.held[env.id] = (key.api_key, key.api_secret)
        await asyncio.sleep(0)  # a kill may land here, after the store
        if fate < 0.10:
            self.failed += 1
            raise RuntimeError("stored, but the hook crashed before it could say so")


@pytest.mark.slow
async def test_a_year_of_daily_runs_never_breaks_a_consumer() -> None:
    rng = random.Random(SEED)
    clock = ManualClock(T0)
    fake = FakeProvisioningServer(
        sub_accounts=(), keys_per_sub_account=0, clock=clock, ping_delay=20, keep_journal=False
    )
    consumers = Consumers(rng)
    for sub in ENVS:
        fake.add_sub_account(sub, cloud_name=f"{sub}-cloud")
        # Hand-made keys of random ages: the first rotations spread over the first month.
        key = fake.add_key(sub, name="prod", created_at=T0 - rng.uniform(0, 40) * DAY)
        consumers.held[sub] = (key.api_key, key.api_secret)
    made: dict[str, list[float]] = defaultdict(list)  # creation times of rotation-made keys
    seen: set[str] = set()
    crowded_since: dict[str, float] = {}
    retired_at: dict[str, tuple[str, float]] = {}
    stats = SimpleNamespace(kills=0, failed_reports=0, hand_offs=0, pings=0, key_listings=0)
    requests = 0
    kill_at: int | None = None
    run_task: asyncio.Task[None] | None = None

    async def on_request(_: object, __: object, params: aiohttp.TraceRequestStartParams) -> None:
        nonlocal requests
        requests += 1
        if params.method == "GET" and params.url.path.endswith("/access_keys"):
            stats.key_listings += 1
        if kill_at is not None and requests == kill_at and run_task is not None:
            run_task.cancel()  # killed at a random request

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request)
    async with (
        fake,
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        fake.client(clock=clock, session=session) as client,
    ):
        verify = PingVerifier(fake.url, timeout=120, clock=clock, backoff_initial=10)

        async def cron(day: int, reported: dict[str, str]) -> None:
            """The daily cron call, as the CLI's --all makes it: one listing, its environments
            handed to the rotation (the key cache, the client's default, spares the key
            listing of each one whose keys the listing shows unchanged and for which nothing
            is due); each result reported as it comes."""
            environments = (await client.product_environments.list()).sub_accounts
            results = client.access_keys.rotate_iter(
                environments,
                concurrency=16,
                name=f"cron-{day}",
                verify=verify,
                deliver=consumers.deliver,
                max_age=timedelta(days=POLICY),
                grace=timedelta(days=GRACE),
                prune_after=timedelta(days=PRUNE),
            )
            async for result in results:
                reported[result.sub_account_id] = result.status

        for day in range(DAYS):
            now = T0 + day * DAY
            clock.set(now)
            reported: dict[str, str] = {}

            killed = rng.random() < KILL_RATE
            # A run sends 3 to 60 requests, most about 15: the listing, what is due, and the
            # key listings the key cache cannot spare; a kill past its end spares that day.
            kill_at = requests + rng.randint(1, 20) if killed else None
            run_task = asyncio.create_task(cron(day, reported))
            try:
                await run_task
            except asyncio.CancelledError:
                stats.kills += 1
            kill_at = None
            stats.failed_reports += sum(s == "failed" for s in reported.values())
            stats.hand_offs += sum(s in ("handed_off", "rotated") for s in reported.values())
            now = clock()
            for sub in ENVS:
                keys = fake.keys(sub)
                # The consumer's key works.
                api_key, secret = consumers.held[sub]
                assert fake.ping_accepts(sub, api_key, secret), (day, sub)
                # At most two enabled keys, except for up to grace + 1 day.
                if sum(k.enabled for k in keys) > 2:
                    since = crowded_since.setdefault(sub, now)
                    assert now - since <= (GRACE + 1) * DAY, (day, sub, keys)
                else:
                    crowded_since.pop(sub, None)
                # The current key's age.
                current = [k for k in keys if k.enabled and parse_name(k.name).label == "current"]
                if current:
                    age = now - max(when(k.created_at) for k in current)
                    if age > (POLICY + GRACE + 1) * DAY:
                        assert reported.get(sub, "killed") in ("failed", "killed"), (day, sub)
                # Rotation-made keys: one per due date.
                for k in keys:
                    if k.api_key not in seen and parse_name(k.name).label is not None:
                        seen.add(k.api_key)
                        made[sub].append(when(k.created_at))
                # Retired keys are pruned in time.
                present = {k.api_key for k in keys}
                for k in keys:
                    if not k.enabled and parse_name(k.name).label == "retired":
                        retired_at.setdefault(k.api_key, (sub, when(k.updated_at)))
                for gone in [
                    a for a, (s, _) in retired_at.items() if s == sub and a not in present
                ]:
                    del retired_at[gone]
            for api_key, (sub, at) in retired_at.items():
                # Pruned by the first run that reaches it once due (a killed run may not).
                if sub in reported:
                    assert now - at <= (PRUNE + 1) * DAY, (day, sub, api_key)
            if day % 91 == 0:  # now and then, the real ping over HTTP too
                async with aiohttp.ClientSession() as http:
                    for sub, (api_key, secret) in consumers.held.items():
                        auth = aiohttp.encode_basic_auth(api_key, secret)
                        url = f"{fake.url}/v1_1/{sub}-cloud/ping"
                        async with http.get(url, headers={"Authorization": auth}) as resp:
                            assert resp.status == 200
                            stats.pings += 1
        await verify.aclose()
    for sub, times in made.items():
        times.sort()
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert all(gap >= POLICY * DAY for gap in gaps), (sub, gaps)
    # The run did what the proof says it did.
    assert stats.kills >= 30 and consumers.failed >= 40 and stats.failed_reports >= 40
    assert sum(len(t) for t in made.values()) >= 50 * 10  # a key every ~31 days, per env
    assert stats.pings == 250
    # The key cache (the client's default) spared most days' key listings: an environment is
    # listed when a step is due, its entry expired (7 days) or its last run failed (about a
    # fifth of the environment-days here; every one of them without the cache).
    assert stats.key_listings < 0.4 * DAYS * len(ENVS), (stats.key_listings, requests)
