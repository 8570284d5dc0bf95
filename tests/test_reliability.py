"""Faults, soak, transport policy and secrets: what docs/guides/security.md promises.

Sizes are small by default so CI stays quick; raise them with CLDPROV_CHAOS_OPS and
CLDPROV_SOAK_CALLS (that page quotes runs at 10,000 and 50,000).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import logging
import os
import random
import time
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable

import aiohttp
import pytest
import virtual_time
from aiohttp import web

import cldprov_async
from cldprov_async import CldProvisioning, RetryConfig, Security
from cldprov_async.testing import FAULT_KINDS, FakeProvisioningServer, Faults, RateLimitPolicy

CHAOS_OPS = int(os.environ.get("CLDPROV_CHAOS_OPS", "2000"))
SOAK_CALLS = int(os.environ.get("CLDPROV_SOAK_CALLS", "4000"))
PROV_SECRET = "prov-SECRET-0123456789"
RETRY = RetryConfig(max_attempts=6, max_wait=30.0, backoff_initial=0.005, backoff_max=0.1)
ALL_FAULTS = FAULT_KINDS


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


async def _mixed_op(client: CldProvisioning, sub: str, n: int, rng: random.Random) -> str:
    """One random operation; returns its name for the tally."""
    keys = client.access_keys
    choice = rng.random()
    if choice < 0.35:
        await keys.list({"sub_account_id": sub})
        return "list"
    if choice < 0.6:
        await keys.generate(sub, {"name": f"chaos-{n}", "enabled": True})
        return "generate"
    listing = await keys.list({"sub_account_id": sub})
    victims = [k for k in listing.access_keys if k.name.startswith("chaos-")]
    if not victims:
        return "list"
    victim = rng.choice(victims)
    if choice < 0.8:
        await keys.update(sub, victim.api_key, {"enabled": rng.random() < 0.5})
        return "update"
    if choice < 0.9:
        await keys.delete_by_name(sub, victim.name)
        return "delete_by_name"
    await keys.delete(sub, victim.api_key)
    return "delete"


@pytest.mark.slow
@virtual_time.on_virtual_time
async def test_chaos_mixed_operations_under_faults_and_a_rate_limit() -> None:
    """On virtual time (the server's rate-limit windows, its delay faults and the client's
    backoffs move with the loop): the faults and the windows are the point, not the waiting."""
    clock = virtual_time.clock()
    subs = [f"env-{i}" for i in range(8)]
    faults = Faults(rate=0.12, kinds=ALL_FAULTS, delay=0.02)
    rng = random.Random(11)
    tally: Counter[str] = Counter()
    examples: dict[str, str] = {}
    async with FakeProvisioningServer(
        sub_accounts=subs,
        faults=faults,
        seed=5,
        rate_limit=RateLimitPolicy(limit=400, window=1.0, status=429, retry_after="seconds"),
        keep_journal=False,
        clock=clock,
    ) as server:
        client = server.client(retry_config=RETRY, clock=clock)
        gate = asyncio.Semaphore(64)

        async def one(n: int) -> None:
            async with gate:
                try:
                    tally[await _mixed_op(client, subs[n % len(subs)], n, rng)] += 1
                except cldprov_async.CldProvisioningError as exc:
                    tally[type(exc).__name__] += 1  # anything else fails the test
                    examples.setdefault(type(exc).__name__, str(exc))

        started = time.monotonic()
        await asyncio.wait_for(asyncio.gather(*(one(n) for n in range(CHAOS_OPS))), 300)
        elapsed = time.monotonic() - started  # real seconds
        session = client._session._owned
        assert session is not None and session.connector is not None
        in_use = len(session.connector._acquired)
        await client.close()
        created = server.keys_created
        names = [k.name for sub in subs for k in server.keys(sub) if k.name.startswith("chaos-")]
        stats = server.stats
    print(f"\nchaos: {CHAOS_OPS} ops in {elapsed:.1f}s, {tally}, server {stats}, {examples}")
    assert in_use == 0  # no connection left checked out
    assert len(names) == len(set(names))  # no duplicate key from any retry
    assert sum(stats.faults.values()) >= CHAOS_OPS * 0.05  # the faults really happened
    assert created >= tally["generate"]  # every generate that returned made its key
    # 404s and 409s come from races this test makes (two operations on one key, or a DELETE
    # re-sent after its first answer was dropped); anything else left after retries is rare.
    races = {"NotFoundError", "ConflictError"}
    failed = sum(v for k, v in tally.items() if k.endswith("Error") and k not in races)
    assert failed < CHAOS_OPS * 0.01
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert others == []


@pytest.mark.slow
async def test_soak_memory_and_descriptors_stay_flat() -> None:
    async with FakeProvisioningServer(sub_accounts=["s"], keep_journal=False) as server:
        async with server.client() as client:
            key = server.keys("s")[0].api_key

            async def batch(n: int) -> None:
                """Sixteen workers sharing n calls, so no pile of finished tasks is measured."""
                todo = iter(range(n))

                async def worker() -> None:
                    for i in todo:
                        if i % 2:
                            await client.access_keys.list({"sub_account_id": "s"})
                        else:
                            await client.access_keys.update("s", key, {"enabled": True})

                await asyncio.gather(*(worker() for _ in range(16)))
                await asyncio.sleep(0)  # let the loop drop the handle that woke us

            await batch(1000)  # warm up pools, caches and the allocator
            gc.collect()
            rss0, fds0 = _rss_kib(), _open_fds()
            await batch(SOAK_CALLS)
            gc.collect()
            rss1, fds1 = _rss_kib(), _open_fds()
    print(f"\nsoak: {SOAK_CALLS} calls, RSS {rss0} -> {rss1} KiB, fds {fds0} -> {fds1}")
    assert rss1 - rss0 < 8 * 1024
    assert fds1 - fds0 <= 2


async def test_close_releases_the_connector() -> None:
    async with FakeProvisioningServer() as server:
        client = server.client()
        await client.access_keys.list({"sub_account_id": "sub-1"})
        session = client._session._owned
        assert session is not None and session.connector is not None
        connector = session.connector
        await client.close()
        assert connector.closed and session.closed
        with pytest.raises(RuntimeError, match="closed"):
            await client.access_keys.list({"sub_account_id": "sub-1"})


async def test_a_forgotten_client_warns_clearly_and_only_once() -> None:
    async with FakeProvisioningServer() as server:
        client = server.client()
        await client.access_keys.list({"sub_account_id": "sub-1"})
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del client
            gc.collect()
            await asyncio.sleep(0)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1, messages
    assert "never closed" in messages[0] and "async with" in messages[0]
    assert not any("Unclosed" in m for m in messages)


@virtual_time.on_virtual_time
async def test_cancelling_mid_call_leaves_nothing_open() -> None:
    """On virtual time: the call is cancelled 0.2 s into a 1 s delay fault, without waiting."""
    async with FakeProvisioningServer(faults=Faults(rate=1.0, kinds=("delay",), delay=1.0)) as srv:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            async with srv.client() as client:
                task = asyncio.create_task(client.access_keys.list({"sub_account_id": "sub-1"}))
                await asyncio.sleep(0.2)
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                session = client._session._owned
                assert session is not None and session.connector is not None
                assert len(session.connector._acquired) == 0
            gc.collect()
    assert [str(w.message) for w in caught if "nclosed" in str(w.message)] == []


# -- transport policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["http://api.cloudinary.com", "http://10.0.0.1:8080", "ftp://127.0.0.1", "api.local"]
)
def test_plain_http_is_refused_except_to_loopback(url: str) -> None:
    security = Security(provisioning_api_key="k", provisioning_api_secret=PROV_SECRET)
    with pytest.raises(ValueError, match="server_url"):
        CldProvisioning(account_id="a", security=security, server_url=url)


async def _serve(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


def _client(url: str, **kwargs: object) -> CldProvisioning:
    security = Security(provisioning_api_key="k", provisioning_api_secret=PROV_SECRET)
    return CldProvisioning(account_id="a", security=security, server_url=url, **kwargs)  # type: ignore[arg-type]


async def test_redirects_are_not_followed_so_credentials_stay_home() -> None:
    elsewhere: list[str] = []

    async def target(request: web.Request) -> web.StreamResponse:
        elsewhere.append(request.headers.get("Authorization", ""))
        return web.json_response({"access_keys": [], "total": 0})

    runner2, url2 = await _serve(target)

    async def redirect(request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound(url2 + request.path)

    runner1, url1 = await _serve(redirect)
    try:
        async with _client(url1) as client:
            with pytest.raises(cldprov_async.APIError) as caught:
                await client.access_keys.list({"sub_account_id": "s"})
    finally:
        await runner1.cleanup()
        await runner2.cleanup()
    assert caught.value.status_code == 302
    assert elsewhere == []


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_oversized_response_is_refused_without_reading_it_whole(chunked: bool) -> None:
    sent = {"bytes": 0}

    async def huge(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        if not chunked:
            resp.content_length = 50 * 1024 * 1024
        await resp.prepare(request)
        chunk = b" " * 65536
        try:
            for _ in range(800):
                await resp.write(chunk)
                sent["bytes"] += len(chunk)
        except (ConnectionError, aiohttp.ClientError):
            pass
        return resp

    runner, url = await _serve(huge)
    try:
        async with _client(url, max_response_bytes=256 * 1024) as client:
            with pytest.raises(cldprov_async.ResponseTooLargeError):
                await client.access_keys.list({"sub_account_id": "s"})
    finally:
        await runner.cleanup()
    assert sent["bytes"] < 50 * 1024 * 1024  # it stopped reading long before the end


# -- secrets ---------------------------------------------------------------------------------------


async def test_secrets_never_reach_logs_reprs_or_error_messages(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    faults = Faults(rate=0.3, kinds=("503", "drop_after", "truncated", "html"), delay=0.0)
    texts: list[str] = []
    async with FakeProvisioningServer(
        api_secret=PROV_SECRET, faults=faults, seed=3, keys_per_sub_account=2
    ) as server:
        client = server.client(retry_config=RETRY)
        texts.append(repr(client))
        texts.append(str(client))
        keys = client.access_keys
        results: list[object] = []
        for i in range(30):
            for call in (
                keys.generate("sub-1", {"name": f"s{i}"}),
                keys.list({"sub_account_id": "sub-1"}),
                keys.generate("sub-1", {"name": f"s{i}"}),  # a 409
                keys.generate("nope", {"name": "x"}),  # a 404
            ):
                try:
                    results.append(await call)
                except cldprov_async.CldProvisioningError as exc:
                    results.append(exc)
        results.append(await keys.rotate("sub-1", retire="delete"))
        results.append(await keys.rotate("sub-1", verify=_refuse))
        await client.close()
        bad = _client(server.url)
        with pytest.raises(cldprov_async.AuthenticationError) as caught:
            await bad.access_keys.list({"sub_account_id": "sub-1"})
        results.append(caught.value)
        await bad.close()
        api_secrets = {
            k.api_secret for j in server.journal if j.body is None for k in server.keys("sub-1")
        }
    secrets = {PROV_SECRET, base64.b64encode(f"fake-key:{PROV_SECRET}".encode()).decode()}
    secrets |= api_secrets
    for result in results:
        texts += [repr(result), str(result)]
        if isinstance(result, BaseException) and result.__cause__ is not None:
            texts += [repr(result.__cause__), str(result.__cause__)]
    texts.append(repr(Security(provisioning_api_key="k", provisioning_api_secret=PROV_SECRET)))
    texts += [r.getMessage() for r in caplog.records]
    texts.append(caplog.text)
    assert any(isinstance(r, cldprov_async.CldProvisioningError) for r in results)
    joined = "\n".join(texts)
    for secret in secrets:
        assert secret not in joined
    assert "Basic " not in joined


async def _refuse(key: cldprov_async.AccessKey) -> bool:
    return False
