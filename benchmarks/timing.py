"""Driving a client's calls at a concurrency and timing them (wall, CPU, latencies).

Imports: the clients' call types only.
"""

from __future__ import annotations

import asyncio
import math
import resource
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from benchmarks.clients import AsyncCall, SyncCall


@dataclass
class Timed:
    wall: float
    cpu: float
    latencies: list[float]
    failures: list[str]


async def drive_async(call: AsyncCall, calls: int, concurrency: int) -> Timed:
    latencies = [0.0] * calls
    failures: list[str] = []
    indices = iter(range(calls))

    async def lane() -> None:
        for i in indices:  # lanes share the iterator: each takes the next call
            start = time.perf_counter()
            try:
                await call(i)
            except Exception as exc:
                failures.append(describe(exc))
            latencies[i] = time.perf_counter() - start

    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(min(concurrency, calls))))
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timed(wall, cpu, latencies, failures)


def drive_threads(call: SyncCall, calls: int, concurrency: int) -> Timed:
    """``concurrency`` threads, started before the clock, each taking the next call."""
    latencies = [0.0] * calls
    failures: list[str] = []
    indices = iter(range(calls))
    lock = threading.Lock()
    go = threading.Event()

    def lane() -> None:
        go.wait()
        while True:
            with lock:
                i = next(indices, -1)
            if i < 0:
                return
            start = time.perf_counter()
            try:
                call(i)
            except Exception as exc:
                with lock:
                    failures.append(describe(exc))
            latencies[i] = time.perf_counter() - start

    threads = [threading.Thread(target=lane) for _ in range(min(concurrency, calls))]
    for thread in threads:
        thread.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    go.set()
    for thread in threads:
        thread.join()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return Timed(wall, cpu, latencies, failures)


def describe(exc: BaseException) -> str:
    status = getattr(exc, "status_code", None)
    text = f"{type(exc).__name__}" + (f" {status}" if status else "")
    return f"{text}: {str(exc)[:160]}"


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100.0 * len(sorted_values)))
    return sorted_values[rank - 1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux
