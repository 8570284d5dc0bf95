"""The rate-limit middleware against real servers on 127.0.0.1 (aioresponses would bypass it).

Assertions are on what the server counted: requests received, rejected, keys created.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
import virtual_time
from aiohttp import web
from samples import MAIN_KEY, SECRET

import cldprov_async
from cldprov_async import CldProvisioning, RetryConfig, Security
from cldprov_async.testing import FakeProvisioningServer, ManualClock, RateLimitPolicy

FAST = RetryConfig(max_attempts=5, max_wait=10.0, backoff_initial=0.01, backoff_max=0.05)
KEY_JSON = MAIN_KEY
LIST_JSON = {"access_keys": [KEY_JSON], "total": 1}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Scripted:
    """A server that answers from a script of handlers, then with the last one, counting hits."""

    def __init__(self, *script: Handler) -> None:
        self.script = list(script)
        self.hits: list[float] = []
        self.url = ""
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits.append(time.monotonic())
        step = self.script[min(len(self.hits), len(self.script)) - 1]
        return await step(request)

    async def __aenter__(self) -> Scripted:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    def client(self, **kwargs: object) -> CldProvisioning:
        return CldProvisioning(
            account_id="acc",
            security=Security(provisioning_api_key="key", provisioning_api_secret=SECRET),
            server_url=self.url,
            **kwargs,  # type: ignore[arg-type]
        )


def answer(status: int, body: object = LIST_JSON, **headers: str) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)

    return handle


def rl_headers(limit: int, remaining: int, reset: datetime) -> dict[str, str]:
    return {
        "X-FeatureRateLimit-Limit": str(limit),
        "X-FeatureRateLimit-Remaining": str(remaining),
        "X-FeatureRateLimit-Reset": format_datetime(reset, usegmt=True),
    }


RATE_ERROR = {"error": {"message": "Rate Limit Exceeded"}}


# -- the headline figures ---------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "policy",
    [
        RateLimitPolicy(limit=40, window=1.0, status=420),
        RateLimitPolicy(limit=40, window=1.0, status=429, retry_after="seconds"),
        RateLimitPolicy(limit=40, window=1.0, status=429, retry_after="date"),
    ],
    ids=["420-reset-only", "429-retry-after-seconds", "429-retry-after-date"],
)
@virtual_time.on_virtual_time
async def test_200_concurrent_generates_fit_the_windows(policy: RateLimitPolicy) -> None:
    """Five windows and more, on virtual time (the server's clock and the client's move with
    the loop): the windows are the point, not the waiting."""
    clock = virtual_time.clock()
    server = FakeProvisioningServer(rate_limit=policy, keys_per_sub_account=0, clock=clock)
    async with server, server.client(clock=clock) as client:
        keys = await asyncio.gather(
            *(client.access_keys.generate("sub-1", {"name": f"k{i}"}) for i in range(200))
        )
    assert len({k.api_key for k in keys}) == 200
    assert all(k.api_secret for k in keys)
    assert server.keys_created == 200
    assert len(server.keys("sub-1")) == 200
    assert server.stats.rate_limited <= 40
    accepted = [e for e in server.journal if e.status == 200]
    windows = {int(e.time // policy.window) for e in accepted}
    assert len(accepted) == 200
    assert 5 <= len(windows) <= 6, f"used {len(windows)} windows"
    per_window = [sum(1 for e in accepted if int(e.time) == w) for w in windows]
    assert max(per_window) <= 40


async def test_reset_an_hour_ahead_raises_at_once_with_reset_at() -> None:
    # Half an hour into an hour-long window, for the server and the client: on the real clock
    # a run that crossed the hour found a fresh window for the fourth call.
    clock = ManualClock(time.time() // 3600 * 3600 + 1800)
    policy = RateLimitPolicy(limit=3, window=3600)
    async with FakeProvisioningServer(rate_limit=policy, clock=clock) as server:
        async with server.client(clock=clock) as client:
            for _ in range(3):
                await client.access_keys.list({"sub_account_id": "sub-1"})
            started = time.monotonic()
            with pytest.raises(cldprov_async.RateLimitedError) as caught:
                await client.access_keys.list({"sub_account_id": "sub-1"})
            elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert caught.value.reset_at is not None
    assert caught.value.reset_at > datetime.fromtimestamp(clock() + 1, UTC)
    assert client.rate_limit is not None and client.rate_limit.remaining == 0
    assert server.stats.received == 3  # the fourth was never sent to be rejected


async def test_a_420_with_reset_an_hour_ahead_is_not_slept_on() -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=0, window=3600)) as server:
        async with server.client() as client:
            started = time.monotonic()
            with pytest.raises(cldprov_async.RateLimitedError) as caught:
                await client.access_keys.generate("sub-1", {"name": "n"})
            elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert caught.value.status_code == 420
    assert caught.value.reset_at is not None
    assert server.stats.received == 1
    assert server.keys_created == 0


async def test_generate_dropped_after_commit_returns_the_one_key() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=1) as server:
        server.inject("drop_after", route="generate")
        async with server.client(retry_config=FAST) as client:
            key = await client.access_keys.generate("sub-1", {"name": "fresh"})
    held = [k for k in server.keys("sub-1") if k.name == "fresh"]
    assert len(held) == 1
    assert server.keys_created == 1
    assert key.api_key == held[0].api_key
    assert key.api_secret == held[0].api_secret


@pytest.mark.parametrize("fault", ["502", "503", "504", "500", "drop_before"])
async def test_generate_with_unknown_outcome_creates_exactly_one_key(fault: str) -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject(fault, route="generate")  # type: ignore[arg-type]
        async with server.client(retry_config=FAST) as client:
            key = await client.access_keys.generate("sub-1", {"name": "once"})
    assert server.keys_created == 1
    assert [k.api_key for k in server.keys("sub-1")] == [key.api_key]
    assert key.api_secret == server.keys("sub-1")[0].api_secret


async def test_generate_resolved_through_a_truncated_conflict() -> None:
    # The first answer is lost after the commit; the retry's 409 arrives cut in half.
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject("drop_after", route="generate")
        server.inject("truncated", route="generate")
        async with server.client(retry_config=FAST) as client:
            key = await client.access_keys.generate("sub-1", {"name": "once"})
    assert [e.status for e in server.journal if e.method == "POST"] == [None, 409]  # None: dropped
    assert server.keys_created == 1
    held = server.keys("sub-1")
    assert [(k.api_key, k.api_secret) for k in held] == [(key.api_key, key.api_secret)]


async def test_generate_out_of_attempts_still_finds_a_committed_key() -> None:
    # Every attempt's answer is lost, the first one after its commit: one last list finds it.
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject("drop_after", route="generate")
        server.inject("503", route="generate", count=10)
        async with server.client(retry_config=FAST) as client:
            key = await client.access_keys.generate("sub-1", {"name": "once"})
    posts = [e for e in server.journal if e.method == "POST"]
    assert len(posts) == FAST.max_attempts
    assert server.journal[-1].method == "GET"
    assert server.keys_created == 1
    assert key.api_secret == server.keys("sub-1")[0].api_secret


async def test_generate_out_of_attempts_with_nothing_committed_is_unknown() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject("503", route="generate", count=10)
        async with server.client(retry_config=FAST) as client:
            with pytest.raises(cldprov_async.OutcomeUnknownError) as caught:
                await client.access_keys.generate("sub-1", {"name": "once"})
    assert "no key of that name was listed" in str(caught.value)
    assert len([e for e in server.journal if e.method == "POST"]) == FAST.max_attempts
    assert server.keys_created == 0


async def test_unnamed_generate_with_unknown_outcome_says_so() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject("drop_after", route="generate")
        async with server.client(retry_config=FAST) as client:
            with pytest.raises(cldprov_async.OutcomeUnknownError) as caught:
                await client.access_keys.generate("sub-1", {"enabled": True})
    assert "outcome" in str(caught.value) or "may or may not" in str(caught.value)
    posts = [e for e in server.journal if e.method == "POST"]
    assert len(posts) == 1  # never blindly re-sent
    assert server.keys_created == 1


async def test_generate_on_a_name_taken_before_is_a_conflict_not_a_stolen_key() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.add_key("sub-1", name="taken")
        async with server.client(retry_config=FAST) as client:
            with pytest.raises(cldprov_async.ConflictError):
                await client.access_keys.generate("sub-1", {"name": "taken"})


@pytest.mark.parametrize("fault", ["500", "502", "503", "504", "drop_before", "drop_after"])
async def test_idempotent_calls_retry_5xx_and_dropped_connections(fault: str) -> None:
    async with FakeProvisioningServer() as server:
        server.inject(fault, route="list", count=2)  # type: ignore[arg-type]
        async with server.client(retry_config=FAST) as client:
            listing = await client.access_keys.list({"sub_account_id": "sub-1"})
    assert listing.total == 1
    assert [e.status for e in server.journal][-1] == 200
    assert len(server.journal) == 3
    assert client.stats.retried == 2


async def test_max_attempts_one_means_no_retry() -> None:
    async with FakeProvisioningServer() as server:
        server.inject("503", route="list", count=3)
        async with server.client() as client:
            with pytest.raises(cldprov_async.APIError) as caught:
                await client.access_keys.list(
                    {"sub_account_id": "sub-1"}, retries=RetryConfig(max_attempts=1)
                )
    assert caught.value.status_code == 503
    assert server.stats.received == 1


async def test_connection_errors_not_retried_when_disabled() -> None:
    async with FakeProvisioningServer() as server:
        server.inject("drop_before", route="update", count=3)
        key = server.keys("sub-1")[0]
        no_conn = RetryConfig(max_attempts=5, retry_connection_errors=False)
        async with server.client() as client:
            with pytest.raises(cldprov_async.TransportError):
                await client.access_keys.update(
                    "sub-1", key.api_key, {"enabled": False}, retries=no_conn
                )
    assert server.stats.received == 1


# -- headers the server may or may not send ---------------------------------------------------


async def test_retry_after_seconds_is_honoured() -> None:
    async with Scripted(answer(429, RATE_ERROR, **{"Retry-After": "1"}), answer(200)) as srv:
        async with srv.client(retry_config=FAST) as client:
            started = time.monotonic()
            await client.access_keys.list({"sub_account_id": "s"})
    assert len(srv.hits) == 2
    assert srv.hits[1] - srv.hits[0] >= 0.95
    assert time.monotonic() - started < 3


async def test_retry_after_http_date_is_honoured() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=2), usegmt=True)
    async with Scripted(answer(429, RATE_ERROR, **{"Retry-After": when}), answer(200)) as srv:
        async with srv.client(retry_config=FAST) as client:
            await client.access_keys.list({"sub_account_id": "s"})
    assert len(srv.hits) == 2
    assert srv.hits[1] - srv.hits[0] >= 0.5  # the date has one-second resolution


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Retry-After": "soon"},
        {"X-FeatureRateLimit-Reset": "not a date", "X-FeatureRateLimit-Remaining": "many"},
        {"X-FeatureRateLimit-Limit": "-4", "X-FeatureRateLimit-Remaining": "1e99"},
        {"X-FeatureRateLimit-Reset": "Thu, 01 Jan 1970 00:00:00 GMT"},  # a reset in the past
        {"Retry-After": "-3"},
    ],
    ids=["none", "garbage-retry-after", "garbage-reset", "garbage-ints", "past-reset", "negative"],
)
async def test_420_with_missing_or_garbage_headers_backs_off_and_recovers(
    headers: dict[str, str],
) -> None:
    async with Scripted(
        answer(420, RATE_ERROR, **headers), answer(420, RATE_ERROR, **headers), answer(200)
    ) as srv:
        async with srv.client(retry_config=FAST) as client:
            started = time.monotonic()
            listing = await client.access_keys.list({"sub_account_id": "s"})
    assert listing.total == 1
    assert len(srv.hits) == 3
    assert time.monotonic() - started < 2  # exponential backoff from 10 ms, not a long sleep
    assert client.stats.rejected == 2


async def test_garbage_rate_limit_headers_on_success_are_ignored() -> None:
    bad = {"X-FeatureRateLimit-Limit": "ten", "X-FeatureRateLimit-Reset": "Mon, 99 Foo 2026"}
    async with Scripted(answer(200, LIST_JSON, **bad)) as srv:
        async with srv.client() as client:
            await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "s"}) for _ in range(5))
            )
    assert len(srv.hits) == 5
    assert client.rate_limit is None


async def test_first_request_goes_alone_until_the_budget_is_known() -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=100, window=60)) as server:
        server.inject("delay", route="list")
        async with server.client() as client:
            await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "sub-1"}) for _ in range(10))
            )
    # The journal is in order of completion: had the others not waited, they would have
    # finished before the delayed first one.
    assert server.journal[0].fault == "delay"
    assert server.stats.received == 10
    assert client.rate_limit is not None and client.rate_limit.limit == 100


async def test_remaining_budget_shared_by_concurrent_calls() -> None:
    """Five left in a window an hour long: five are sent, the rest refused locally."""
    reset = datetime.now(UTC) + timedelta(hours=1)
    counter = {"n": 5}

    async def budgeted(request: web.Request) -> web.StreamResponse:
        counter["n"] -= 1
        if counter["n"] < 0:
            return web.json_response(RATE_ERROR, status=420, headers=rl_headers(10, 0, reset))
        return web.json_response(LIST_JSON, headers=rl_headers(10, counter["n"], reset))

    async with Scripted(budgeted) as srv:
        async with srv.client() as client:
            results = await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "s"}) for _ in range(20)),
                return_exceptions=True,
            )
    ok = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, cldprov_async.RateLimitedError)]
    assert len(ok) == 5
    assert len(refused) == 15
    assert len(srv.hits) == 5  # nothing was sent only to be rejected


# -- cancellation, logging, connections --------------------------------------------------------


async def test_cancelling_a_waiting_call_stops_it_and_frees_the_gate() -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=1, window=2.0)) as server:
        async with server.client(retry_config=RetryConfig(max_wait=30)) as client:
            await client.access_keys.list({"sub_account_id": "sub-1"})  # budget now 0
            waiting = asyncio.create_task(client.access_keys.list({"sub_account_id": "sub-1"}))
            await asyncio.sleep(0.05)
            assert not waiting.done()
            started = time.monotonic()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            assert time.monotonic() - started < 0.1
            received = server.stats.received
            # The gate still works for the next caller once the window turns.
            await client.access_keys.list({"sub_account_id": "sub-1"})
    assert received == 1
    assert server.stats.received == 2
    assert server.stats.rate_limited == 0


async def test_cancelling_during_backoff_stops_retrying() -> None:
    async with Scripted(answer(503, "<html>busy</html>")) as srv:
        slow = RetryConfig(max_attempts=10, backoff_initial=5.0, backoff_max=5.0, max_wait=60)
        async with srv.client(retry_config=slow) as client:
            task = asyncio.create_task(client.access_keys.list({"sub_account_id": "s"}))
            while not srv.hits:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            hits = len(srv.hits)
            await asyncio.sleep(0.2)
    assert hits == len(srv.hits) <= 2


async def test_retries_are_logged_without_credentials(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with Scripted(answer(503, "<html>busy</html>"), answer(200)) as srv:
        async with srv.client(retry_config=FAST) as client:
            await client.access_keys.list({"sub_account_id": "s"})
    records = [r for r in caplog.records if r.name == "cldprov_async"]
    assert records, "the retry was not logged"
    text = " ".join(r.getMessage() for r in records)
    assert "GET" in text and "/access_keys" in text and "503" in text and "attempt 2" in text
    everything = caplog.text
    assert SECRET not in everything
    assert "Authorization" not in everything and "Basic " not in everything


async def test_discarded_responses_release_their_connections() -> None:
    async with FakeProvisioningServer() as server:
        async with server.client(retry_config=FAST, max_connections=1) as client:
            # One connection in the pool: a leaked response would deadlock the next attempt.
            for _ in range(10):
                server.inject("503", route="list", count=3)
                await asyncio.wait_for(client.access_keys.list({"sub_account_id": "sub-1"}), 5)
    assert server.stats.received == 40


async def test_a_truncated_success_body_is_retried_for_idempotent_calls() -> None:
    async with FakeProvisioningServer() as server:
        server.inject("truncated", route="list")
        async with server.client(retry_config=FAST) as client:
            listing = await client.access_keys.list({"sub_account_id": "sub-1"})
    assert listing.total == 1
    assert [e.fault for e in server.journal] == ["truncated", None]


async def test_a_truncated_generate_answer_still_returns_the_created_key() -> None:
    async with FakeProvisioningServer(keys_per_sub_account=0) as server:
        server.inject("truncated", route="generate")
        async with server.client(retry_config=FAST) as client:
            key = await client.access_keys.generate("sub-1", {"name": "cut"})
    assert server.keys_created == 1
    assert key.api_secret == server.keys("sub-1")[0].api_secret


async def test_a_body_that_stays_garbled_is_an_api_error() -> None:
    async with Scripted(answer(200, '{"access_keys": [')) as srv:
        async with srv.client(retry_config=FAST) as client:
            with pytest.raises(cldprov_async.APIError) as caught:
                await client.access_keys.list({"sub_account_id": "s"})
    assert caught.value.status_code == 200
    assert len(srv.hits) == FAST.max_attempts


@pytest.mark.slow
@virtual_time.on_virtual_time
async def test_a_server_that_announces_only_the_reset_is_still_respected() -> None:
    """No Limit/Remaining at all, 420 past 40 per second: the client must not flood it.
    (On virtual time: the server's windows and the client's clock move with the loop.)"""
    limit, counts, rejected, accepted_windows = 40, Counter[int](), [0], set[int]()
    clock = virtual_time.clock()

    async def windowed(request: web.Request) -> web.StreamResponse:
        await request.read()
        now = clock()
        window = int(now)
        reset = {
            "X-FeatureRateLimit-Reset": format_datetime(
                datetime.fromtimestamp(window + 1, UTC), usegmt=True
            )
        }
        if counts[window] >= limit:
            rejected[0] += 1
            return web.json_response(RATE_ERROR, status=420, headers=reset)
        counts[window] += 1
        accepted_windows.add(window)
        return web.json_response(KEY_JSON, headers=reset)

    async with Scripted(windowed) as srv:
        async with srv.client(clock=clock) as client:
            keys = await asyncio.gather(
                *(client.access_keys.generate("s", {"name": f"k{i}"}) for i in range(200))
            )
    assert len(keys) == 200
    assert sum(counts.values()) == 200
    assert rejected[0] <= 40
    assert 5 <= len(accepted_windows) <= 6
