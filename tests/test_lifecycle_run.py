"""Lifecycle rotation through the library against the fake server on a manual clock: the order
of the steps, hand-offs that fail and are retried, grace, pruning, the webhook dedication, a
rerun with the same name. Assertions read the server's keys and journal."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from cldprov_async import AccessKey, CldProvisioning, ProductEnvironment, RotationResult
from cldprov_async.testing import FakeKey, FakeProvisioningServer, Faults, ManualClock

T0 = 1_800_000_000.0
DAY = 86400.0
GRACE = timedelta(days=7)


class Consumer:
    """What each environment's consumers hold: the key last delivered, and the state of the
    server at the moment of delivery."""

    def __init__(self, fake: FakeProvisioningServer) -> None:
        self.fake = fake
        self.held: dict[str, AccessKey] = {}
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.seen_enabled: dict[str, list[str]] = {}

    async def __call__(self, key: AccessKey, env: ProductEnvironment) -> None:
        self.calls.append(env.id)
        self.seen_enabled[env.id] = [k.name for k in self.fake.keys(env.id) if k.enabled]
        if env.id in self.fail:
            raise RuntimeError(f"the store is down (would leak? {key.api_secret})")
        self.held[env.id] = key


World = tuple[FakeProvisioningServer, CldProvisioning, ManualClock]
THIRTY = timedelta(days=30)


@pytest.fixture
async def world() -> AsyncIterator[World]:
    clock = ManualClock(T0)
    fake = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=clock)
    for sub in ("a", "b"):
        fake.add_sub_account(sub, cloud_name=f"{sub}-cloud")
        fake.add_key(sub, name="prod", created_at=T0 - 100 * DAY)
    async with fake, fake.client(clock=clock) as client:
        yield fake, client, clock


def names(fake: FakeProvisioningServer, sub: str) -> list[tuple[str, bool]]:
    return [(k.name, k.enabled) for k in fake.keys(sub)]


def key_of(fake: FakeProvisioningServer, sub: str, name: str) -> FakeKey:
    (key,) = [k for k in fake.keys(sub) if k.name == name]
    return key


async def run(
    client: CldProvisioning, consumer: Consumer, name: str, **kw: Any
) -> dict[str, RotationResult]:
    results = await client.access_keys.rotate_many(["a", "b"], name=name, deliver=consumer, **kw)
    return {r.sub_account_id: r for r in results}


async def test_grace_zero_does_it_all_in_one_run_handing_off_before_retiring(world: World) -> None:
    fake, client, _ = world
    consumer = Consumer(fake)
    results = await run(client, consumer, "r1", grace=timedelta(0), verify=client.ping_verifier())
    for sub, r in results.items():
        assert r.status == "rotated" and r.steps == (
            "generated",
            "verified",
            "handed_off",
            "retired",
        )
        assert names(fake, sub) == [("prod@retired", False), ("r1@current", True)]
        # The hook ran while the old key was still enabled and the new one still pending.
        assert consumer.seen_enabled[sub] == ["prod", "r1@pending"]
        held = consumer.held[sub]
        assert held.name == "r1@pending"  # its name as it stood when handed off
        assert held.api_secret == key_of(fake, sub, "r1@current").api_secret
        assert r.new_key is not None and r.new_key.api_secret == held.api_secret
        assert [k.name for k in r.retired] == ["prod@retired"]
    assert fake.keys_created == 2


async def test_a_failed_hand_off_is_retried_with_the_same_key(world: World) -> None:
    fake, client, clock = world
    consumer = Consumer(fake)
    consumer.fail.add("a")
    first = await run(client, consumer, "r1", grace=timedelta(0), max_age=THIRTY)
    assert first["a"].status == "failed" and first["a"].steps == ("generated",)
    assert "the store is down" not in str(first["a"].error)  # its type only, no secret
    assert first["a"].new_key is not None and first["a"].new_key.api_secret  # nothing lost
    assert names(fake, "a") == [("prod", True), ("r1@pending", True)]
    assert first["b"].status == "rotated"
    consumer.fail.clear()
    clock.advance(DAY)
    second = await run(client, consumer, "r2", grace=timedelta(0), max_age=THIRTY)
    assert second["a"].status == "rotated" and second["a"].steps == ("handed_off", "retired")
    assert names(fake, "a") == [("prod@retired", False), ("r1@current", True)]  # no new key
    assert second["b"].status == "skipped"  # its current key is a day old
    assert fake.keys_created == 2


async def test_a_key_the_ping_never_accepts_is_never_handed_off(world: World) -> None:
    fake, client, _ = world
    fake.refuse_ping("a")
    consumer = Consumer(fake)
    results = await run(
        client, consumer, "r1", grace=timedelta(0), verify=client.ping_verifier(timeout=60)
    )
    assert results["a"].status == "failed" and "refused" in str(results["a"].error)
    assert "a" not in consumer.calls
    assert names(fake, "a") == [("prod", True), ("r1@pending", True)]
    assert results["b"].status == "rotated"


async def test_grace_then_retire_then_prune_by_the_servers_dates(world: World) -> None:
    fake, client, clock = world
    consumer = Consumer(fake)
    fake.add_key("a", name="by-hand-off", enabled=False, created_at=T0 - 200 * DAY)
    policy: dict[str, Any] = {"grace": GRACE, "prune_after": timedelta(days=14), "max_age": THIRTY}
    r = (await run(client, consumer, "d0", **policy))["a"]
    assert (r.status, r.steps) == ("handed_off", ("generated", "handed_off"))
    assert r.in_grace_until is not None and r.in_grace_until.timestamp() == T0 + 7 * DAY
    for day in (1, 6):
        clock.set(T0 + day * DAY)
        fake.clear_journal()
        r = (await run(client, consumer, f"d{day}", **policy))["a"]
        assert r.status == "in_grace" and r.steps == () and r.new_key is None
        assert {e.method for e in fake.journal if e.route != "ping"} == {"GET"}
    clock.set(T0 + 7 * DAY)
    r = (await run(client, consumer, "d7", **policy))["a"]
    assert (r.status, r.steps) == ("retired", ("retired",))
    assert names(fake, "a") == [
        ("prod@retired", False),
        ("by-hand-off", False),
        ("d0@current", True),
    ]
    plan = (await client.access_keys.rotate_many(["a"], dry_run=True, **policy))[0]
    assert (plan.status, plan.next) == ("planned", "prune")
    assert plan.next_at is not None and plan.next_at.timestamp() == T0 + 21 * DAY
    clock.set(T0 + 21 * DAY)
    r = (await run(client, consumer, "d21", **policy))["a"]
    assert (r.status, [k.name for k in r.deleted]) == ("pruned", ["prod@retired"])
    assert names(fake, "a") == [("by-hand-off", False), ("d0@current", True)]  # never pruned
    clock.set(T0 + 31 * DAY)
    r = (await run(client, consumer, "d31", **policy))["a"]
    assert r.status == "handed_off"  # the current key is past 30 days: its successor
    assert consumer.held["a"].name == "d31@pending"


async def test_retire_delete_deletes_the_older_keys_when_the_grace_ends(world: World) -> None:
    fake, client, clock = world
    consumer = Consumer(fake)
    await run(client, consumer, "r1", grace=GRACE, retire="delete")
    clock.advance(8 * DAY)
    r = (
        await run(client, consumer, "r2", grace=GRACE, retire="delete", max_age=timedelta(days=30))
    )["a"]
    assert (r.status, [k.name for k in r.retired]) == ("retired", ["prod"])
    assert names(fake, "a") == [("r1@current", True)]


async def test_the_webhook_dedication_moves_with_the_hand_off(world: World) -> None:
    fake, client, _ = world
    old = fake.keys("a")[0]
    await client.access_keys.update("a", old.api_key, {"dedicated_for": "webhooks"})
    fake.clear_journal()
    await run(client, Consumer(fake), "r1", grace=GRACE)
    (put,) = [e for e in fake.journal if e.method == "PUT" and "/a/" in e.path]
    assert put.body == {"name": "r1@current", "dedicated_for": "webhooks"}
    assert key_of(fake, "a", "r1@current").dedicated_for == ("webhooks",)
    assert key_of(fake, "a", "prod").enabled  # in grace: still serving


async def test_a_rerun_with_the_same_name_gives_the_keys_back_and_makes_none(world: World) -> None:
    fake, client, _ = world
    consumer = Consumer(fake)
    first = await run(client, consumer, "same", grace=GRACE)
    again = await run(client, consumer, "same", grace=GRACE)
    for sub in ("a", "b"):
        new, rerun = first[sub].new_key, again[sub].new_key
        assert new is not None and rerun is not None
        assert (rerun.api_key, rerun.api_secret) == (new.api_key, new.api_secret)
        assert again[sub].status == "in_grace"
    assert fake.keys_created == 2 and sorted(consumer.calls) == ["a", "b"]


async def test_lifecycle_arguments_are_checked_before_anything_is_sent(world: World) -> None:
    fake, client, _ = world
    fake.clear_journal()
    keys = client.access_keys
    with pytest.raises(TypeError, match="deliver"):
        keys.rotate_iter(["a"], grace=GRACE)
    with pytest.raises(ValueError, match="name"):
        keys.rotate_iter(["a"], grace=GRACE, deliver=Consumer(fake), name="a@b")
    with pytest.raises(ValueError, match="keep"):
        keys.rotate_iter(["a"], grace=GRACE, deliver=Consumer(fake), retire="keep")
    with pytest.raises(ValueError, match="grace"):
        keys.rotate_iter(["a"], grace=-GRACE, deliver=Consumer(fake))
    assert fake.journal == []
    plan = await keys.rotate_many(["a"], grace=GRACE, dry_run=True)  # a dry run needs no deliver
    assert plan[0].status == "planned" and plan[0].next == "generate"


async def test_the_ping_verifier_works_in_classic_mode_too(world: World) -> None:
    fake, client, _ = world
    fake.ping_delay = 30
    single = await client.access_keys.rotate("a", name="c1", verify=client.ping_verifier())
    assert single.status == "rotated" and single.steps == ("generated", "verified", "retired")
    many = await client.access_keys.rotate_many(["b"], name="c1", verify=client.ping_verifier())
    assert many[0].status == "rotated"
    assert names(fake, "b") == [("prod", False), ("c1", True)]  # classic: no labels


@pytest.mark.parametrize("lifecycle", [False, True], ids=["classic", "lifecycle"])
@pytest.mark.parametrize("how", ["break", "cancel"])
async def test_a_caller_that_stops_early_gets_every_touched_key_back(
    how: str, lifecycle: bool
) -> None:
    """``rotate_iter`` stopped after its first result (aclose) or cancelled mid-run: the
    environments in flight may have been touched; rerunning with the same name yields every
    touched environment's key and secret and makes no second key."""
    envs = [f"e{n}" for n in range(10)]
    fake = FakeProvisioningServer(
        sub_accounts=envs, faults=Faults(rate=1.0, kinds=("delay",), delay=0.01)
    )
    consumer = Consumer(fake)
    extra: dict[str, Any] = {"deliver": consumer, "grace": GRACE} if lifecycle else {}
    async with fake, fake.client() as client:
        stream = client.access_keys.rotate_iter(envs, name="stop", concurrency=3, **extra)
        if how == "break":
            async with contextlib.aclosing(stream):
                async for _ in stream:
                    break
        else:

            async def consume() -> None:
                async for _ in stream:
                    pass

            runner = asyncio.create_task(consume())
            while fake.keys_created < 2:
                await asyncio.sleep(0.002)
            runner.cancel()  # the consumer is cancelled mid-run
            with pytest.raises(asyncio.CancelledError):
                await runner
        touched = {s for s in envs if any(k.name.startswith("stop") for k in fake.keys(s))}
        assert 1 <= len(touched) < len(envs)
        again = await client.access_keys.rotate_many(envs, name="stop", **extra)
    for result in again:
        (ours,) = [k for k in fake.keys(result.sub_account_id) if k.name.startswith("stop")]
        assert result.new_key is not None and result.new_key.api_key == ours.api_key
        assert result.new_key.api_secret == ours.api_secret
    assert fake.keys_created == len(envs)


async def test_ids_are_looked_up_a_hundred_at_a_time_and_an_unknown_one_fails(
    world: World,
) -> None:
    fake, client, _ = world
    for n in range(150):
        fake.add_sub_account(f"x{n:03d}")
        fake.add_key(f"x{n:03d}", name="prod", created_at=T0 - 100 * DAY)
    fake.clear_journal()
    ids = [f"x{n:03d}" for n in range(150)] + ["nope"]
    consumer = Consumer(fake)
    results = await client.access_keys.rotate_many(ids, name="r", deliver=consumer, grace=GRACE)
    listings = [e for e in fake.journal if e.route == "list_product_environments"]
    assert [len(e.query_pairs) for e in listings] == [100, 51]  # "nope" went with the rest
    assert all(r.status == "handed_off" for r in results[:150])
    assert results[150].status == "failed" and "not in the account's listing" in str(
        results[150].error
    )
    assert len(consumer.held) == 150
