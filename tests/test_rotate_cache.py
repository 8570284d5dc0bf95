"""Rotation with the key cache: an age-filtered run whose listing shows no change sends no key
listing, a rotation writes what it did (so the next run is cheap too), a failed one is
forgotten; asserted on the fake server's journal."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from cldprov_async import CldProvisioning, ProductEnvironment, RetryConfig
from cldprov_async.testing import FakeProvisioningServer

DAY = 86400.0
POLICY = timedelta(days=90)
ENVS = [f"env-{i}" for i in range(6)]
OLD = {"env-0", "env-1"}  # due: their only key is 120 days old


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvisioningServer]:
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0)
    now = time.time()
    for sub in ENVS:
        server.add_sub_account(sub)
        server.add_key(sub, name="main", created_at=now - (120 if sub in OLD else 10) * DAY)
    async with server:
        yield server


def key_listings(fake: FakeProvisioningServer) -> list[str]:
    """Environments whose keys were listed since the last call; every request was a GET."""
    got = sorted(e.path.split("/")[-2] for e in fake.journal if e.route == "list")
    fake.clear_journal()
    return got


async def listing(client: CldProvisioning) -> tuple[ProductEnvironment, ...]:
    return (await client.product_environments.list()).sub_accounts


async def test_nothing_changed_means_no_key_listing(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        envs = await listing(client)
        first = await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=envs)
        assert key_listings(fake) == ENVS  # cold: each listed, the due ones rotated
        assert sorted(r.sub_account_id for r in first if r.status == "rotated") == sorted(OLD)
        envs = await listing(client)
        second = await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=envs)
    assert [r.status for r in second] == ["skipped"] * len(ENVS)
    assert key_listings(fake) == []  # the rotated ones too: the rotation wrote its keys
    assert {e.method for e in fake.journal} <= {"GET"}


async def test_a_change_behind_our_back_is_listed(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=await listing(client))
        fake.add_key("env-3", name="by-hand", created_at=time.time() - 200 * DAY)
        key_listings(fake)
        again = await client.access_keys.rotate_many(
            ENVS, max_age=POLICY, listing=await listing(client)
        )
    assert key_listings(fake) == ["env-3"]
    assert {r.status for r in again} == {"skipped"}  # its newest enabled key is still 10d


async def test_the_cache_holds_what_the_rotation_did(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        await client.access_keys.rotate_many(
            ["env-0"], name="r1", retire="delete", listing=await listing(client)
        )
        assert client.key_cache is not None
        entry = (await client.key_cache.get(["env-0"]))["env-0"]
    server = {k.api_key: (k.name, k.enabled, k.dedicated_for) for k in fake.keys("env-0")}
    cached = {k.api_key: (k.name, k.enabled, k.dedicated_for) for k in entry.keys}
    assert cached == server
    assert [name for name, _, _ in server.values()] == ["r1"]


async def test_a_failed_rotation_is_forgotten_and_listed_next_time(
    fake: FakeProvisioningServer,
) -> None:
    async with fake.client() as client:
        envs = await listing(client)
        await client.access_keys.rotate_many(ENVS[2:], max_age=POLICY, listing=envs)
        fake.inject("500", route="update")  # retiring env-0's old key fails
        key_listings(fake)
        results = await client.access_keys.rotate_many(
            ["env-0"], max_age=POLICY, listing=envs, retries=RetryConfig(max_attempts=1)
        )
        assert results[0].status == "failed" and results[0].new_key is not None
        assert client.key_cache is not None
        assert await client.key_cache.get(["env-0"]) == {}
        key_listings(fake)
        await client.access_keys.rotate_many(
            [*ENVS[2:], "env-0"], max_age=POLICY, listing=await listing(client)
        )
    assert key_listings(fake) == ["env-0"]


async def test_refresh_lists_and_without_a_listing_nothing_is_read(
    fake: FakeProvisioningServer,
) -> None:
    async with fake.client() as client:
        envs = await listing(client)
        await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=envs)
        key_listings(fake)
        envs = await listing(client)
        await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=envs, refresh=True)
        assert key_listings(fake) == ENVS
        await client.access_keys.rotate_many(ENVS, max_age=POLICY)  # no fingerprints given
        assert key_listings(fake) == ENVS
        plans = await client.access_keys.rotate_many(
            ENVS, max_age=POLICY, listing=await listing(client), dry_run=True
        )
    assert key_listings(fake) == []
    assert [r.status for r in plans] == ["skipped"] * len(ENVS)


async def test_without_a_cache_every_run_lists(fake: FakeProvisioningServer) -> None:
    async with fake.client(key_cache=False) as client:
        for _ in range(2):
            envs = await listing(client)
            await client.access_keys.rotate_many(ENVS, max_age=POLICY, listing=envs)
            assert len(key_listings(fake)) == len(ENVS)


async def test_listing_and_refresh_are_checked(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        with pytest.raises(TypeError, match="listing must hold ProductEnvironment"):
            client.access_keys.rotate_iter(ENVS, listing=["env-0"])  # type: ignore[list-item]
        with pytest.raises(TypeError, match="refresh must be a bool"):
            client.access_keys.rotate_iter(ENVS, refresh=1)  # type: ignore[arg-type]
    assert fake.journal == []
