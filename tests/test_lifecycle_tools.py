"""The lifecycle's tools: the manual clock, the fake Admin API ping, the ping verifier, the
shell deploy hook and the rotation lock (a lock file, and a lease in a real redis-server)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import forked
import pytest
import redis

from benchmarks.servers import redis_server as run_redis
from cldprov_async import (
    AccessKey,
    HandOffError,
    PingVerifier,
    ProductEnvironment,
    RotationLock,
    RotationLockedError,
    RotationLockError,
    ShellHook,
    VerificationError,
)
from cldprov_async._fleet import parse
from cldprov_async.testing import FakeProvisioningServer, ManualClock, RateLimitPolicy

T0 = 1_800_000_000.0
ENV = ProductEnvironment("sub-1", name="Prod", cloud_name="prod-cloud")


def basic(key: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:{secret}".encode()).decode()}


# -- the clock -----------------------------------------------------------------------------------


async def test_manual_clock_moves_only_when_told() -> None:
    clock = ManualClock(T0)
    assert clock() == T0 and clock.now == datetime.fromtimestamp(T0, UTC)
    clock.advance(timedelta(days=2))
    assert clock() == T0 + 2 * 86400
    clock.set(datetime.fromtimestamp(T0, UTC))
    assert clock() == T0
    started = time.monotonic()
    await clock.sleep(3600)  # time jumps instead of passing
    assert clock() == T0 + 3600 and time.monotonic() - started < 1
    with pytest.raises(ValueError, match="seconds"):
        clock.advance(-1)
    with pytest.raises(ValueError, match="aware"):
        ManualClock(datetime(2026, 1, 1))
    ticking = ManualClock(T0, ticking=True)
    await asyncio.sleep(0.01)
    assert ticking() > T0


# -- the fake Admin API ping ---------------------------------------------------------------------


async def test_the_ping_accepts_only_an_enabled_key_with_its_secret() -> None:
    clock = ManualClock(T0)
    fake = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, clock=clock)
    fake.add_sub_account("sub-1", cloud_name="prod-cloud")
    good = fake.add_key("sub-1")
    off = fake.add_key("sub-1", enabled=False)
    async with fake, aiohttp.ClientSession() as http:
        url = f"{fake.url}/v1_1/prod-cloud/ping"

        async def ping(headers: dict[str, str], where: str = url) -> tuple[int, object]:
            async with http.get(where, headers=headers) as resp:
                return resp.status, await resp.json()

        assert await ping(basic(good.api_key, good.api_secret)) == (200, {"status": "ok"})
        status, body = await ping(basic(good.api_key, "wrong"))
        assert status == 401 and body == {"error": {"message": f"Invalid api_key {good.api_key}"}}
        assert (await ping(basic(off.api_key, off.api_secret)))[0] == 401
        assert (await ping({}))[0] == 401
        assert (await ping(basic("fake-key", "fake-secret")))[0] == 401  # provisioning creds
        other = f"{fake.url}/v1_1/nobody/ping"
        assert await ping(basic(good.api_key, good.api_secret), other) == (
            401,
            {"error": {"message": "Invalid cloud_name nobody"}},
        )
        fake.refuse_ping("sub-1")
        assert (await ping(basic(good.api_key, good.api_secret)))[0] == 401
        fake.refuse_ping("sub-1", False)
        fake.ping_delay = 60
        new = fake.add_key("sub-1")  # made now: not accepted for a minute of the clock
        assert (await ping(basic(new.api_key, new.api_secret)))[0] == 401
        clock.advance(60)
        assert (await ping(basic(new.api_key, new.api_secret)))[0] == 200
    pings = [e for e in fake.journal if e.route == "ping"]
    assert len(pings) == 9 and all(e.method == "GET" for e in pings)


async def test_the_ping_spends_no_provisioning_budget() -> None:
    fake = FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=0, window=3600))
    async with fake, aiohttp.ClientSession() as http:
        key = fake.keys("sub-1")[0]
        async with http.get(
            f"{fake.url}/v1_1/sub-1/ping", headers=basic(key.api_key, key.api_secret)
        ) as r:
            assert r.status == 200
            assert "X-FeatureRateLimit-Limit" not in r.headers
    assert fake.stats.rate_limited == 0


async def test_the_clock_route_moves_a_manual_clock() -> None:
    clock = ManualClock(T0)
    async with FakeProvisioningServer(clock=clock) as fake, aiohttp.ClientSession() as http:
        async with http.post(f"{fake.url}/_fake/clock", json={"advance": 86400}) as r:
            assert r.status == 200 and (await r.json())["now"] == T0 + 86400
        async with http.post(f"{fake.url}/_fake/clock", json={"set": T0}) as r:
            assert (await r.json())["now"] == T0
        async with http.post(f"{fake.url}/_fake/clock", json={"jump": 1}) as r:
            assert r.status == 400
        async with http.get(f"{fake.url}/_fake/clock") as r:
            assert (await r.json())["now"] == T0 == clock()
    assert fake.journal == []  # not API traffic


def test_the_standalone_server_takes_a_clock_and_ping_options() -> None:
    args = ["--clock-start", "2027-01-01T00:00:00", "--clock-frozen", "--ping-delay", "30"]
    proc = forked.Popen(
        [sys.executable, "-m", "cldprov_async.testing", *args, "--ping-refuse", "sub-1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip().split("=", 1)[1]

        async def check() -> None:
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{url}/_fake/clock") as r:
                    assert (await r.json())["now"] == datetime(2027, 1, 1, tzinfo=UTC).timestamp()
                async with http.post(f"{url}/_fake/clock", json={"advance": 5}) as r:
                    assert (await r.json())["now"] == datetime(
                        2027, 1, 1, 0, 0, 5, tzinfo=UTC
                    ).timestamp()

        asyncio.run(check())
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


# -- the ping verifier -----------------------------------------------------------------------------


async def test_the_verifier_retries_until_the_key_is_accepted_without_waiting() -> None:
    clock = ManualClock(T0)
    fake = FakeProvisioningServer(clock=clock, ping_delay=45)
    fake.add_sub_account("env", cloud_name="env-cloud")
    async with fake, fake.client(clock=clock) as client:
        key = await client.access_keys.generate("env", {"name": "n"})
        sent = client.stats.sent
        started = time.monotonic()
        await client.ping_verifier(timeout=120)(key, "env-cloud")
        assert time.monotonic() - started < 5  # the manual clock slept, not the test
        assert clock() - T0 >= 45
        assert client.stats.sent == sent  # no provisioning request, nothing through the gate
    pings = [e for e in fake.journal if e.route == "ping"]
    assert len(pings) >= 2 and {e.status for e in pings} == {401, 200}


async def test_a_key_never_accepted_fails_verification_without_its_secret() -> None:
    clock = ManualClock(T0)
    fake = FakeProvisioningServer(clock=clock, ping_refused=["sub-1"])
    async with fake:
        key = fake.keys("sub-1")[0]
        model = AccessKey(
            key.name, key.api_key, datetime.now(UTC), datetime.now(UTC), True, key.api_secret
        )
        verifier = PingVerifier(fake.url, timeout=30, clock=clock)
        try:
            with pytest.raises(VerificationError) as caught:
                await verifier(model, "sub-1")
        finally:
            await verifier.aclose()
    assert "refused key" in str(caught.value) and key.api_secret not in str(caught.value)
    assert clock() - T0 >= 30
    assert caught.value.status_code == 401


# -- the deploy hook ----------------------------------------------------------------------

KEY = AccessKey(
    "run@pending",
    "123456",
    datetime(2027, 1, 1, tzinfo=UTC),
    datetime(2027, 1, 1, tzinfo=UTC),
    True,
    "s3cr3t-value",
)


async def test_the_hook_gets_json_on_stdin_and_no_secret_in_its_environment(tmp_path: Path) -> None:
    out = tmp_path / "got"
    environ = {
        "PATH": os.environ["PATH"],
        "CLOUDINARY_ACCOUNT_URL": "account://k:prov-secret@acc",
        "OTHER_COPY": "x-prov-secret-y",
        "KEEP_ME": "1",
    }
    hook = ShellHook(
        f"cat > {out}.json; env > {out}.env; echo hi", environ=environ, hide=["prov-secret"]
    )
    await hook(KEY, ENV)
    doc = json.loads(out.with_suffix(".json").read_text())
    assert doc == {
        "sub_account_id": "sub-1",
        "cloud_name": "prod-cloud",
        "api_key": "123456",
        "api_secret": "s3cr3t-value",
        "name": "run@pending",
        "created_at": "2027-01-01T00:00:00Z",
    }
    env = out.with_suffix(".env").read_text()
    assert "CLDPROV_SUB_ACCOUNT_ID=sub-1" in env and "CLDPROV_CLOUD_NAME=prod-cloud" in env
    assert "CLDPROV_API_KEY=123456" in env and "KEEP_ME=1" in env
    assert (
        "s3cr3t-value" not in env
        and "prov-secret" not in env
        and "CLOUDINARY_ACCOUNT_URL" not in env
    )


async def test_a_failing_hook_reports_its_last_stderr_lines_masked() -> None:
    script = (
        "for i in 1 2 3 4 5 6 7; do echo line-$i >&2; done;"
        " cat | grep -o 's3cr3t-value' >&2; exit 3"
    )
    with pytest.raises(HandOffError) as caught:
        await ShellHook(script)(KEY, ENV)
    error = caught.value
    assert error.exit_status == 3 and not error.timed_out
    assert error.stderr_tail == "line-4 | line-5 | line-6 | line-7 | ********"
    assert "exited with status 3" in str(error) and "s3cr3t-value" not in str(error)
    with pytest.raises(HandOffError) as long:
        await ShellHook("head -c 5000 /dev/zero | tr '\\0' x >&2; exit 1")(KEY, ENV)
    assert len(long.value.stderr_tail) == 1024


async def _gone(pid: int) -> None:
    """The hook's background child ends within seconds (its process group was killed)."""
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        await asyncio.sleep(0.05)
    pytest.fail("the hook's child survived")


