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
import base64
import contextlib
import importlib
import json
import math
import resource
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

CLIENTS = ("cldprov_async", "raw", "official", "classic")
OPS = ("generate", "list", "update")
#: Every operation a client can be driven through (``benchmarks.instructions`` counts them all).
ALL_OPS = (*OPS, "delete", "delete_by_name", "environments")
SCENARIOS = ("bench", "ratelimit", "rotation")

#: What each client needs imported before anything is timed.
MODULES: dict[str, tuple[str, ...]] = {
    "cldprov_async": ("cldprov_async",),
    "raw": ("aiohttp",),
    "official": ("cloudinary_account_provisioning", "httpx"),
    "classic": ("cloudinary", "cloudinary.provisioning"),
}

AsyncCall = Callable[[int], Awaitable[object]]
SyncCall = Callable[[int], object]


@dataclass(frozen=True)
class Target:
    url: str
    account_id: str
    api_key: str
    api_secret: str
    sub_account: str
    #: api_keys of the sub-account's existing keys (filled for ``update`` only).
    keys: tuple[str, ...] = ()

    @property
    def keys_url(self) -> str:
        return (
            f"{self.url}/v1_1/provisioning/accounts/{self.account_id}"
            f"/sub_accounts/{self.sub_account}/access_keys"
        )


# The same request bodies for every client.
def generate_body(i: int) -> dict[str, Any]:
    return {"name": f"bench-{i}", "enabled": True}


def update_body(i: int) -> dict[str, Any]:
    return {"name": f"upd-{i}", "enabled": i % 2 == 0}


#: ``list``'s request besides the id, as users pass it: enum members' string values.
LIST_QUERY = {"sort_by": "created_at"}


