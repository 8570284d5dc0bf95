"""What the fleet benchmarks share: the worker process, a fake server's URL, and a loop of
generates that measures one client's throughput through a gate.

Imports: the package only (a shared piece: runners import it, it imports no runner).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cldprov_async import CldProvisioning, Security

WORKER = str(Path(__file__).with_name("fleet_worker.py"))
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"


@contextmanager
def fake_server(*args: str) -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "cldprov_async.testing", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("CLDPROV_FAKE_URL="):
                yield line.split("=", 1)[1].strip()
                return
        raise RuntimeError("the fake server did not start")
    finally:
        proc.terminate()
        proc.wait(10)


async def generates(url: str, n: int, concurrency: int, rate_limit_url: str | None) -> float:
    """Generates per second at ``concurrency``, after one call that learns the budget."""
    security = Security(provisioning_api_key="fake-key", provisioning_api_secret="fake-secret")
    async with CldProvisioning(
        "fake-account", security, server_url=url, rate_limit_url=rate_limit_url
    ) as client:
        slots = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with slots:
                await client.access_keys.generate("sub-1")

        await one(-1)  # the first answer tells the budget
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - started)
