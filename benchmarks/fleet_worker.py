"""One process of a fleet, for tests and benchmarks: prints one JSON line.

    python benchmarks/fleet_worker.py '<json options>'

Modes: ``generate`` (n named generates, ``concurrency`` at a time), ``paced`` (a normal
generate every ``every`` seconds for ``seconds``), ``rotate`` (``rotate_many`` over ``subs``).
Credentials come from ``CLOUDINARY_ACCOUNT_URL``; the shared gate from ``rate_limit_url``.
The library's log lines (info and up) come back too, as ``[epoch, level, message]``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import Any

from cldprov_async import CldProvisioning, RetryConfig


class _Kept(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[list[Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append([record.created, record.levelname, record.getMessage()])


async def main(opts: dict[str, Any]) -> dict[str, Any]:
    kept = _Kept()
    logging.getLogger("cldprov_async").addHandler(kept)
    logging.getLogger("cldprov_async").setLevel(logging.INFO)
    retry = RetryConfig(max_attempts=opts.get("max_attempts", 8), max_wait=opts["max_wait"])
    client = CldProvisioning(
        server_url=opts["server_url"],
        rate_limit_url=opts.get("rate_limit_url"),
        bulk_reserve=opts.get("bulk_reserve", 0.1),
        timeout=opts.get("timeout", 10.0),
        retry_config=retry,
    )
    failed: list[str] = []
    durations: list[float] = []
    ok = 0
    start_epoch = time.time()
    started = time.monotonic()

    async def one(coro: Any) -> None:
        nonlocal ok
        t0 = time.monotonic()
        try:
            await coro
            ok += 1
        except Exception as exc:
            failed.append(f"{type(exc).__name__}: {exc}")
        durations.append(time.monotonic() - t0)

    async with client:
        keys = client.access_keys
        sub, tag = opts.get("sub", "sub-1"), opts.get("tag", "w")
        if opts["mode"] == "generate":
            slots = asyncio.Semaphore(opts["concurrency"])

            async def gen(i: int) -> None:
                async with slots:
                    await one(
                        keys.generate(
                            sub, {"name": f"{tag}-{i}"}, priority=opts.get("priority", "normal")
                        )
                    )

            await asyncio.gather(*(gen(i) for i in range(opts["n"])))
        elif opts["mode"] == "paced":
            tasks = []
            i = 0
            while time.monotonic() - started < opts["seconds"]:
                tasks.append(asyncio.create_task(one(keys.generate(sub, {"name": f"{tag}-{i}"}))))
                i += 1
                await asyncio.sleep(opts["every"])
            await asyncio.gather(*tasks)
        else:
            results = await keys.rotate_many(opts["subs"], retire="delete", retries=retry)
            ok = sum(r.ok for r in results)
            failed = [str(r.error) for r in results if not r.ok]
        stats = client.stats
    return {
        "ok": ok,
        "failed": failed,
        "start_epoch": start_epoch,
        "wall": time.monotonic() - started,
        "durations": sorted(durations),
        "max_call": max(durations, default=0.0),
        "sent": stats.sent,
        "rejected": stats.rejected,
        "log": kept.lines,
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(json.loads(sys.argv[1])))), flush=True)
