"""The shared rate-limit gate: real redis-server, real processes, the fake server's journal.

A fixture starts ``redis-server`` on a free loopback port (persistence off) and stops it
after. Fleet tests run ``benchmarks/fleet_worker.py`` in separate processes against a fake
server served from a thread of this one, and assert on what the server received.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import forked
import pytest
import redis
from fleet_run import SECRET, result, spawn

from benchmarks.servers import redis_command
from cldprov_async import CldProvisioning, RateLimitedError, RetryConfig
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, persistence off.

    Tests run in parallel: a port found free may be taken before redis-server binds it, so
    the server is known ready only when the one answering is this process, else it starts
    again on another port.
    """

    def __init__(self) -> None:
        self.port = 0
        self.url = ""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start on a free port; started again (after ``stop``), on the same port."""
        restart = self.port != 0
        for _ in range(1 if restart else 5):
            if not restart:
                self.port = free_port()
                self.url = f"redis://127.0.0.1:{self.port}/0"
            self.proc = proc = subprocess.Popen(redis_command(self.port), stdout=subprocess.DEVNULL)
            client = redis.Redis(port=self.port)
            try:
                for _ in range(500):
                    if proc.poll() is not None:
                        break  # it could not bind the port: another one
                    try:
                        if client.info("server")["process_id"] == proc.pid:
                            return
                    except redis.ConnectionError:
                        pass
                    time.sleep(0.02)
            finally:
                client.close()
            self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def sync(self) -> Any:  # redis-py types decoded and raw replies alike
        return redis.Redis(port=self.port, decode_responses=True)


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fake() -> Iterator[FakeProvisioningServer]:
    server = FakeProvisioningServer(
        api_secret=SECRET,
        sub_accounts=[f"sub-{i}" for i in range(1, 13)],
        rate_limit=RateLimitPolicy(limit=40, window=1.0, status=420),
        keep_journal=True,
    )
    with server.run_in_thread():
        yield server


def sent_by(fake: FakeProvisioningServer, tag: str) -> int:
    """Requests received for keys named ``tag``... (one process's)."""
    return sum(
        isinstance(e.body, dict) and str(e.body.get("name", "")).startswith(tag)
        for e in fake.journal
    )


def rejected(fake: FakeProvisioningServer) -> int:
    return fake.stats.rate_limited


def test_four_processes_share_one_budget(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    procs = [
        spawn(
            fake,
            mode="generate",
            n=100,
            concurrency=32,
            tag=f"p{i}",
            rate_limit_url=redis_server.url,
        )
        for i in range(4)
    ]
    outs = [result(p) for p in procs]
    assert [o["ok"] for o in outs] == [100] * 4, outs
    assert fake.keys_created == 400
    assert len(fake.keys("sub-1")) == 400 + fake.keys_per_sub_account
    assert rejected(fake) <= 8, fake.stats
    # The budget is used, not wasted, counted in the server's own windows (no process's
    # clock, no start-up): 400 accepted requests at 40 a window are 10 full windows; the
    # issue allows 2 more for the gate's margins at each window's edges.
    windows = Counter(math.floor(e.time) for e in fake.journal if e.status == 200)
    assert sum(windows.values()) == 400
    assert max(windows.values()) <= 40
    assert max(windows) - min(windows) + 1 <= 10 + 2, sorted(windows.items())


def test_sigkill_of_one_process_bounds_the_loss(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    opts = {"mode": "generate", "n": 100, "concurrency": 32, "timeout": 3.0}
    procs = [spawn(fake, tag=f"p{i}", rate_limit_url=redis_server.url, **opts) for i in range(4)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and sent_by(fake, "p0-") < 20:  # mid-run
        time.sleep(0.01)
    procs[0].send_signal(signal.SIGKILL)
    assert 20 <= sent_by(fake, "p0-") < 100
    procs[0].communicate(timeout=10)  # reaps it and closes its pipe
    outs = [result(p) for p in procs[1:]]
    assert [o["ok"] for o in outs] == [100] * 3, outs
    names = [k.name or "" for k in fake.keys("sub-1")]
    for i in (1, 2, 3):
        assert sum(n.startswith(f"p{i}-") for n in names) == 100
    assert rejected(fake) <= 8, fake.stats


def test_redis_killed_mid_run_no_call_hangs(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    opts = {"mode": "generate", "n": 100, "concurrency": 32, "max_wait": 6.0}
    procs = [spawn(fake, tag=f"p{i}", rate_limit_url=redis_server.url, **opts) for i in range(2)]
    time.sleep(2.0)
    redis_server.stop(signal.SIGKILL)
    outs = [result(p, timeout=40) for p in procs]
    for out in outs:
        assert out["ok"] + len(out["failed"]) == 100
        assert all(f.startswith("RateLimitedError") for f in out["failed"]), out["failed"]
        assert out["max_call"] < 6.0 + 2.0  # its own budget, plus an attempt in flight


def test_reserve_keeps_normal_calls_alive_beside_a_bulk_rotation(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    fake.rate_limit = RateLimitPolicy(limit=40, window=2.0, status=420)
    subs = [f"sub-{i}" for i in range(1, 13)]
    for sub in subs:
        for n in range(3):
            fake.add_key(sub, name=f"old-{n}")
    common = {"rate_limit_url": redis_server.url, "bulk_reserve": 0.25}
    bulk = spawn(fake, mode="rotate", subs=subs, **common)
    normal = spawn(
        fake,
        mode="paced",
        every=0.3,
        seconds=6.0,
        max_wait=1.0,
        sub="sub-1",
        tag="svc",
        max_attempts=2,
        **common,
    )
    out_n, out_b = result(normal), result(bulk)
    assert out_n["failed"] == [], out_n["failed"]
    assert out_n["ok"] >= 15
    assert out_b["ok"] == len(subs), out_b


@pytest.fixture
def gate_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level("WARNING", logger="cldprov_async")
    return caplog


async def test_redis_down_at_start_falls_back_with_one_warning(
    gate_log: pytest.LogCaptureFixture,
) -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=40, window=1.0)) as fake:
        url = f"redis://127.0.0.1:{free_port()}/0"
        async with fake.client(rate_limit_url=url) as client:
            started = time.monotonic()
            await asyncio.gather(
                *(client.access_keys.list({"sub_account_id": "sub-1"}) for _ in range(30))
            )
            assert time.monotonic() - started < 2.0
            assert client._session.limiter.shared is False  # type: ignore[attr-defined]
        assert fake.stats.received == 30
    warnings = [r for r in gate_log.records if "unreachable" in r.getMessage()]
    assert len(warnings) == 1


async def test_redis_restarted_empty_is_rejoined(
    redis_server: RedisServer, gate_log: pytest.LogCaptureFixture
) -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=1000, window=1.0)) as fake:
        async with fake.client(rate_limit_url=redis_server.url) as client:
            gate = client._session.limiter
            listing = {"sub_account_id": "sub-1"}
            await asyncio.gather(*(client.access_keys.list(listing) for _ in range(10)))
            assert gate.shared  # type: ignore[attr-defined]
            redis_server.stop(signal.SIGKILL)
            await asyncio.gather(*(client.access_keys.list(listing) for _ in range(20)))
            # Permits held from before may serve these calls; the releases that follow
            # find Redis gone, and the gate falls back within a second.
            for _ in range(20):
                if not gate.shared:  # type: ignore[attr-defined]
                    break
                await asyncio.sleep(0.05)
            assert not gate.shared  # type: ignore[attr-defined]
            redis_server.start()  # same port, empty
            for _ in range(60):
                await asyncio.sleep(0.1)
                if gate.shared:  # type: ignore[attr-defined]
                    break
            assert gate.shared  # type: ignore[attr-defined]
            await asyncio.gather(*(client.access_keys.list(listing) for _ in range(10)))
            assert redis_server.sync().keys("cldprov:*")
        assert fake.stats.received == 40
    assert len([r for r in gate_log.records if "unreachable" in r.getMessage()]) == 1


async def test_reset_an_hour_away_fails_at_once_with_reset_at(redis_server: RedisServer) -> None:
    policy = RateLimitPolicy(limit=2, window=3600.0)
    async with FakeProvisioningServer(rate_limit=policy) as fake:
        one = fake.client(rate_limit_url=redis_server.url)
        two = fake.client(rate_limit_url=redis_server.url, retry_config=RetryConfig(max_wait=5))
        async with one, two:
            for i in range(2):
                await one.access_keys.generate("sub-1", {"name": f"k{i}"})
            started = time.monotonic()
            with pytest.raises(RateLimitedError) as info:
                await two.access_keys.generate("sub-1", {"name": "late"})
            assert time.monotonic() - started < 1.0
        assert info.value.reset_at is not None
        assert info.value.reset_at.timestamp() > time.time() + 5
        assert fake.stats.received == 2  # the second process never sent


async def test_two_accounts_on_one_redis_never_mix_and_redis_holds_no_secret(
    redis_server: RedisServer,
) -> None:
    policy = RateLimitPolicy(limit=40, window=1.0)
    kw: dict[str, Any] = {"api_secret": SECRET, "rate_limit": policy, "keep_journal": True}
    a = FakeProvisioningServer(account_id="acct-a", **kw)
    b = FakeProvisioningServer(account_id="acct-b", **kw)
    async with a, b:
        ca, cb = (
            a.client(rate_limit_url=redis_server.url),
            b.client(rate_limit_url=redis_server.url),
        )
        async with ca, cb:
            await asyncio.gather(
                *(ca.access_keys.generate("sub-1", {"name": f"a{i}"}) for i in range(60)),
                *(cb.access_keys.generate("sub-1", {"name": f"b{i}"}) for i in range(60)),
            )
            r = redis_server.sync()
            keys = r.keys("*")
            dump = []
            for key in keys:
                assert r.ttl(key) > 0, key  # every key expires
                kind = r.type(key)
                dump.append(key)
                if kind == "hash":
                    dump += [f"{k}={v}" for k, v in r.hgetall(key).items()]
                elif kind == "zset":
                    dump += r.zrange(key, 0, -1)
        secrets = [SECRET, a.api_key, *(k.api_secret for k in a.keys("sub-1") + b.keys("sub-1"))]
    text = "\n".join(dump)
    assert not [s for s in secrets if s in text]
    assert sum("acct-a" in k and k.endswith(":state") for k in keys) == 1
    assert sum("acct-b" in k and k.endswith(":state") for k in keys) == 1
    # Each account has its own 40 a window, counted in the servers' own windows (no clock of
    # ours): in some window the two accounts together had more than one budget's 40.
    assert a.stats.rate_limited == b.stats.rate_limited == 0
    per_window = Counter(math.floor(e.time) for e in a.journal + b.journal if e.status == 200)
    assert sum(per_window.values()) == 120
    assert max(per_window.values()) > 40, sorted(per_window.items())


async def test_cancelled_while_waiting_on_the_shared_gate_leaks_no_permit(
    redis_server: RedisServer,
) -> None:
    policy = RateLimitPolicy(limit=1, window=3600.0)
    async with FakeProvisioningServer(rate_limit=policy) as fake:
        patient = RetryConfig(max_wait=7200)
        async with fake.client(rate_limit_url=redis_server.url, retry_config=patient) as client:
            await client.access_keys.generate("sub-1", {"name": "first"})
            task = asyncio.create_task(client.access_keys.generate("sub-1", {"name": "waits"}))
            await asyncio.sleep(0.5)
            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gate = client._session.limiter
            assert not gate._waiters  # type: ignore[attr-defined]
            leases = [k for k in redis_server.sync().keys("*") if k.endswith(":leases")]
            assert all(redis_server.sync().zcard(k) == 0 for k in leases)
        assert fake.stats.received == 1


def test_bad_url_and_reserve_are_refused_before_anything_is_sent() -> None:
    kw: dict[str, Any] = {"account_id": "a", "server_url": "http://127.0.0.1:9"}
    from cldprov_async import Security

    kw["security"] = Security(provisioning_api_key="k", provisioning_api_secret="s")
    for bad in ("http://h/0", "redis://", "redis://h:port/0", "redis://h/x", "unix://"):
        with pytest.raises(ValueError, match="rate_limit_url"):
            CldProvisioning(rate_limit_url=bad, **kw)
    for reserve in (-0.1, 1.0, 2):
        with pytest.raises(ValueError, match="bulk_reserve"):
            CldProvisioning(bulk_reserve=reserve, **kw)
    with pytest.raises(ValueError, match="rate_limit_url"):
        CldProvisioning(env={"CLDPROV_RATE_LIMIT_URL": "memcached://x"}, **kw)


def test_a_redis_url_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from cldprov_async import Security

    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    with pytest.raises(ImportError, match=r"cldprov-async\[redis\]"):
        CldProvisioning(
            "a",
            Security(provisioning_api_key="k", provisioning_api_secret="s"),
            rate_limit_url="redis://127.0.0.1:6379/0",
        )


def test_cli_rotate_takes_the_shared_budget(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    env = {
        **os.environ,
        "CLOUDINARY_ACCOUNT_URL": f"account://{fake.api_key}:{SECRET}@{fake.account_id}",
    }
    done = forked.run(
        [
            sys.executable,
            "-m",
            "cldprov_async",
            "--server-url",
            fake.url,
            "--rate-limit-url",
            redis_server.url,
            "rotate",
            "sub-1",
            "sub-2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert any(k.endswith(":state") for k in redis_server.sync().keys("cldprov:*"))
    assert fake.stats.received >= 6  # list, generate, retire, per environment


def test_in_process_reserve_leaves_the_window_to_normal_calls() -> None:
    async def run() -> tuple[int, int, int]:
        policy = RateLimitPolicy(limit=20, window=3600.0)
        async with FakeProvisioningServer(rate_limit=policy) as fake:
            quick = RetryConfig(max_attempts=2, max_wait=2.0)
            async with fake.client(bulk_reserve=0.25, retry_config=quick) as client:
                keys = client.access_keys
                bulk = await asyncio.gather(
                    *(
                        keys.generate("sub-1", {"name": f"b{i}"}, priority="bulk")
                        for i in range(30)
                    ),
                    return_exceptions=True,
                )
                normal = await asyncio.gather(
                    *(keys.generate("sub-1", {"name": f"n{i}"}) for i in range(5)),
                    return_exceptions=True,
                )
            ok = sum(not isinstance(x, BaseException) for x in bulk)
            return ok, sum(not isinstance(x, BaseException) for x in normal), fake.stats.received

    bulk_ok, normal_ok, received = asyncio.run(run())
    assert bulk_ok == 15  # 20 less the reserve, ceil(20 * 0.25) = 5
    assert normal_ok == 5
    assert received == 20


async def test_priority_must_be_normal_or_bulk() -> None:
    async with FakeProvisioningServer() as fake, fake.client() as client:
        with pytest.raises(ValueError, match="priority"):
            await client.access_keys.list({"sub_account_id": "sub-1"}, priority="urgent")  # type: ignore[arg-type]
        assert fake.stats.received == 0


async def test_a_hung_redis_costs_a_call_at_most_its_timeout(
    redis_server: RedisServer, gate_log: pytest.LogCaptureFixture
) -> None:
    async with FakeProvisioningServer(rate_limit=RateLimitPolicy(limit=1000, window=1.0)) as fake:
        async with fake.client(rate_limit_url=redis_server.url) as client:
            listing = {"sub_account_id": "sub-1"}
            await client.access_keys.list(listing)
            assert redis_server.proc is not None
            redis_server.proc.send_signal(signal.SIGSTOP)  # answers nothing, closes nothing
            try:
                started = time.monotonic()
                await asyncio.gather(*(client.access_keys.list(listing) for _ in range(20)))
                assert time.monotonic() - started < 1.5  # one Redis timeout (0.5 s), then local
                assert not client._session.limiter.shared  # type: ignore[attr-defined]
            finally:
                redis_server.proc.send_signal(signal.SIGCONT)
            for _ in range(60):
                await asyncio.sleep(0.1)
                if client._session.limiter.shared:  # type: ignore[attr-defined]
                    break
            assert client._session.limiter.shared  # type: ignore[attr-defined]
        assert fake.stats.received == 21
    assert len([r for r in gate_log.records if "unreachable" in r.getMessage()]) == 1


def test_the_url_prefix_is_ours_and_the_password_stays_out_of_repr() -> None:
    from cldprov_async._fleet import parse

    url = parse("rediss://:hunter2@cache.internal:6380/3?prefix=staging&ssl_cert_reqs=none")
    assert url.prefix == "staging"
    assert url.url == "rediss://:hunter2@cache.internal:6380/3?ssl_cert_reqs=none"
    assert "hunter2" not in repr(url)
    assert parse("unix:///run/redis.sock?db=2").url == "unix:///run/redis.sock?db=2"
    with pytest.raises(ValueError, match="rate_limit_url"):
        parse("redis://h/0?prefix=a:b")
