"""rotate_iter / rotate_many at account scale against the fake server: bounded and streamed,
dry runs (only GETs reach the server), the max_age policy (a second daily run rotates
nothing), and the ETA of the progress line. Assertions read the server's journal and state."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
import virtual_time

from cldprov_async import RetryConfig, RotationPlan, RotationResult
from cldprov_async._cli.progress import RunProgress, ticking
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

DAY = 86400.0


class Clock:
    """The fake server's wall clock, movable: keys it creates carry its time."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


async def collect(stream: AsyncIterator[RotationResult]) -> list[RotationResult]:
    return [r async for r in stream]


async def test_rotate_iter_takes_ids_lazily_and_keeps_few_tasks() -> None:
    subs = [f"env-{n:03d}" for n in range(60)]
    pulled = 0

    async def ids() -> AsyncIterator[str]:
        nonlocal pulled
        for sub in subs:
            pulled += 1
            yield sub

    async with FakeProvisioningServer(sub_accounts=subs) as server, server.client() as client:
        seen: list[str] = []
        most_tasks = 0
        async for result in client.access_keys.rotate_iter(ids(), concurrency=4, name="lazy"):
            assert result.status == "rotated", result.error
            seen.append(result.sub_account_id)
            ours = [t for t in asyncio.all_tasks() if t.get_coro().__qualname__ == "_one"]  # type: ignore[union-attr]
            most_tasks = max(most_tasks, len(ours))
            assert pulled <= len(seen) + 4  # never far ahead of what finished
    assert sorted(seen) == subs
    assert most_tasks <= 4
    for sub in subs:
        assert [k.name for k in server.keys(sub) if k.enabled] == ["lazy"]


async def test_a_repeated_id_from_an_async_source_fails_alone() -> None:
    async def ids() -> AsyncIterator[str]:
        for sub in ("sub-1", "sub-1"):
            yield sub

    async with FakeProvisioningServer() as server, server.client() as client:
        results = await collect(client.access_keys.rotate_iter(ids(), name="n"))
    assert sorted(r.status for r in results) == ["failed", "rotated"]
    assert server.keys_created == 1


async def test_dry_run_sends_only_gets_and_says_what_a_run_would_do() -> None:
    async with (
        FakeProvisioningServer(sub_accounts=("a", "b", "c"), keys_per_sub_account=2) as server,
        server.client() as client,
    ):
        server.add_key("a", name="hook", dedicated=True)
        server.add_key("b", name="off", enabled=False)
        server.add_key("c", name="again", enabled=False)  # an earlier, unfinished run's key
        before = {s: server.keys(s) for s in "abc"}
        results = await client.access_keys.rotate_many(["a", "b", "c"], name="again", dry_run=True)
    assert {e.method for e in server.journal} == {"GET"}
    assert len(server.journal) == 3
    assert {s: server.keys(s) for s in "abc"} == before
    a, b, c = results
    assert [r.status for r in results] == ["planned"] * 3
    assert all(r.new_key is None and r.retired == () for r in results)
    assert isinstance(a.plan, RotationPlan)
    assert a.plan.creates_key and a.plan.dedication_moves
    assert {k.name for k in a.plan.retire} == {"key-1", "key-2", "hook"}
    assert a.plan.requests == 1 + 1 + 1 + 3
    assert b.plan is not None and not b.plan.dedication_moves
    assert {k.name for k in b.plan.retire} == {"key-1", "key-2"}  # "off" is already disabled
    assert c.plan is not None and not c.plan.creates_key and c.plan.requests == 1 + 1 + 2
    assert all(r.plan is not None and r.plan.new_key_name == "again" for r in results)


async def test_max_age_rotates_only_old_keys_and_a_second_daily_run_rotates_nothing() -> None:
    clock = Clock()
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=clock)
    now = time.time()
    for sub in ("old", "fresh", "mixed", "off"):
        server.add_sub_account(sub)
    server.add_key("old", created_at=now - 100 * DAY)
    server.add_key("fresh", created_at=now - 10 * DAY)
    server.add_key("mixed", created_at=now - 200 * DAY)
    server.add_key("mixed", created_at=now - 5 * DAY)  # the newest enabled key decides
    server.add_key("mixed", created_at=now - 1 * DAY, enabled=False)
    server.add_key("off", created_at=now - 300 * DAY, enabled=False)
    subs = ["old", "fresh", "mixed", "off"]
    async with server, server.client() as client:
        clock.offset = -DAY  # the first run happens "yesterday"
        first = await client.access_keys.rotate_many(subs, max_age=timedelta(days=90))
        assert [r.status for r in first] == ["rotated", "skipped", "skipped", "skipped"]
        assert "not older than 90d" in (first[1].skipped or "")
        assert "no enabled key" in (first[3].skipped or "")
        assert [k.enabled for k in server.keys("old")] == [False, True]
        created = server.keys_created
        server.clear_journal()
        clock.offset = 0.0  # today, with the same arguments
        second = await client.access_keys.rotate_many(subs, max_age=timedelta(days=90))
    assert [r.status for r in second] == ["skipped"] * 4
    assert server.keys_created == created
    assert {e.method for e in server.journal} == {"GET"}


