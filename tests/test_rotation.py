"""Rotation against the fake server, faults included: assert on the keys the server holds."""

from __future__ import annotations

import asyncio

import pytest
import virtual_time

import cldprov_async
from cldprov_async import AccessKey, RetryConfig, RotationResult
from cldprov_async.testing import FakeKey, FakeProvisioningServer, Faults, RateLimitPolicy

FAST = RetryConfig(max_attempts=8, max_wait=30.0, backoff_initial=0.01, backoff_max=0.05)
SUBS = [f"env-{i:02d}" for i in range(20)]


def enabled(keys: list[FakeKey]) -> list[FakeKey]:
    return [k for k in keys if k.enabled]


def check_rotated(server: FakeProvisioningServer, result: RotationResult, retire: str) -> None:
    """The invariants of a finished rotation, read from the server's state."""
    assert result.ok, result.error
    assert result.new_key is not None
    keys = server.keys(result.sub_account_id)
    new = [k for k in keys if k.api_key == result.new_key.api_key]
    assert len(new) == 1 and new[0].enabled
    assert new[0].api_secret == result.new_key.api_secret
    others = [k for k in keys if k.api_key != result.new_key.api_key]
    if retire == "disable":
        assert not enabled(others)
    elif retire == "delete":
        assert others == []
    else:
        assert all(k.enabled for k in others)


async def test_rotate_disables_old_keys_and_moves_dedication() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=2) as server:
        old = server.keys("sub-1")
        async with server.client() as client:
            first = old[0].api_key
            await client.access_keys.update("sub-1", first, {"dedicated_for": "webhooks"})
            result = await client.access_keys.rotate("sub-1", name="new-key")
    check_rotated(server, result, "disable")
    assert result.new_key is not None
    assert result.new_key.name == "new-key"
    assert result.new_key.api_secret
    assert {k.api_key for k in result.retired} == {k.api_key for k in old}
    held = {k.api_key: k for k in server.keys("sub-1")}
    assert held[result.new_key.api_key].dedicated_for == ("webhooks",)
    assert held[first].dedicated_for == ()
    assert "api_secret" not in repr(result)


@pytest.mark.parametrize("retire", ["disable", "delete", "keep"])
async def test_retire_modes(retire: str) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=3) as server:
        async with server.client() as client:
            result = await client.access_keys.rotate("sub-1", retire=retire)  # type: ignore[arg-type]
    check_rotated(server, result, retire)
    assert len(result.retired) == (0 if retire == "keep" else 3)
    assert len(server.keys("sub-1")) == (1 if retire == "delete" else 4)


@pytest.mark.slow
@virtual_time.on_virtual_time
async def test_rotate_many_with_faults_and_a_rate_limit() -> None:
    faults = Faults(
        rate=0.15,
        kinds=("500", "502", "503", "504", "drop_before", "drop_after", "html", "truncated"),
        routes={"generate": 0.3},
    )
    async with FakeProvisioningServer(
        sub_accounts=SUBS,
        keys_per_sub_account=2,
        rate_limit=RateLimitPolicy(limit=30, window=1.0),
        faults=faults,
        seed=7,
        clock=virtual_time.clock(),
    ) as server:
        for sub in SUBS[::3]:
            server.add_key(sub, name="hooks", dedicated=True)
        progress: list[tuple[int, int, str]] = []

        def on_progress(done: int, total: int, result: RotationResult) -> None:
            progress.append((done, total, result.sub_account_id))

        async with server.client(retry_config=FAST, clock=server.clock) as client:
            results = await client.access_keys.rotate_many(
                SUBS, concurrency=8, on_progress=on_progress, name="run-1", retire="disable"
            )
        faulted = sum(server.stats.faults.values())
    assert faulted > 0
    assert [r.sub_account_id for r in results] == SUBS
    for result in results:
        check_rotated(server, result, "disable")
        assert result.new_key is not None and result.new_key.name == "run-1"
        names = [k.name for k in server.keys(result.sub_account_id)]
        assert names.count("run-1") == 1
    assert server.keys_created == len(SUBS)  # no duplicate from any retried generate
    for sub in SUBS[::3]:
        dedicated = [k for k in server.keys(sub) if k.dedicated_for]
        assert [k.name for k in dedicated] == ["run-1"]
    assert [p[0] for p in progress] == list(range(1, len(SUBS) + 1))
    assert {p[2] for p in progress} == set(SUBS)
    assert all(p[1] == len(SUBS) for p in progress)


async def test_second_run_with_the_same_name_creates_nothing() -> None:
    async with FakeProvisioningServer(sub_accounts=SUBS[:5], keys_per_sub_account=1) as server:
        async with server.client() as client:
            first = await client.access_keys.rotate_many(SUBS[:5], name="again")
            created = server.keys_created
            server.clear_journal()
            second = await client.access_keys.rotate_many(SUBS[:5], name="again")
    assert created == 5
    assert server.keys_created == 5
    assert not [e for e in server.journal if e.method == "POST"]
    for a, b in zip(first, second, strict=True):
        assert b.ok and a.new_key is not None and b.new_key is not None
        assert a.new_key.api_key == b.new_key.api_key
        assert b.new_key.api_secret == a.new_key.api_secret  # list returns secrets