def fetch_keys(target: Target) -> tuple[str, ...]:
    """The sub-account's api_keys, with the standard library (outside the timed part)."""
    token = base64.b64encode(f"{target.api_key}:{target.api_secret}".encode()).decode()
    request = urllib.request.Request(
        target.keys_url, headers={"Authorization": f"Basic {token}", "Accept": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        data = json.loads(response.read())
    return tuple(str(key["api_key"]) for key in data["access_keys"])


# --- the clients --------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def ours(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """cldprov_async, as its README has users call it."""
    from cldprov_async import CldProvisioning, Security

    security = Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    async with CldProvisioning(target.account_id, security, server_url=target.url) as client:
        api, sub, keys = client.access_keys, target.sub_account, target.keys

        async def generate(i: int) -> object:
            return await api.generate(sub, generate_body(i))

        async def list_(i: int) -> object:
            return await api.list({"sub_account_id": sub, **LIST_QUERY})

        async def update(i: int) -> object:
            return await api.update(sub, keys[i % len(keys)], update_body(i))

        async def delete(i: int) -> object:
            return await api.delete(sub, keys[i % len(keys)])

        async def delete_by_name(i: int) -> object:
            return await api.delete_by_name(sub, f"bench-{i}")

        async def environments(i: int) -> object:
            return await client.product_environments.list(enabled=True)

        yield {
            "generate": generate,
            "list": list_,
            "update": update,
            "delete": delete,
            "delete_by_name": delete_by_name,
            "environments": environments,
        }[op]


@contextlib.asynccontextmanager
async def raw(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """The client-side floor: the same requests and headers, ``json.loads`` of the body, no models.

    One ``ClientSession`` with the same connection limit as cldprov_async's default (100).
    """
    import aiohttp
    from yarl import URL

    headers = {
        "Authorization": aiohttp.encode_basic_auth(target.api_key, target.api_secret),
        "Accept": "application/json",
        "User-Agent": f"bench-raw/0 aiohttp/{aiohttp.__version__} python/{sys.version.split()[0]}",
    }
    json_headers = {**headers, "Content-Type": "application/json"}
    collection = URL(target.keys_url)
    listed = collection.with_query(LIST_QUERY)
    key_urls = [URL(f"{target.keys_url}/{key}") for key in target.keys]
    envs = URL(target.keys_url.rpartition("/sub_accounts/")[0] + "/sub_accounts?enabled=true")
    connector = aiohttp.TCPConnector(limit=100)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send(method: str, url: URL, body: bytes | None) -> object:
            async with session.request(
                method,
                url,
                data=body,
                headers=headers if body is None else json_headers,
                allow_redirects=False,
            ) as resp:
                data = json.loads(await resp.read())
                if resp.status != 200:
                    raise RuntimeError(f"HTTP {resp.status}")
                return data

        async def generate(i: int) -> object:
            return await send("POST", collection, json.dumps(generate_body(i)).encode())

        async def list_(i: int) -> object:
            return await send("GET", listed, None)

        async def update(i: int) -> object:
            body = json.dumps(update_body(i)).encode()
            return await send("PUT", key_urls[i % len(key_urls)], body)

        async def delete(i: int) -> object:
            return await send("DELETE", key_urls[i % len(key_urls)], None)

        async def delete_by_name(i: int) -> object:
            return await send("DELETE", collection.with_query(name=f"bench-{i}"), None)

        async def environments(i: int) -> object:
            return await send("GET", envs, None)

        yield {
            "generate": generate,
            "list": list_,
            "update": update,
            "delete": delete,
            "delete_by_name": delete_by_name,
            "environments": environments,
        }[op]


def official_sdk(target: Target, *, retry: bool = False, http: Any = None) -> Any:
    """``AsyncCldProvisioning`` of cloudinary-account-provisioning, pointed at the fake."""
    import cloudinary_account_provisioning as cap
    from cloudinary_account_provisioning.utils import BackoffStrategy, RetryConfig

    kwargs: dict[str, Any] = {}
    if retry:
        # Its retries cover 429 and 5XX (honouring Retry-After), never 420.
        kwargs["retry_config"] = RetryConfig(
            "backoff", BackoffStrategy(500, 5000, 1.5, 60000), retry_connection_errors=False
        )
    if http is not None:
        kwargs["async_client"] = http
    security = cap.Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    return cap.AsyncCldProvisioning(
        account_id=target.account_id, security=security, server_url=target.url, **kwargs
    )


@contextlib.asynccontextmanager
async def official(target: Target, op: str) -> AsyncIterator[AsyncCall]:
    """cloudinary-account-provisioning 0.1.3, its async class with its defaults."""
    async with official_sdk(target) as sdk:
        api, sub, keys = sdk.access_keys, target.sub_account, target.keys

        async def generate(i: int) -> object:
            return await api.generate(sub_account_id=sub, access_key_request=generate_body(i))

        async def list_(i: int) -> object:
            return await api.list(request={"sub_account_id": sub})

        async def update(i: int) -> object:
            return await api.update(
                sub_account_id=sub,
                key=keys[i % len(keys)],
                access_key_update_request=update_body(i),
            )

        yield {"generate": generate, "list": list_, "update": update}[op]


def classic(target: Target, op: str) -> SyncCall:
    """The classic ``cloudinary`` SDK's provisioning functions (synchronous, urllib3).

    The base URL comes from the ``upload_prefix`` option; credentials go with each call.
    """
    import logging

    from cloudinary.provisioning import account

    # urllib3 keeps one pooled connection per host and logs a warning for each connection it
    # discards past that; unconfigured logging would print them all to stderr.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    options = {
        "upload_prefix": target.url,
        "account_id": target.account_id,
        "provisioning_api_key": target.api_key,
        "provisioning_api_secret": target.api_secret,
    }
    sub, keys = target.sub_account, target.keys

    def generate(i: int) -> object:
        return account.generate_access_key(sub, **generate_body(i), **options)

    def list_(i: int) -> object:
        return account.access_keys(sub, **options)

    def update(i: int) -> object:
        return account.update_access_key(sub, keys[i % len(keys)], **update_body(i), **options)

    call: SyncCall = {"generate": generate, "list": list_, "update": update}[op]
    return call


ASYNC_CLIENTS = {"cldprov_async": ours, "raw": raw, "official": official}


# --- timing -------------------------------------------------------------------------------------


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


def env_id(i: int) -> str:
    """The product environment ids of the rotation scenario (the runner makes the same)."""
    return f"env-{i:03d}"


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