async def test_max_age_finishes_an_interrupted_run_of_the_same_name() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=2) as server:
        server.add_key("sub-1", name="nightly")  # created, but the old keys not yet retired
        async with server.client() as client:
            (result,) = await client.access_keys.rotate_many(
                ["sub-1"], name="nightly", max_age=timedelta(days=90)
            )
    assert result.status == "rotated" and len(result.retired) == 2
    assert [k.name for k in server.keys("sub-1") if k.enabled] == ["nightly"]


@pytest.mark.parametrize(
    ("kwargs", "error", "param"),
    [
        ({"max_age": 90}, TypeError, "max_age"),
        ({"max_age": timedelta(0)}, ValueError, "max_age"),
        ({"dry_run": "yes"}, TypeError, "dry_run"),
        ({"concurrency": 0}, ValueError, "concurrency"),
        ({"retire": "burn"}, ValueError, "retire"),
    ],
)
async def test_bad_arguments_fail_before_sending(
    kwargs: dict[str, Any], error: type[Exception], param: str
) -> None:
    async with FakeProvisioningServer() as server, server.client() as client:
        with pytest.raises(error, match=param):
            client.access_keys.rotate_iter(["sub-1"], **kwargs)
        with pytest.raises(TypeError, match="sub_account_ids"):
            client.access_keys.rotate_iter("sub-1")
    assert server.journal == []


@virtual_time.on_frozen_time
async def test_the_eta_is_within_20_percent_once_the_first_window_has_passed() -> None:
    """100 environments, 300 requests, 60 per 1-second window: five windows or more. On
    frozen virtual time, for the server, the client and the progress alike: the windows and
    the ETA are the point, and a loaded machine, too slow to fill a window on real time, had
    made the run a window longer than the budget said."""
    clock = virtual_time.clock()
    subs = [f"env-{n:02d}" for n in range(100)]
    policy = RateLimitPolicy(limit=60, window=1.0)
    retry = RetryConfig(max_wait=60.0)
    async with FakeProvisioningServer(sub_accounts=subs, keep_journal=False, clock=clock) as server:
        async with server.client(retry_config=retry, clock=clock) as client:
            server.rate_limit = policy
            progress = RunProgress(len(subs), io.StringIO(), client, concurrency=8, live=False)
            started = clock()
            samples: list[tuple[float, float | None]] = []
            async with ticking(progress):  # as the command line runs it
                async for result in client.access_keys.rotate_iter(subs, concurrency=8):
                    assert result.ok, result.error
                    progress.update(result)
                    samples.append((clock(), progress.eta()))
            ended = clock()
    real = ended - started
    assert real > 3.0  # it did span several windows
    assert 0.5 < progress.budget.waited(ended) < real  # windows were waited for, and measured
    first_window_end = started + 1.0 - started % 1.0 + 1.0  # a whole window after the first
    later = [(t, eta) for t, eta in samples if t > first_window_end and t < ended - 0.05]
    assert later
    for t, eta in later:
        assert eta is not None
        predicted = (t - started) + eta
        assert abs(predicted - real) <= 0.2 * real, (t - started, eta, real)


class FakeClient:
    """What RunProgress reads of a client: its rate-limit snapshot, reserve and counters."""

    rate_limit = None
    bulk_reserve = 0.1
    clock = staticmethod(time.time)

    class stats:  # mirrors the attribute's name
        sent = 0
        rejected = 0


def test_plain_progress_is_a_line_every_few_seconds_plus_one_per_failure() -> None:
    from cldprov_async import NotFoundError

    out = io.StringIO()
    progress = RunProgress(200, out, FakeClient(), concurrency=8, live=False)  # type: ignore[arg-type]
    for n in range(200):
        error = NotFoundError("gone", status_code=404) if n in (50, 120) else None
        progress.update(RotationResult(f"env-{n}", error=error))
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert [line for line in lines if line.startswith("failed: ")] == [
        "failed: env-50: 404 gone",
        "failed: env-120: 404 gone",
    ]
    figures = [line for line in lines if not line.startswith("failed: ")]
    assert len(figures) == 2  # the first and the last: the run took far less than 5 s
    assert figures[-1].startswith("[200/200] failed 2, skipped 0, ")
    assert "/min, waited 0s for the rate limit, ETA 0s" in figures[-1]
