"""``client.access_keys.audit``: every lifecycle state judged by ``decide``, what the key cache
saves (asserted on the fake server's journal), and that corruption, an outage or a refresh
change the cost, never the rows."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks.servers import redis_server as redis_url_server
from cldprov_async import AuditReport, AuditRow, CldProvisioning, RetryConfig
from cldprov_async.testing import FakeProvisioningServer

DAY = 86400.0
GRACE = timedelta(days=7)
PRUNE = timedelta(days=30)
#: environment -> its keys: (name, age in days, enabled, dedicated for webhooks)
ARRANGED: dict[str, list[tuple[str, float, bool, bool]]] = {
    "env-current": [("by-hand", 10, True, False)],
    "env-due": [("old", 120, True, True)],
    "env-pending": [("old", 120, True, False), ("r1@pending", 0.5, True, False)],
    "env-overdue": [("old", 120, True, False), ("r1@pending", 3, True, False)],
    "env-grace": [("old", 120, True, False), ("r1@current", 2, True, False)],
    "env-retire": [("old", 120, True, False), ("r1@current", 10, True, False)],
    "env-prune": [("r1@current", 10, True, False), ("old@retired", 100, False, False)],
    "env-none": [("off", 5, False, False)],
}
STATES = {
    "env-current": "current",
    "env-due": "due",
    "env-pending": "hand-off pending",
    "env-overdue": "hand-off pending",
    "env-grace": "in grace",
    "env-retire": "retire due",
    "env-prune": "prune due",
    "env-none": "no enabled key",
}


def arrange(fake: FakeProvisioningServer, now: float) -> None:
    for sub, keys in ARRANGED.items():
        fake.add_sub_account(sub, name=sub.replace("env-", "Prod "), cloud_name=f"c-{sub}")
        for name, age, enabled, webhooks in keys:
            fake.add_key(
                sub, name=name, enabled=enabled, dedicated=webhooks, created_at=now - age * DAY
            )


@pytest.fixture
async def fake() -> AsyncIterator[FakeProvisioningServer]:
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0)
    arrange(server, time.time())
    async with server:
        yield server


def requests(fake: FakeProvisioningServer) -> list[str]:
    """What the server received since the journal was last cleared, then clear it."""
    got = [f"{e.method} {e.path.rsplit('/', 2)[-2]}" for e in fake.journal]
    fake.clear_journal()
    return sorted(got)


LISTING = "GET fake-account"  # .../accounts/fake-account/sub_accounts: the listing


def states(report: AuditReport) -> dict[str, str]:
    return {r.sub_account_id: r.state_text.split(" until ")[0] for r in report.rows}


async def audit(client: CldProvisioning, **kw: object) -> AuditReport:
    return await client.access_keys.audit(grace=GRACE, prune_after=PRUNE, **kw)  # type: ignore[arg-type]


async def test_every_state_and_the_facts_of_a_row(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        report = await audit(client)
    assert states(report) == STATES
    rows = {r.sub_account_id: r for r in report.rows}
    assert [r.sub_account_id for r in report.rows] == list(ARRANGED)  # the listing's order
    grace = rows["env-grace"]
    created = {k.name: k.created_at for k in fake.keys("env-grace")}
    until = datetime.fromisoformat(created["r1@current"]) + GRACE
    assert grace.in_grace_until == until
    assert grace.state_text == f"in grace until {until.isoformat().replace('+00:00', 'Z')}"
    assert (grace.keys, grace.enabled_keys) == (2, 2)
    assert grace.oldest_enabled_age is not None and grace.oldest_enabled_age > timedelta(days=119)
    assert grace.newest_enabled_age is not None and grace.newest_enabled_age < timedelta(days=3)
    assert rows["env-due"].webhooks_key == fake.keys("env-due")[0].api_key
    assert (rows["env-current"].cloud_name, rows["env-current"].name) == (
        "c-env-current",
        "Prod current",
    )
    assert rows["env-pending"].pending_since is not None
    assert rows["env-none"].newest_enabled_age is None and rows["env-none"].keys == 1
    summary = report.summary
    assert summary.states == {
        "current": 1,
        "due": 1,
        "hand-off pending": 2,
        "in grace": 1,
        "retire due": 1,
        "prune due": 1,
        "no enabled key": 1,
    }
    assert dict(summary.newest_ages) == {
        "< 7d": 3,  # the two pending keys (0.5d, 3d) and the one in grace (2d)
        "7-30d": 3,
        "30-60d": 0,
        "60-90d": 0,
        "90-180d": 1,
        "180d-1y": 0,
        ">= 1y": 0,
    }
    assert (summary.environments, summary.failed, summary.listings) == (8, 0, 1)
    assert (summary.key_listings, summary.from_cache) == (8, 0)


async def test_monitoring_verdicts(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        report = await audit(client)
    flagged = {r.sub_account_id: why for r, why in report.needs_attention(timedelta(days=100))}
    assert flagged == {
        "env-due": "newest enabled key is 120d old",
        "env-overdue": "hand-off pending for 3d",
        "env-none": "no enabled key",
    }


async def test_a_warm_cache_costs_the_listing_plus_pending_hand_offs(
    fake: FakeProvisioningServer,
) -> None:
    async with fake.client() as client:
        first = await audit(client)
        assert requests(fake) == sorted([LISTING, *(f"GET {sub}" for sub in ARRANGED)])
        second = await audit(client)
        # A pending hand-off renames a key without flipping a flag: listed on every run.
        assert requests(fake) == sorted([LISTING, "GET env-overdue", "GET env-pending"])
    assert states(second) == states(first)
    cached = {r.sub_account_id for r in second.rows if r.from_cache}
    assert cached == set(ARRANGED) - {"env-pending", "env-overdue"}
    assert second.summary.from_cache == 6 and second.summary.key_listings == 2


async def test_changes_behind_our_back_are_listed_and_only_they(
    fake: FakeProvisioningServer,
) -> None:
    async with fake.client() as client:
        await audit(client)
        fake.add_key("env-current", name="added-by-hand")  # a new key id
        [due] = fake.keys("env-due")
        await client.access_keys.update("env-due", due.api_key, {"enabled": False})  # a flag
        requests(fake)
        report = await audit(client)
        listed = requests(fake)
    changed = ("env-current", "env-due", "env-overdue", "env-pending")
    assert listed == sorted([LISTING, *(f"GET {sub}" for sub in changed)])
    rows = {r.sub_account_id: r for r in report.rows}
    assert rows["env-current"].keys == 2
    assert rows["env-due"].state == "no enabled key"


async def test_refresh_and_expiry_list_everything(fake: FakeProvisioningServer) -> None:
    async with fake.client() as client:
        await audit(client)
        [key] = fake.keys("env-current")
        await client.access_keys.update("env-current", key.api_key, {"name": "r9@current"})
        requests(fake)
        stale = await audit(client)  # a rename the listing cannot show: still the cache's
        assert requests(fake) == sorted([LISTING, "GET env-overdue", "GET env-pending"])
        fresh = await audit(client, refresh=True)
        assert len(requests(fake)) == 1 + len(ARRANGED)
        later = await audit(client, now=datetime.now(UTC) + timedelta(days=8))
        assert len(requests(fake)) == 1 + len(ARRANGED)  # every entry expired
    assert [r.state for r in stale.rows] == [r.state for r in fresh.rows]
    assert later.summary.from_cache == 0


async def test_a_corrupt_cache_changes_the_cost_not_the_rows(
    fake: FakeProvisioningServer, caplog: pytest.LogCaptureFixture
) -> None:
    async with fake.client() as client:
        first = await audit(client)
        assert client.key_cache is not None
        tear(client.key_cache.where)
        requests(fake)
        with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
            again = await audit(client)
        assert len(requests(fake)) == 1 + len(ARRANGED)
        assert len(caplog.records) == 1
        await audit(client)  # rebuilt: cheap again
        assert len(requests(fake)) == 3
    assert states(again) == states(first)


def tear(path: str) -> None:
    Path(path).write_text("{ torn")


async def test_redis_as_the_store_and_redis_down(
    fake: FakeProvisioningServer, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_url_server() as url:
        async with fake.client(rate_limit_url=url) as client:
            first = await audit(client)
            requests(fake)
            second = await audit(client)
            assert len(requests(fake)) == 3
    assert states(second) == states(first)
    # The same Redis gone: the gate falls back, and the cache costs listings.
    async with fake.client(rate_limit_url=url) as client:
        with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
            down = await audit(client)
    assert states(down) == states(first)
    assert len(requests(fake)) == 1 + len(ARRANGED)
    assert len([r for r in caplog.records if r.name == "cldprov_async.keycache"]) == 1


async def test_only_reads_no_secret_and_two_at_once(fake: FakeProvisioningServer) -> None:
    async with fake.client() as a, fake.client() as b:
        one, two = await asyncio.gather(audit(a), audit(b))
    assert {e.method for e in fake.journal} == {"GET"}
    assert states(one) == states(two) == STATES
    text = repr(one) + repr(two)
    secrets = [k.api_secret for sub in ARRANGED for k in fake.keys(sub)]
    assert not any(s in text for s in secrets)


async def test_selection_by_ids_prefix_and_enabled_only(fake: FakeProvisioningServer) -> None:
    fake.add_sub_account("env-off", name="Prod off", enabled=False)
    async with fake.client() as client:
        picked = await audit(client, sub_account_ids=["env-due", "env-none", "nope"])
        narrowed = await audit(client, sub_account_ids=["env-due", "env-off"], prefix="PROD D")
        prefix = await audit(client, prefix="prod r")
        enabled = await audit(client, enabled_only=True)
    assert [(r.sub_account_id, r.state) for r in picked.rows] == [
        ("env-due", "due"),
        ("env-none", "no enabled key"),
        ("nope", None),
    ]
    assert picked.rows[2].error == "not in the account's product-environment listing"
    assert picked.summary.failed == 1
    assert [r.sub_account_id for r in narrowed.rows] == ["env-due"]
    assert [r.sub_account_id for r in prefix.rows] == ["env-retire"]
    assert "env-off" not in {r.sub_account_id for r in enabled.rows}


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sub_account_ids": "env-1"}, TypeError, "sub_account_ids must be an iterable"),
        ({"sub_account_ids": ["a", "a"]}, ValueError, "must not repeat"),
        ({"older_than": 90}, TypeError, "older_than must be a timedelta"),
        ({"grace": timedelta(days=-1)}, ValueError, "grace must be >= 0"),
        ({"prefix": 3}, TypeError, "prefix must be a str"),
        ({"refresh": "yes"}, TypeError, "refresh must be a bool"),
        ({"concurrency": 0}, ValueError, "concurrency must be a positive int"),
        ({"now": datetime(2026, 1, 1)}, TypeError, "now must be a timezone-aware"),
        ({"on_row": 5}, TypeError, "on_row must be a callable"),
    ],
)
async def test_bad_arguments_are_named_before_anything_is_sent(
    fake: FakeProvisioningServer, kwargs: dict[str, object], error: type, match: str
) -> None:
    async with fake.client() as client:
        with pytest.raises(error, match=match):
            await client.access_keys.audit(**kwargs)  # type: ignore[arg-type]
    assert fake.journal == []


async def test_a_failed_key_listing_is_a_row_with_its_error(
    fake: FakeProvisioningServer,
) -> None:
    fake.inject("500", route="list")  # the first key listing fails; the others answer
    async with fake.client() as client:
        report = await audit(client, retries=RetryConfig(max_attempts=1), concurrency=1)
    [failed] = [r for r in report.rows if r.error is not None]
    assert failed.state is None and "500" in str(failed.error)
    assert report.summary.failed == 1 and len(report.rows) == len(ARRANGED)
    assert failed.attention(timedelta(days=1), report.now) == f"not audited: {failed.error}"


async def test_rows_stream_as_they_are_ready(fake: FakeProvisioningServer) -> None:
    seen: list[str] = []

    async def on_row(row: AuditRow) -> None:
        seen.append(row.sub_account_id)

    async with fake.client() as client:
        report = await audit(client, on_row=on_row)
    assert sorted(seen) == sorted(ARRANGED)
    assert len(report.rows) == len(seen)
