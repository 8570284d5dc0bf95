"""The key cache under the lifecycle engine (issues 18, 19, 23), asserted on the fake server's
journal and state, on a manual clock shared by the client and the server:

- a second lifecycle run with nothing due costs the product-environment listing only, and so
  does the run after a rotation (every run records what it did);
- a step that falls due (retire, prune, generate) lists only that environment;
- a resume (the run's name again) lists what it touched and gives back every secret, though
  the cache holds those environments as trusted (it never holds a secret);
- the cache changes the cost, never a result: every run's results equal those of a twin
  server rotated without a cache;
- the audit's state and the dry run's ``next`` agree on the same keys, from the cache or not.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from typing import Any

import pytest

from cldprov_async import AccessKey, CldProvisioning, ProductEnvironment, RotationResult
from cldprov_async.testing import FakeProvisioningServer, ManualClock

T0 = 1_800_000_000.0
DAY = 86400.0
POLICY = dict(max_age=timedelta(days=30), grace=timedelta(days=7), prune_after=timedelta(days=14))
#: Entries outlive these tests' weeks (an expired entry is listed: see test_audit.py).
TTL = timedelta(days=60)
ENVS = [f"env-{n}" for n in range(6)]
DUE = {"env-0", "env-1"}  # their only key is 40 days old; the others' 10 days


def arranged(clock: ManualClock) -> FakeProvisioningServer:
    fake = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=clock)
    for sub in ENVS:
        fake.add_sub_account(sub, cloud_name=f"{sub}-cloud")
        age = 40 if sub in DUE else 10
        fake.add_key(sub, name="prod", created_at=T0 - age * DAY, dedicated=sub == "env-0")
    return fake


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def fake(clock: ManualClock) -> AsyncIterator[FakeProvisioningServer]:
    async with arranged(clock) as server:
        yield server


class Consumers:
    """``deliver``: each environment's consumer keeps the key last handed to it."""

    def __init__(self) -> None:
        self.held: dict[str, AccessKey] = {}

    async def deliver(self, key: AccessKey, environment: ProductEnvironment) -> None:
        self.held[environment.id] = key


def spent(fake: FakeProvisioningServer) -> dict[str, list[str]]:
    """Requests since the last call, by route (key routes: the environments), then clear."""
    out: dict[str, list[str]] = {}
    for entry in fake.journal:
        sub = "" if entry.route == "list_product_environments" else entry.path.split("/")[6]
        out.setdefault(str(entry.route), []).append(sub)
    fake.clear_journal()
    return {route: sorted(subs) for route, subs in out.items()}


async def cron(
    client: CldProvisioning, consumers: Consumers, **kw: Any
) -> dict[str, RotationResult]:
    """The nightly run as the CLI makes it: the listing, then the lifecycle over it."""
    envs = (await client.product_environments.list()).sub_accounts
    results = await client.access_keys.rotate_many(
        envs, deliver=consumers.deliver, **{**POLICY, **kw}
    )
    return {r.sub_account_id: r for r in results}


def statuses(results: dict[str, RotationResult]) -> dict[str, str]:
    return {sub: r.status for sub, r in results.items()}


def comparable(results: dict[str, RotationResult]) -> dict[str, tuple[object, ...]]:
    """What a result says, apart from the keys' random ids and secrets."""
    return {
        sub: (r.status, r.steps, r.new_key is not None, len(r.retired), len(r.deleted))
        for sub, r in results.items()
    }


LISTING_ONLY = {"list_product_environments": [""]}


