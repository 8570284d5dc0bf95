"""Fleet scenarios: the Redis-shared gate against in-process gates (``python -m benchmarks.fleet``).

* ``throughput``: one process, 2000 ``generate`` at concurrency 64 against a limit too high
  to matter (1,000,000 a second): the shared gate's requests per second over the in-process
  gate's, alternating rounds, median ratio.

It starts its own ``redis-server`` (persistence off) and the fake server in their own
processes, on free loopback ports. Prints one JSON object.
"""

from __future__ import annotations

import asyncio
import json
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

from cldprov_async import CldProvisioning, Security


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_fake(rate_limit: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cldprov_async.testing", "--rate-limit", rate_limit],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("CLDPROV_FAKE_URL="):
            return proc, line.split("=", 1)[1].strip()
    raise RuntimeError("the fake server did not start")


def _start_redis() -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.3)
    return proc, f"redis://127.0.0.1:{port}/0"


async def _generates(url: str, n: int, concurrency: int, rate_limit_url: str | None) -> float:
    security = Security(provisioning_api_key="fake-key", provisioning_api_secret="fake-secret")
    async with CldProvisioning(
        "fake-account", security, server_url=url, rate_limit_url=rate_limit_url
    ) as client:
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                await client.access_keys.generate("sub-1", {"name": f"k{i}-{time.time()}"})

        await one(-1)  # warm: the first answer tells the budget
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)


def throughput(n: int = 2000, concurrency: int = 64, rounds: int = 3) -> dict[str, Any]:
    fake, url = _start_fake("1000000/1")
    redis, redis_url = _start_redis()
    try:
        ratios, local_rps, shared_rps = [], [], []
        for _ in range(rounds):
            local = asyncio.run(_generates(url, n, concurrency, None))
            shared = asyncio.run(_generates(url, n, concurrency, redis_url))
            local_rps.append(local)
            shared_rps.append(shared)
            ratios.append(shared / local)
        return {
            "scenario": "fleet_throughput",
            "n": n,
            "concurrency": concurrency,
            "in_process_rps": round(statistics.median(local_rps)),
            "shared_rps": round(statistics.median(shared_rps)),
            "shared_over_in_process": round(statistics.median(ratios), 2),
        }
    finally:
        fake.terminate()
        redis.terminate()
        fake.wait(10)
        redis.wait(10)


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    print(json.dumps(throughput(n)))
