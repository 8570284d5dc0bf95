"""Profile one client's calls against the fake server (in its own process).

    PYTHONPATH=. .venv/bin/python -m benchmarks profile --client cldprov_async --op list

Runs the same timed loop as the worker under pyinstrument (``pip install pyinstrument``;
without it, cProfile) and prints where the client's time goes. The figures are slower than
the benchmark's (a profiler costs CPU); read them as shares, not as absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import pstats
import sys
from collections.abc import Sequence

from benchmarks.clients import ASYNC_CLIENTS, OPS, Target, fetch_keys
from benchmarks.servers import fake_server
from benchmarks.settings import ACCOUNT, KEY, SECRET, SUB
from benchmarks.timing import drive_async


async def _loop(target: Target, client: str, op: str, calls: int, concurrency: int) -> None:
    async with ASYNC_CLIENTS[client](target, op) as call:
        await drive_async(call, calls, concurrency)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks profile", description=__doc__)
    p.add_argument("--client", choices=sorted(ASYNC_CLIENTS), default="cldprov_async")
    p.add_argument("--op", choices=OPS, default="generate")
    p.add_argument("--calls", type=int, default=6000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--interval", type=float, default=0.0002, help="pyinstrument sampling (s)")
    p.add_argument("--cprofile", action="store_true", help="use cProfile even with pyinstrument")
    args = p.parse_args(argv)
    with fake_server("--sub-account", SUB, "--keys-per-sub-account", "3") as server:
        target = Target(server.url, ACCOUNT, KEY, SECRET, SUB)
        if args.op == "update":
            target = Target(server.url, ACCOUNT, KEY, SECRET, SUB, fetch_keys(target))
        run = _loop(target, args.client, args.op, args.calls, args.concurrency)
        try:
            if args.cprofile:
                raise ImportError
            pyinstrument = importlib.import_module("pyinstrument")
        except ImportError:
            profile = cProfile.Profile()
            profile.enable()
            asyncio.run(run)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).sort_stats("tottime").print_stats(40)
            sys.stdout.write(out.getvalue())
            return 0
        profiler = pyinstrument.Profiler(interval=args.interval, async_mode="disabled")
        profiler.start()
        asyncio.run(run)
        profiler.stop()
        sys.stdout.write(profiler.output_text(unicode=True, show_all=False))
    return 0