async def test_nothing_due_costs_the_listing_and_so_does_the_run_after_a_rotation(
    clock: ManualClock, fake: FakeProvisioningServer
) -> None:
    twin = arranged(clock)  # the same account rotated without a cache: the same results
    consumers, twin_consumers = Consumers(), Consumers()
    async with (
        twin,
        fake.client(clock=clock, key_cache_ttl=TTL) as client,
        twin.client(clock=clock, key_cache=False) as uncached,
    ):

        async def both(**kw: Any) -> dict[str, RotationResult]:
            got = await cron(client, consumers, **kw)
            assert comparable(got) == comparable(await cron(uncached, twin_consumers, **kw))
            await cache_is_server(client, fake)
            return got

        first = await both()  # cold: every environment listed once
        assert statuses(first) == {s: "handed_off" if s in DUE else "skipped" for s in ENVS}
        assert spent(fake)["list"] == ENVS
        assert sorted(consumers.held) == sorted(DUE)

        second = await both()  # the run after the rotation: nothing due anywhere
        assert spent(fake) == LISTING_ONLY
        assert statuses(second) == {s: "in_grace" if s in DUE else "skipped" for s in ENVS}
        assert second["env-0"].in_grace_until == first["env-0"].in_grace_until

        clock.advance(8 * DAY)  # the grace is over: only the rotated ones are listed
        third = await both()
        assert statuses(third) == {s: "retired" if s in DUE else "skipped" for s in ENVS}
        got = spent(fake)
        assert got["list"] == sorted(DUE) and got["update"] == sorted(DUE)
        await both()
        assert spent(fake) == LISTING_ONLY  # and cheap again after it

        clock.advance(15 * DAY)  # prune due for the rotated, generate for the others (33d)
        fourth = await both()
        assert statuses(fourth) == {s: "pruned" if s in DUE else "handed_off" for s in ENVS}
        assert spent(fake)["list"] == ENVS
        await both()
        assert spent(fake) == LISTING_ONLY
    assert [k.dedicated_for for k in fake.keys("env-0")] == [("webhooks",)]


async def cache_is_server(client: CldProvisioning, fake: FakeProvisioningServer) -> None:
    """What the cache holds after a run is what the server holds (dedication included)."""
    assert client.key_cache is not None
    entries = await client.key_cache.get(ENVS)
    for sub in ENVS:
        server = {(k.api_key, k.name, k.enabled, k.dedicated_for) for k in fake.keys(sub)}
        cached = {(k.api_key, k.name, k.enabled, k.dedicated_for) for k in entries[sub].keys}
        assert cached == server, sub


async def test_a_resume_lists_what_its_run_touched_and_gives_every_secret_back(
    clock: ManualClock, fake: FakeProvisioningServer
) -> None:
    consumers = Consumers()
    async with fake.client(clock=clock, key_cache_ttl=TTL) as client:
        first = await cron(client, consumers, name="night-1")
        spent(fake)
        made = fake.keys_created
        again = await cron(client, Consumers(), name="night-1")  # the resume: same name
        listed = spent(fake)
        other = await cron(client, Consumers(), name="night-2")  # another run: trusts all
        assert spent(fake) == LISTING_ONLY
    assert listed["list"] == sorted(DUE) and set(listed) == {"list", "list_product_environments"}
    assert fake.keys_created == made  # no second key
    for sub in DUE:
        new = first[sub].new_key
        assert new is not None and again[sub].new_key == new  # secret included
        assert new.api_secret and other[sub].new_key is None
    assert statuses(again) == statuses(other)


async def test_a_dry_run_plans_from_the_cache_when_nothing_is_due(
    clock: ManualClock, fake: FakeProvisioningServer
) -> None:
    async with fake.client(clock=clock, key_cache_ttl=TTL) as client:
        await cron(client, Consumers(), dry_run=True)  # cold: lists, records
        spent(fake)
        plans = await cron(client, Consumers(), dry_run=True)
        assert spent(fake) == {**LISTING_ONLY, "list": sorted(DUE)}  # due: planned on keys
        fresh = await cron(client, Consumers(), dry_run=True, refresh=True)
        assert spent(fake)["list"] == ENVS
    assert {s: (r.status, r.next, r.next_at) for s, r in plans.items()} == {
        s: (r.status, r.next, r.next_at) for s, r in fresh.items()
    }
    assert {r.next for s, r in plans.items() if s in DUE} == {"generate"}