async def test_a_hook_past_its_timeout_is_killed_with_its_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child"
    hook = ShellHook(f"sleep 60 & echo $! > {pidfile}; wait", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(HandOffError) as caught:
        await hook(KEY, ENV)
    assert caught.value.timed_out and "timed out after 0.5s" in str(caught.value)
    assert time.monotonic() - started < 10
    await _gone(int(pidfile.read_text()))  # the background child was in the group: killed too


async def test_a_signal_passes_to_running_hooks(tmp_path: Path) -> None:
    marker = tmp_path / "term"
    hook = ShellHook(f"trap 'echo got > {marker}; exit 7' TERM; sleep 30 & wait")
    task = asyncio.create_task(hook(KEY, ENV))
    for _ in range(200):
        if hook.running:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.2)  # let the shell set its trap
    hook.send_signal(signal.SIGTERM)
    with pytest.raises(HandOffError) as caught:
        await task
    assert marker.read_text().strip() == "got" and caught.value.exit_status == 7


async def test_the_runs_signal_reaches_a_hook_that_was_still_starting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's SIGTERM lands while the hook's shell has started but its start has not
    returned yet (a loaded machine made that window wide enough to hit): the hook still gets
    the signal, the run stops, and nothing of the hook's process group is left."""
    marker, started, pidfile = tmp_path / "term", tmp_path / "started", tmp_path / "child"
    hook = ShellHook(
        f"trap 'echo got > {marker}; exit 7' TERM; sleep 30 & echo $! > {pidfile};"
        f" touch {started}; wait"
    )
    real_start = asyncio.create_subprocess_shell

    async def start_then_the_signal(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        proc = await real_start(*args, **kwargs)
        while not started.exists():  # the trap is set
            await asyncio.sleep(0.01)
        hook.send_signal(signal.SIGTERM)  # as the CLI's handler does: the hook not yet known
        task.cancel()  # and the run's task
        return proc

    monkeypatch.setattr(asyncio, "create_subprocess_shell", start_then_the_signal)
    task = asyncio.create_task(hook(KEY, ENV))
    with pytest.raises(asyncio.CancelledError):
        await task
    assert marker.read_text().strip() == "got"
    await _gone(int(pidfile.read_text()))


# -- the rotation lock --------------------------------------------------------------------


async def test_a_lock_file_refuses_a_second_run_naming_the_holder(tmp_path: Path) -> None:
    async with FakeProvisioningServer() as fake, fake.client() as client:
        first = client.rotation_lock(str(tmp_path))
        async with first:
            with pytest.raises(RotationLockedError) as caught:
                await client.rotation_lock(str(tmp_path)).acquire()
            assert caught.value.pid == os.getpid() and caught.value.host == first.me["host"]
            assert f"pid {os.getpid()}" in str(caught.value)
        async with client.rotation_lock(str(tmp_path)):  # released: taken again
            pass
        holder = forked.Popen(
            [sys.executable, "-c", HOLD_LOCK, fake.url, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])},
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(RotationLockedError) as other:
            await client.rotation_lock(str(tmp_path)).acquire()
        assert other.value.pid == holder.pid
        holder.kill()  # a holder that dies never blocks the next run
        holder.wait(10)
        holder.stdout.close()
        async with client.rotation_lock(str(tmp_path)):
            pass