async def test_a_half_done_rotation_is_finished_by_a_rerun() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=2) as server:
        old = {k.api_key for k in server.keys("sub-1")}
        server.inject("503", route="update", count=1)
        once = RetryConfig(max_attempts=1)
        async with server.client() as client:
            broken = await client.access_keys.rotate("sub-1", name="half", retries=once)
            assert not broken.ok
            assert isinstance(broken.error, cldprov_async.APIError)
            assert broken.new_key is not None and broken.new_key.api_secret  # not lost
            assert len(enabled(server.keys("sub-1"))) == 3  # nothing retired yet
            fixed = await client.access_keys.rotate("sub-1", name="half")
    check_rotated(server, fixed, "disable")
    assert fixed.new_key is not None
    assert fixed.new_key.api_key == broken.new_key.api_key
    assert {k.api_key for k in fixed.retired} == old
    assert server.keys_created == 1


async def test_unknown_sub_account_fails_alone() -> None:
    subs = ["sub-1", "nope", "sub-2"]
    async with FakeProvisioningServer(sub_accounts=["sub-1", "sub-2"]) as server:
        async with server.client() as client:
            results = await client.access_keys.rotate_many(subs)
    assert [r.sub_account_id for r in results] == subs
    assert isinstance(results[1].error, cldprov_async.NotFoundError)
    assert not results[1].ok and results[1].new_key is None
    check_rotated(server, results[0], "disable")
    check_rotated(server, results[2], "disable")


async def test_failing_verify_retires_nothing_and_keeps_the_secret() -> None:
    async def verify(key: AccessKey) -> bool:
        assert key.api_secret
        raise RuntimeError("the new key does not work here")

    async with FakeProvisioningServer(keys_per_sub_account=2) as server:
        async with server.client() as client:
            result = await client.access_keys.rotate("sub-1", verify=verify, retire="delete")
    assert isinstance(result.error, cldprov_async.VerificationError)
    assert result.retired == ()
    assert result.new_key is not None and result.new_key.api_secret
    assert len(server.keys("sub-1")) == 3
    assert len(enabled(server.keys("sub-1"))) == 3


async def test_verify_returning_false_also_stops_the_rotation() -> None:
    async def verify(key: AccessKey) -> bool:
        return False

    async with FakeProvisioningServer(keys_per_sub_account=1) as server:
        async with server.client() as client:
            result = await client.access_keys.rotate("sub-1", verify=verify)
    assert isinstance(result.error, cldprov_async.VerificationError)
    assert len(enabled(server.keys("sub-1"))) == 2


async def test_verify_sees_the_new_key_before_anything_is_retired() -> None:
    seen: list[int] = []

    async with FakeProvisioningServer(keys_per_sub_account=2) as server:

        async def verify(key: AccessKey) -> bool:
            seen.append(len(enabled(server.keys("sub-1"))))
            return True

        async with server.client() as client:
            result = await client.access_keys.rotate("sub-1", verify=verify)
    assert seen == [3]
    check_rotated(server, result, "disable")


async def test_default_names_are_unique_per_run() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=1) as server:
        async with server.client() as client:
            a, b = await asyncio.gather(
                client.access_keys.rotate("sub-1", retire="keep"),
                client.access_keys.rotate("sub-1", retire="keep"),
            )
    assert a.new_key is not None and b.new_key is not None
    assert a.new_key.name != b.new_key.name
    assert a.new_key.name.startswith("rotated-")


@pytest.mark.slow
@virtual_time.on_virtual_time
async def test_rotate_many_waits_for_the_window_instead_of_failing() -> None:
    subs = [f"w-{i}" for i in range(12)]
    async with FakeProvisioningServer(
        sub_accounts=subs,
        keys_per_sub_account=1,
        rate_limit=RateLimitPolicy(limit=10, window=1.0),
        clock=virtual_time.clock(),
    ) as server:
        async with server.client(clock=server.clock) as client:
            results = await client.access_keys.rotate_many(subs, concurrency=12)
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert server.stats.rate_limited <= 10
    assert server.stats.received >= 36  # list + generate + disable, twelve times


async def test_iter_keys_walks_every_page() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        for i in range(25):
            server.add_key("sub-1", name=f"k{i:02d}")
        async with server.client() as client:
            names = [
                k.name
                async for k in client.access_keys.iter_keys(
                    "sub-1", page_size=10, sort_by="name", sort_order="asc"
                )
            ]
    assert names == [f"k{i:02d}" for i in range(25)]
    pages = [e.query.get("page") for e in server.journal]
    assert pages == ["1", "2", "3"]


async def test_bad_rotation_arguments_send_nothing() -> None:
    async with FakeProvisioningServer() as server:
        async with server.client() as client:
            with pytest.raises(ValueError, match="retire"):
                await client.access_keys.rotate("sub-1", retire="burn")  # type: ignore[arg-type]
            with pytest.raises(ValueError, match="concurrency"):
                await client.access_keys.rotate_many(["sub-1"], concurrency=0)
            with pytest.raises(ValueError, match="sub_account_ids"):
                await client.access_keys.rotate_many(["sub-1", "sub-1"])
            with pytest.raises(ValueError, match="page_size"):
                client.access_keys.iter_keys("sub-1", page_size=0)
            with pytest.raises(TypeError, match="sub_account_id"):
                await client.access_keys.rotate(42)  # type: ignore[arg-type]
    assert server.journal == []
