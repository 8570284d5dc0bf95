"""One client, one benchmark, in a process of its own; prints one JSON line of figures.

The runner (``benchmarks.run``) starts this module *before* the fake server is listening.
The worker first imports the client's libraries (import time is measured apart, not here),
then reads the server's URL from one line of stdin, prepares what the timed part needs
(``update`` needs existing api_keys: fetched with the standard library, untimed), times the
calls, and prints one JSON object on one line of stdout.

Scenarios:

* ``bench``: ``--calls`` calls of ``--op`` with ``--concurrency`` lanes, each lane taking the
  next call as soon as its previous one returns. Figures: wall time, client CPU
  (``time.process_time()`` around the calls only), per-call latency (p50, p99), peak RSS.
* ``ratelimit``: ``--calls`` concurrent ``generate`` calls against a rate-limited server;
  figures: wall time, calls that succeeded, requests sent and rejected (counted client side).
* ``rotation``: ``rotate_many`` over ``--envs`` product environments (cldprov_async only).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from benchmarks.clients import (
    ASYNC_CLIENTS,
    CLIENTS,
    MODULES,
    OPS,
    Target,
    classic,
    env_id,
    fetch_keys,
    generate_body,
    official_sdk,
)
from benchmarks.timing import describe, drive_async, drive_threads, peak_rss_mb, percentile

SCENARIOS = ("bench", "ratelimit", "rotation")


def version_of(client: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    dist = {
        "cldprov_async": "aiohttp",  # not installed as a distribution: see its __version__
        "raw": "aiohttp",
        "official": "cloudinary-account-provisioning",
        "classic": "cloudinary",
    }[client]
    if client == "cldprov_async":
        return str(importlib.import_module("cldprov_async").__version__)
    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


async def bench(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    if args.client == "classic":
        timed = drive_threads(classic(target, args.op), args.calls, args.concurrency)
    else:
        async with ASYNC_CLIENTS[args.client](target, args.op) as call:
            timed = await drive_async(call, args.calls, args.concurrency)
    ordered = sorted(timed.latencies)
    return {
        "wall_s": timed.wall,
        "cpu_s": timed.cpu,
        "calls_per_s": args.calls / timed.wall,
        "cpu_us_per_call": timed.cpu / args.calls * 1e6,
        "p50_ms": percentile(ordered, 50) * 1e3,
        "p99_ms": percentile(ordered, 99) * 1e3,
        "errors": len(timed.failures),
        "first_error": timed.failures[0] if timed.failures else None,
    }


# --- scenarios ------------------------------------------------------------------------------


async def ratelimit(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    """``--calls`` generates at once; count what the server turned away, client side."""
    outcomes: list[object]
    if args.client == "cldprov_async":
        from cldprov_async import CldProvisioning, Security

        security = Security(
            provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
        )
        async with CldProvisioning(target.account_id, security, server_url=target.url) as client:
            api = client.access_keys

            async def ours_one(i: int) -> object:
                return await api.generate(target.sub_account, generate_body(i))

            epoch, wall0 = time.time(), time.perf_counter()
            outcomes = await asyncio.gather(
                *(ours_one(i) for i in range(args.calls)), return_exceptions=True
            )
            wall = time.perf_counter() - wall0
            sent, rejected, retried = client.stats.sent, client.stats.rejected, client.stats.retried
    elif args.client == "official":
        import httpx

        counts: Counter[str] = Counter()

        async def on_request(request: httpx.Request) -> None:
            counts["sent"] += 1

        async def on_response(response: httpx.Response) -> None:
            if response.status_code in (420, 429):
                counts["rejected"] += 1

        http = httpx.AsyncClient(
            follow_redirects=True,  # as the SDK builds its own
            event_hooks={"request": [on_request], "response": [on_response]},
        )
        async with http, official_sdk(target, retry=True, http=http) as sdk:
            api = sdk.access_keys

            async def one(i: int) -> object:
                return await api.generate(
                    sub_account_id=target.sub_account, access_key_request=generate_body(i)
                )

            epoch, wall0 = time.time(), time.perf_counter()
            outcomes = await asyncio.gather(
                *(one(i) for i in range(args.calls)), return_exceptions=True
            )
            wall = time.perf_counter() - wall0
        sent, rejected, retried = counts["sent"], counts["rejected"], -1
    else:
        raise SystemExit(
            f"the ratelimit scenario runs cldprov_async or official, not {args.client}"
        )
    failures = Counter(describe(o).split(":")[0] for o in outcomes if isinstance(o, BaseException))
    return {
        "wall_s": wall,
        "start_epoch": epoch,
        "ok": sum(1 for o in outcomes if not isinstance(o, BaseException)),
        "failed": sum(failures.values()),
        "failures": dict(failures),
        "sent": sent,
        "rejected": rejected,
        "retried": retried,
    }


async def rotation(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    from cldprov_async import CldProvisioning, Security

    security = Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    ids = [env_id(i) for i in range(args.envs)]
    async with CldProvisioning(target.account_id, security, server_url=target.url) as client:
        epoch, wall0 = time.time(), time.perf_counter()
        results = await client.access_keys.rotate_many(ids, concurrency=args.concurrency)
        wall = time.perf_counter() - wall0
        stats = client.stats
    errors = Counter(describe(r.error).split(":")[0] for r in results if r.error is not None)
    return {
        "wall_s": wall,
        "start_epoch": epoch,
        "envs": len(ids),
        "ok": sum(1 for r in results if r.ok),
        "failed": sum(errors.values()),
        "failures": dict(errors),
        "new_keys": sum(1 for r in results if r.new_key is not None),
        "retired": sum(len(r.retired) for r in results),
        "sent": stats.sent,
        "rejected": stats.rejected,
        "retried": stats.retried,
        "waited_s": stats.waited_seconds,
    }


# --- main -----------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.worker", description=__doc__)
    p.add_argument("--scenario", choices=SCENARIOS, default="bench")
    p.add_argument("--client", choices=CLIENTS, required=True)
    p.add_argument("--op", choices=OPS, default="generate")
    p.add_argument("--calls", type=int, default=100)
    p.add_argument("--concurrency", type=int, default=1)
    p.add_argument("--envs", type=int, default=0)
    p.add_argument("--account-id", required=True)
    p.add_argument("--api-key", required=True)
    p.add_argument("--api-secret", required=True)
    p.add_argument("--sub-account", default="sub-1")
    p.add_argument("--url", help="the server's URL (default: read one line from stdin)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    for module in MODULES[args.client]:
        importlib.import_module(module)
    url = args.url or sys.stdin.readline().strip()
    if not url:
        print("no server URL on stdin", file=sys.stderr)
        return 2
    target = Target(url, args.account_id, args.api_key, args.api_secret, args.sub_account)
    if args.scenario == "bench" and args.op == "update":
        target = Target(**{**target.__dict__, "keys": fetch_keys(target)})
    run = {"bench": bench, "ratelimit": ratelimit, "rotation": rotation}[args.scenario]
    figures = asyncio.run(run(args, target))
    record = {
        "scenario": args.scenario,
        "client": args.client,
        "op": args.op,
        "calls": args.calls,
        "concurrency": args.concurrency,
        "version": version_of(args.client),
        "rss_mb": peak_rss_mb(),
        **figures,
    }
    print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
