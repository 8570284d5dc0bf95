"""The shared budget on Redis Sentinel, through a failover: real ``redis-server`` processes (a
master, a replica, three sentinels in ``--sentinel`` mode with ``down-after`` 1 s), one
topology for the module, stopped after it even when a test fails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis.asyncio as aredis
from fleet_run import check_gap_run, fake_server, lock_and_cache, run_with_fault, two_clients

from benchmarks.redis_ha import SERVICE, Sentinels, client, wait_until
from cldprov_async._fleet import fleet_key


@pytest.fixture(scope="module")
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    with Sentinels(tmp_path_factory.mktemp("sentinel")).start() as topo:
        yield topo


async def test_a_url_and_a_callers_client_share_the_masters_budget(sentinels: Sentinels) -> None:
    hosts = [("127.0.0.1", p) for p in sentinels.sentinel_ports]
    theirs = aredis.sentinel.Sentinel(hosts, socket_timeout=1.0)  # type: ignore[no-untyped-call]
    mine = theirs.master_for(SERVICE)  # bytes replies: the gate copes
    try:
        stats, tag = await two_clients(sentinels.url(), mine)
        assert (stats.received, stats.rate_limited) == (50, 0)
        assert await mine.ping()  # the caller's client outlives ours
        key = fleet_key(tag, "state")
        master = sentinels.master_port()
        assert client(master).exists(key)
        replica = next(
            s.port for s in sentinels.servers if s.port not in (master, *sentinels.sentinel_ports)
        )
        wait_until(lambda: bool(client(replica).exists(key)), "the replica to hold the budget")
    finally:
        await mine.aclose()
        await theirs.aclose()


async def test_the_rotation_lock_and_the_key_cache_live_on_the_master(
    sentinels: Sentinels,
) -> None:
    hosts = [("127.0.0.1", p) for p in sentinels.sentinel_ports]
    theirs = aredis.sentinel.Sentinel(hosts, socket_timeout=1.0)  # type: ignore[no-untyped-call]
    mine = theirs.master_for(SERVICE)
    try:
        tag, sent = await lock_and_cache(sentinels.url(), mine)
    finally:
        await mine.aclose()
        await theirs.aclose()
    assert sent == 1  # the warm audit: the listing only, its keys from the shared cache
    master = client(sentinels.master_port())
    assert master.exists(fleet_key(tag, "keys"))
    assert not master.exists(fleet_key(tag, "rotation-lock"))  # released


def test_master_killed_under_load(sentinels: Sentinels) -> None:
    """Issue 20, item 2: 4 processes x 120 generates on 40 a second (the issue's 100, and
    two windows more so the fleet still runs when it rejoins); the master SIGKILLed mid-run
    and a replica promoted."""
    promoted: list[int] = []

    def fault() -> None:
        old = sentinels.kill_master()
        promoted.append(sentinels.wait_promoted(old))

    with fake_server() as fake:
        outs, at = run_with_fault(fake, sentinels.url(), fault, n=120)
        check_gap_run(fake, outs, at, n=120, served_by=promoted[0])