# -- the audit and the engine agree ---------------------------------------------------------

#: Every audit state, on keys arranged by (name, age in days, enabled, updated days ago).
STATES: dict[str, tuple[str, list[tuple[str, float, bool, float | None]]]] = {
    "s-current": ("current", [("prod", 10, True, None)]),
    "s-due": ("due", [("prod", 40, True, None)]),
    "s-pending": ("hand-off pending", [("prod", 40, True, None), ("r@pending", 1, True, None)]),
    "s-grace": ("in grace", [("prod", 40, True, None), ("r@current", 5, True, 3)]),
    "s-retire": ("retire due", [("prod", 50, True, None), ("r@current", 12, True, 9)]),
    "s-prune": ("prune due", [("r@current", 20, True, None), ("prod@retired", 50, False, 16)]),
    "s-waits": ("current", [("r@current", 20, True, None), ("prod@retired", 50, False, 6)]),
    "s-hand": ("current", [("r@current", 40, True, None), ("by-hand", 2, True, None)]),
    "s-none": ("no enabled key", [("prod", 40, False, None)]),
}
#: The audit state -> what a dry run says a run does next (None: nothing ever, here).
NEXT = {
    "due": "generate",
    "hand-off pending": "hand_off",
    "in grace": "in_grace",
    "retire due": "retire",
    "prune due": "prune",
    "no enabled key": None,
}


async def arrange_states(
    fake: FakeProvisioningServer, client: CldProvisioning, clock: ManualClock
) -> None:
    """The keys of ``STATES``; a key changed some days ago is changed then (the hand-off's
    rename, a retirement), on the server's clock."""
    for sub, (_, keys) in STATES.items():
        fake.add_sub_account(sub, cloud_name=f"{sub}-cloud")
        for name, age, enabled, updated in keys:
            if updated is None:
                fake.add_key(sub, name=name, enabled=enabled, created_at=T0 - age * DAY)
                continue
            key = fake.add_key(sub, name=f"{name}-before", created_at=T0 - age * DAY)
            clock.set(T0 - updated * DAY)
            await client.access_keys.update(sub, key.api_key, {"name": name, "enabled": enabled})
    clock.set(T0)
    fake.clear_journal()


def agree(state: str, result: RotationResult, next_states: Sequence[str | None]) -> bool:
    if state == "current":  # nothing due now: a later generate or prune, when known
        return result.next in next_states and result.next_at is not None
    if state == "in grace":  # the older keys retire when it ends
        return result.next == "in_grace" and result.next_at == result.in_grace_until
    return result.next == NEXT[state] and result.next_at is None


async def test_the_audit_state_agrees_with_the_dry_runs_next(clock: ManualClock) -> None:
    fake = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=clock)
    async with fake, fake.client(clock=clock, key_cache_ttl=TTL) as client:
        await arrange_states(fake, client, clock)
        for round_ in ("cold", "warm"):
            report = await client.access_keys.audit(
                older_than=POLICY["max_age"],
                grace=POLICY["grace"],
                prune_after=POLICY["prune_after"],
            )
            plans = await cron(client, Consumers(), dry_run=True)
            rows = {r.sub_account_id: r for r in report.rows}
            assert {s: r.state for s, r in rows.items()} == {s: st for s, (st, _) in STATES.items()}
            for sub, (state, _) in STATES.items():
                plan = plans[sub]
                assert agree(state, plan, ("generate", "prune")), (round_, sub, state, plan)
                assert (rows[sub].next, rows[sub].next_at) == (plan.next, plan.next_at), sub
                assert rows[sub].in_grace_until == plan.in_grace_until, sub
            if round_ == "warm":
                assert report.summary.from_cache == len(STATES) - 1  # the pending one listed
