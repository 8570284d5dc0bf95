"""The shared rate-limit gate: real redis-server, real processes, the fake server's journal.

A fixture starts ``redis-server`` on a free loopback port (persistence off) and stops it
after. Fleet tests run ``tests/fleet_worker.py`` in separate processes against a fake
server served from a thread of this one, and assert on what the server received.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from cldprov_async import CldProvisioning, RateLimitedError, RetryConfig
from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

WORKER = str(Path(__file__).with_name("fleet_worker.py"))
SECRET = "fleet-secret-zz9"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A real redis-server on a free loopback port, persistence off."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        else:
            raise RuntimeError("redis-server did not start")
        client.close()

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
        self.proc = None

    def sync(self) -> redis.Redis:
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


def spawn(fake: FakeProvisioningServer, **opts: Any) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "CLOUDINARY_ACCOUNT_URL": f"account://{fake.api_key}:{SECRET}@{fake.account_id}",
    }
    opts = {"server_url": fake.url, "max_wait": 30.0, **opts}
    return subprocess.Popen(
        [sys.executable, WORKER, json.dumps(opts)], stdout=subprocess.PIPE, env=env, text=True
    )


def result(proc: subprocess.Popen[str], timeout: float = 60) -> dict[str, Any]:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    data: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return data


def rejected(fake: FakeProvisioningServer) -> int:
    return fake.stats.rate_limited


def test_four_processes_share_one_budget(
    redis_server: RedisServer, fake: FakeProvisioningServer
) -> None:
    started = time.monotonic()
    procs = [
        spawn(fake, mode="generate", n=100, concurrency=32, tag=f"p{i}",
              rate_limit_url=redis_server.url)
        for i in range(4)
    ]
    outs = [result(p) for p in procs]
    wall = time.monotonic() - started
    assert [o["ok"] for o in outs] == [100] * 4, outs
    assert fake.keys_created == 400
    assert len(fake.keys("sub-1")) == 400 + fake.keys_per_sub_account
    assert rejected(fake) <= 8, fake.stats
    # 400 requests at 40 per window: 10 windows at least; plus 2 windows and process start-up.
    assert wall < 10 + 2 + 3, wall
