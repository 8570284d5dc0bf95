"""Where cldprov_async's CPU per call goes, layer by layer.

    PYTHONPATH=. .venv/bin/python -m benchmarks micro            # both parts
    PYTHONPATH=. .venv/bin/python -m benchmarks micro --parts    # the pieces only (no server)

Two views, both in client CPU microseconds per call:

* **ladder**: end-to-end loops against a server in its own process (by default
  ``benchmarks.canned``, which answers in microseconds so the client is always the
  bottleneck and its CPU per call is its own), from the raw aiohttp loop up to cldprov_async,
  adding one thing per rung (a session without aiohttp's timeout, an empty client
  middleware, a per-attempt ``asyncio.timeout``...). The step between two rungs is what that
  thing costs. Rungs alternate over ``--repeats`` passes; each figure is the median.
* **parts**: the library's own pieces timed in isolation (``timeit``, best of 5): request
  validation, JSON encoding, the rate-limit bookkeeping, structuring the answer into models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, asynccontextmanager
from typing import Any

from benchmarks.clients import Target, generate_body, ours, raw
from benchmarks.servers import Server, fake_server, serve
from benchmarks.settings import ACCOUNT, KEY, SECRET, SUB
from benchmarks.timing import drive_async

Call = Callable[[int], Awaitable[object]]
Rung = Callable[[Target, str], Any]


@asynccontextmanager
async def raw_variant(
    target: Target, op: str, *, no_timeout: bool, middleware: str | None, fresh_url: bool = False
) -> AsyncIterator[Call]:
    """The raw loop, with our session's settings added one at a time."""
    import aiohttp
    from aiohttp import ClientHandlerType, ClientRequest, ClientResponse
    from yarl import URL

    async def empty(req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        return await handler(req)

    async def timed(req: ClientRequest, handler: ClientHandlerType) -> ClientResponse:
        async with asyncio.timeout(30.0):
            resp = await handler(req)
            await resp.read()
            return resp

    headers = {
        "Authorization": aiohttp.encode_basic_auth(target.api_key, target.api_secret),
        "Accept": "application/json",
        "User-Agent": "micro/0",
    }
    json_headers = {**headers, "Content-Type": "application/json"}
    url = URL(target.keys_url)
    base, path = URL(target.url), url.raw_path
    kwargs: dict[str, Any] = {"connector": aiohttp.TCPConnector(limit=100)}
    if no_timeout:
        kwargs["timeout"] = aiohttp.ClientTimeout(total=None)
    if middleware is not None:
        kwargs["middlewares"] = ({"empty": empty, "timeout": timed}[middleware],)
    async with aiohttp.ClientSession(**kwargs) as session:

        async def call(i: int) -> object:
            body = json.dumps(generate_body(i)).encode() if op == "generate" else None
            method = "POST" if op == "generate" else "GET"
            async with session.request(
                method,
                base.with_path(path, encoded=True) if fresh_url else url,
                data=body,
                headers=headers if body is None else json_headers,
                allow_redirects=False,
            ) as resp:
                return json.loads(await resp.read())

        yield call


def _rung(no_timeout: bool, middleware: str | None, fresh_url: bool = False) -> Rung:
    def make(target: Target, op: str) -> Any:
        return raw_variant(
            target, op, no_timeout=no_timeout, middleware=middleware, fresh_url=fresh_url
        )

    return make


@asynccontextmanager
async def ours_without_timeout(target: Target, op: str) -> AsyncIterator[Call]:
    """cldprov_async with ``timeout=None``: no per-attempt timer."""
    from cldprov_async import CldProvisioning, Security

    security = Security(
        provisioning_api_key=target.api_key, provisioning_api_secret=target.api_secret
    )
    client = CldProvisioning(target.account_id, security, server_url=target.url, timeout=None)
    async with client:
        api = client.access_keys

        async def call(i: int) -> object:
            if op == "generate":
                return await api.generate(target.sub_account, generate_body(i))
            return await api.list({"sub_account_id": target.sub_account})

        yield call


RUNGS: dict[str, Rung] = {
    "raw loop (the benchmark's floor)": raw,
    "+ session timeout=None (as ours)": _rung(True, None),
    "+ an empty client middleware": _rung(True, "empty"),
    "+ asyncio.timeout and read in it": _rung(True, "timeout"),
    "+ a new yarl URL per call": _rung(True, "timeout", fresh_url=True),
    "cldprov_async, timeout=None": ours_without_timeout,
    "cldprov_async": ours,
}


async def _cpu_per_call(rung: Rung, target: Target, op: str, calls: int, conc: int) -> float:
    async with rung(target, op) as call:
        timed = await drive_async(call, calls, conc)
    if timed.failures:
        raise RuntimeError(f"{len(timed.failures)} calls failed: {timed.failures[0]}")
    return timed.cpu / calls * 1e6


def _server(kind: str) -> AbstractContextManager[Server]:
    if kind == "canned":
        return serve("benchmarks.canned", announce="CANNED_URL")
    return fake_server("--sub-account", SUB, "--keys-per-sub-account", "3")


def ladder(ops: Sequence[str], calls: int, concurrency: int, repeats: int, kind: str) -> None:
    for op in ops:
        samples: dict[str, list[float]] = {name: [] for name in RUNGS}
        for n in range(repeats):
            names = list(RUNGS) if n % 2 == 0 else list(RUNGS)[::-1]
            for name in names:
                with _server(kind) as server:  # fresh: generate grows the fake's state
                    target = Target(server.url, ACCOUNT, KEY, SECRET, SUB)
                    run = _cpu_per_call(RUNGS[name], target, op, calls, concurrency)
                    samples[name].append(asyncio.run(run))
        print(
            f"\n{op} against the {kind} server, concurrency {concurrency}, {calls} calls,"
            f" median of {repeats} (client CPU per call):"
        )
        previous = None
        for name, values in samples.items():
            value = statistics.median(values)
            step = "" if previous is None else f"  ({value - previous:+6.1f})"
            print(f"  {name:40} {value:7.1f} µs/call{step}")
            previous = value


def _best(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def parts() -> None:
    from datetime import datetime

    from multidict import CIMultiDict, CIMultiDictProxy

    from cldprov_async import RetryConfig
    from cldprov_async._converter import converter, unstructure
    from cldprov_async._gate import RateLimiter
    from cldprov_async._middleware import CallContext
    from cldprov_async._operation import segment as _segment
    from cldprov_async._snapshot import parse_rate_limit
    from cldprov_async.models import (
        AccessKey,
        AccessKeyRequest,
        AccessKeysResponse,
        GetAccessKeysRequest,
        coerce_request,
    )

    stamp = "2026-11-26T14:58:30Z"
    key = {
        "name": "key-1",
        "api_key": "123456789012345",
        "api_secret": "abcdefghijklmnopqrstuvwxyz0",
        "created_at": stamp,
        "updated_at": stamp,
        "enabled": True,
    }
    listing = {"access_keys": [dict(key) for _ in range(3)], "total": 3}
    listing_bytes = json.dumps(listing).encode()
    request = AccessKeyRequest(name="bench-1", enabled=True)
    plain = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "Server": "x"}))
    limited = CIMultiDictProxy(
        CIMultiDict(
            {
                "X-FeatureRateLimit-Limit": "40",
                "X-FeatureRateLimit-Remaining": "30",
                "X-FeatureRateLimit-Reset": "Tue, 18 Aug 2026 17:00:00 GMT",
            }
        )
    )

    def by_hand(d: dict[str, Any]) -> AccessKey:
        return AccessKey(
            d["name"],
            d["api_key"],
            datetime.fromisoformat(d["created_at"]),
            datetime.fromisoformat(d["updated_at"]),
            d["enabled"],
            d.get("api_secret"),
            tuple(d.get("dedicated_for", ())),
        )

    rows: list[tuple[str, Callable[[], object]]] = [
        ("json.loads of a 3-key listing (raw pays it too)", lambda: json.loads(listing_bytes)),
        (
            "converter.structure(listing, AccessKeysResponse)",
            lambda: converter.structure(listing, AccessKeysResponse),
        ),
        ("converter.structure(key, AccessKey)", lambda: converter.structure(key, AccessKey)),
        ("  for scale: AccessKey built by hand from the dict", lambda: by_hand(key)),
        (
            "coerce_request(GetAccessKeysRequest, {sub_account_id})",
            lambda: coerce_request(GetAccessKeysRequest, {"sub_account_id": SUB}, "request"),
        ),
        (
            "coerce_request(AccessKeyRequest, {name, enabled})",
            lambda: coerce_request(AccessKeyRequest, generate_body(1), "request"),
        ),
        ("json.dumps(unstructure(request)).encode()", lambda: json.dumps(unstructure(request))),
        ("  for scale: json.dumps(dict).encode()", lambda: json.dumps(generate_body(1)).encode()),
        ("_segment(sub_account_id)", lambda: _segment(SUB)),
        ("parse_rate_limit(headers without X-FeatureRateLimit-*)", lambda: parse_rate_limit(plain)),
        ("parse_rate_limit(headers with them)", lambda: parse_rate_limit(limited)),
    ]
    print("\nparts (best of 5, µs per call):")
    for label, fn in rows:
        print(f"  {label:58} {_best(fn, 20000):6.2f}")

    async def in_loop() -> None:
        loop = asyncio.get_running_loop()
        n = 20000
        retry = RetryConfig()

        async def with_timeout() -> None:
            # What the middleware adds around each attempt (the body is not timed here).
            async with asyncio.timeout(30.0):  # noqa: ASYNC100
                pass

        start = time.process_time()
        for _ in range(n):
            await with_timeout()
        each = (time.process_time() - start) / n * 1e6
        print(f"  {'async with asyncio.timeout(30.0) per attempt':58} {each:6.2f}")
        limiter = RateLimiter()
        call = CallContext(retry=retry, timeout=30.0, max_bytes=1, deadline=loop.time() + 60)
        limiter.on_answer(plain, 200)  # no budget announced: unlimited from now on
        start = time.process_time()
        for _ in range(n):
            await limiter.acquire(call.deadline, "GET", "/")
            limiter.on_answer(plain, 200)
        each = (time.process_time() - start) / n * 1e6
        print(f"  {'limiter.acquire + on_answer (no limit announced)':58} {each:6.2f}")

    asyncio.run(in_loop())


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks micro", description=__doc__)
    p.add_argument("--ops", default="list,generate")
    p.add_argument("--calls", type=int, default=6000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--parts", action="store_true", help="only the pieces, no server")
    p.add_argument(
        "--server",
        choices=("canned", "fake"),
        default="canned",
        help="canned (default): answers in microseconds, so the client is the bottleneck;"
        " fake: cldprov_async.testing, as the benchmark",
    )
    args = p.parse_args(argv)
    parts()
    if not args.parts:
        ladder(args.ops.split(","), args.calls, args.concurrency, args.repeats, args.server)
    return 0
