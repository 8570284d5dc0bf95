"""Fleet scenarios: the Redis-shared gate against in-process gates.

    PYTHONPATH=. .venv/bin/python -m benchmarks fleet            # just these, one JSON list
    PYTHONPATH=. .venv/bin/python -m benchmarks run --scenarios fleet   # in a full run

* ``fleet_gates``: 4 processes x 100 named generates (32 at a time each) under 40 requests
  per 1-second window (420, reset header only): each process with its own gate, then all on
  one Redis. Requests sent and rejected are summed from the processes' ``client.stats``.
* ``fleet_reserve``: a bulk ``rotate_many`` in one process, normal generates every 0.3 s in
  another (their ``max_wait`` 1 s, shorter than the 2-second window), with ``bulk_reserve``
  0.25 and 0: the normal calls' failures and latency, and the bulk side's share per window.
* ``fleet_throughput``: one process, ``generate`` at concurrency 64 against a limit too high
  to matter: the shared gate's requests per second over the in-process gate's.

Each measurement gets a fresh fake server and ``redis-server`` in their own processes on free
loopback ports; clients run in ``benchmarks/fleet_worker.py`` processes. Nothing is judged
here: the figures are written down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from typing import Any

from benchmarks.gates import ACCOUNT_URL, WORKER, fake_server, generates
from benchmarks.servers import redis_server


def _workers(url: str, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    env = {**os.environ, "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL}
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, json.dumps({"server_url": url, "max_wait": 60.0, **r})],
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        for r in runs
    ]
    outs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=300)
        outs.append(json.loads(out.strip().splitlines()[-1]))
    return outs


def gates(n: int = 100, procs: int = 4, limit: int = 40) -> list[dict[str, Any]]:
    records = []
    for label in ("in-process gates", "shared gate (Redis)"):
        with fake_server("--rate-limit", f"{limit}/1", "--rate-limit-status", "420") as url:
            with redis_server() as redis_url:
                shared = redis_url if label.startswith("shared") else None
                run = {"mode": "generate", "n": n, "concurrency": 32, "rate_limit_url": shared}
                outs = _workers(url, [{**run, "tag": f"p{i}"} for i in range(procs)])
        # From the first process's first call to the last one's end (interpreter start-up
        # excluded: it is not the gate's).
        started = min(o["start_epoch"] for o in outs)
        wall = max(o["start_epoch"] + o["wall"] for o in outs) - started
        records.append(
            {
                "scenario": "fleet_gates",
                "variant": label,
                "processes": procs,
                "calls": n * procs,
                "limit": limit,
                "window": 1.0,
                "start_epoch": started,
                "ok": sum(o["ok"] for o in outs),
                "sent": sum(o["sent"] for o in outs),
                "rejected": sum(o["rejected"] for o in outs),
                "wall_s": wall,
            }
        )
    return records


def reserve(subs: int = 24, limit: int = 40, window: float = 2.0) -> list[dict[str, Any]]:
    records = []
    for fraction in (0.25, 0.0):
        ids = [f"env-{i}" for i in range(subs)]
        args = [f"--sub-account={i}" for i in [*ids, "sub-1"]]
        args += ["--keys-per-sub-account", "3", "--rate-limit", f"{limit}/{window:g}"]
        with fake_server(*args) as url, redis_server() as redis_url:
            common = {"rate_limit_url": redis_url, "bulk_reserve": fraction}
            bulk, normal = _workers(
                url,
                [
                    {"mode": "rotate", "subs": ids, **common},
                    {
                        "mode": "paced",
                        "every": 0.3,
                        "seconds": 8.0,
                        "max_wait": 1.0,
                        "max_attempts": 2,
                        "sub": "sub-1",
                        "tag": "svc",
                        **common,
                    },
                ],
            )
        windows = max(1, math.ceil(bulk["wall"] / window))
        durations = normal["durations"]
        records.append(
            {
                "scenario": "fleet_reserve",
                "bulk_reserve": fraction,
                "limit": limit,
                "window": window,
                "normal_calls": normal["ok"] + len(normal["failed"]),
                "normal_failed": len(normal["failed"]),
                "normal_p50_s": statistics.median(durations) if durations else None,
                "normal_max_s": max(durations, default=None),
                "bulk_ok": bulk["ok"],
                "bulk_envs": subs,
                "bulk_sent": bulk["sent"],
                "bulk_wall_s": bulk["wall"],
                "bulk_share_used": bulk["sent"] / (windows * (limit - math.ceil(limit * fraction))),
                "rejected": bulk["rejected"] + normal["rejected"],
            }
        )
    return records


def throughput(n: int = 2000, concurrency: int = 64, rounds: int = 3) -> list[dict[str, Any]]:
    local_rps, shared_rps = [], []
    with fake_server("--rate-limit", "1000000/1") as url, redis_server() as redis_url:
        for _ in range(rounds):  # alternating, so drift hits both alike
            local_rps.append(asyncio.run(generates(url, n, concurrency, None)))
            shared_rps.append(asyncio.run(generates(url, n, concurrency, redis_url)))
    ratios = [s / lo for s, lo in zip(shared_rps, local_rps, strict=True)]
    return [
        {
            "scenario": "fleet_throughput",
            "calls": n,
            "concurrency": concurrency,
            "rounds": rounds,
            "in_process_rps": statistics.median(local_rps),
            "shared_rps": statistics.median(shared_rps),
            "shared_over_in_process": statistics.median(ratios),
        }
    ]


def run_all(small: bool = False) -> list[dict[str, Any]]:
    if small:
        return [*gates(n=10, procs=2), *throughput(n=100, rounds=1)]
    return [*gates(), *reserve(), *throughput()]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks fleet [--quick]``: these scenarios alone, as one JSON list."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks fleet",
        description="Processes sharing one budget through Redis; prints one JSON list.",
    )
    p.add_argument("--quick", action="store_true", help="a smoke-test size (seconds, not minutes)")
    args = p.parse_args(argv)
    print(json.dumps(run_all(small=args.quick), indent=1))
    return 0