HOLD_LOCK = """
import asyncio, sys
from cldprov_async import CldProvisioning, Security

async def main():
    async with CldProvisioning("fake-account", Security("k", "s"), server_url=sys.argv[1]) as c:
        await c.rotation_lock(sys.argv[2]).acquire()
        print("held", flush=True)
        await asyncio.sleep(60)

asyncio.run(main())
"""


@pytest.fixture
def redis_url() -> Iterator[str]:
    with run_redis() as url:
        yield url


async def test_a_redis_lease_is_one_run_at_a_time_and_expires_with_its_holder(
    redis_url: str,
) -> None:
    async with FakeProvisioningServer() as fake:
        async with (
            fake.client(rate_limit_url=redis_url) as a,
            fake.client(rate_limit_url=redis_url) as b,
        ):
            lock = a.rotation_lock()
            await lock.acquire()
            with pytest.raises(RotationLockedError) as caught:
                await b.rotation_lock().acquire()
            assert caught.value.pid == os.getpid()
            await lock.release()
            second = b.rotation_lock()
            await second.acquire()
            await lock.release()  # not ours any more: leaves the other's lease alone
            with pytest.raises(RotationLockedError):
                await a.rotation_lock().acquire()
            await second.release()
            # A holder that dies stops renewing: its lease expires.
            dying = RotationLock(second.host, second.account_id, fleet=parse(redis_url), ttl=0.3)
            await dying.acquire()
            held = redis.Redis.from_url(redis_url, decode_responses=True)
            (key,) = [str(k) for k in held.scan_iter("*:rotation-lock")]
            value = held.get(key)
            assert value is not None and "fake-secret" not in value
            assert json.loads(value)["pid"] == os.getpid()
            assert dying._renewer is not None
            dying._renewer.cancel()  # as if its process died
            await asyncio.sleep(0.5)
            async with a.rotation_lock():
                pass
            assert held.get(key) is None  # released by compare-and-delete
            held.close()
            await dying.release()


async def test_a_redis_that_does_not_answer_is_a_typed_error() -> None:
    async with FakeProvisioningServer() as fake:
        async with fake.client(rate_limit_url="redis://127.0.0.1:9/0") as client:
            with pytest.raises(RotationLockError, match="did not answer"):
                await client.rotation_lock().acquire()
