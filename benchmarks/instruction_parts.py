"""Instructions of the request path's pieces, each alone, counted by valgrind.

    PYTHONPATH=. .venv/bin/python -m benchmarks parts [--root SCRATCH_COPY]

The end-to-end count (``benchmarks.instructions``) says how far cldprov_async is from the
raw loop; this says what each piece of one call costs, so a candidate change can be priced
before it is made. One process runs every piece ``K1`` times (the base); one more process
per piece runs that piece ``K2`` times instead: its cost is
``(Ir(piece at K2) - Ir(base)) / (K2 - K1)`` instructions per use, less the same for a piece
that does nothing (the loop's own cost). Pieces that need an event loop run inside one (a
coroutine per use, as in a call). The collector runs as it would (start-up frozen out of it),
so a piece that allocates containers pays its share of collections.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import sys
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.instructions import VALGRIND, _env, read_cachegrind
from benchmarks.settings import ROOT

STAMP = "2026-11-26T14:58:30Z"
KEY = {
    "name": "key-1",
    "api_key": "123456789012345",
    "api_secret": "abcdefghijklmnopqrstuvwxyz0",
    "created_at": STAMP,
    "updated_at": STAMP,
    "enabled": True,
}


def pieces() -> dict[str, Callable[[], object]]:
    """name -> one use (a plain function, or one returning a coroutine to await)."""
    from contextvars import ContextVar

    from multidict import CIMultiDict, CIMultiDictProxy
    from yarl import URL

    from benchmarks.canned import BODIES, LIMIT, listing
    from cldprov_async import RetryConfig
    from cldprov_async import _telemetry as telemetry
    from cldprov_async._converter import converter, structure, unstructure
    from cldprov_async._gate import RateLimiter
    from cldprov_async._middleware import CallContext
    from cldprov_async._operation import call_options, segment
    from cldprov_async._slots import Slots
    from cldprov_async._snapshot import parse_rate_limit
    from cldprov_async._watchdog import Watchdog
    from cldprov_async.models import (
        AccessKey,
        AccessKeyRequest,
        AccessKeysResponse,
        GetAccessKeysRequest,
        ProductEnvironmentsResponse,
        SuccessResponse,
        coerce_request,
    )

    listing3 = json.loads(BODIES["keys"])
    text100 = listing(100)
    listing100 = json.loads(text100)
    key = json.loads(BODIES["key"])
    deleted = json.loads(BODIES["deleted"])
    envs = json.loads(BODIES["environments"])
    plain = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json", "Server": "x"}))
    budget = {
        "Content-Type": "application/json; charset=utf-8",
        "Content-Length": "1234",
        "Server": "canned",
        "X-FeatureRateLimit-Limit": str(LIMIT),
        "X-FeatureRateLimit-Remaining": str(LIMIT - 5),
        "X-FeatureRateLimit-Reset": "Tue, 18 Aug 2099 17:00:00 GMT",
    }
    limited = CIMultiDictProxy(CIMultiDict(budget))
    base = URL("http://127.0.0.1:8080")
    path = "/v1_1/provisioning/accounts/bench-account/sub_accounts/sub-1/access_keys"
    url = base.with_path(path, encoded=True)
    retry = RetryConfig()
    var: ContextVar[object] = ContextVar("piece", default=None)
    request = AccessKeyRequest(name="bench-1", enabled=True)
    unlimited = RateLimiter()
    unlimited._unlimited = True  # as after a first answer without rate-limit headers
    budgeted = RateLimiter()
    dog = Watchdog()
    slots = Slots(100)
    urls = {path: url, (path, (("sort_by", "created_at"),)): url}

    def context_var() -> None:
        token = var.set(retry)
        var.get()
        var.reset(token)

    async def empty() -> None:
        pass

    async def watch() -> None:
        with dog.watch(30.0):
            pass

    def slot() -> None:
        slots.take_now()
        slots.give()

    def gate(limiter: RateLimiter, headers: CIMultiDictProxy[str]) -> Callable[[], None]:
        def use() -> None:
            limiter.try_acquire(0.0)
            limiter.on_answer(headers, 200)

        return use

    async def gate_in_loop() -> None:
        loop = asyncio.get_running_loop()
        budgeted.try_acquire(loop.time())
        budgeted.on_answer(limited, 200)

    def telemetry_scope() -> None:
        telemetry.finish(telemetry.start("access_keys.list", "sub-1"), None)

    def query() -> object:
        req = coerce_request(
            GetAccessKeysRequest, {"sub_account_id": "sub-1", "sort_by": "created_at"}, "r"
        )
        return tuple(
            (k, str(v))
            for k, v in (
                ("page_size", req.page_size),
                ("page", req.page),
                ("sort_by", req.sort_by),
                ("sort_order", req.sort_order),
            )
            if v is not None
        )

    def s(data: object, cls: type) -> Callable[[], object]:
        return lambda: structure(data, cls, status=200, method="GET", path=path)

    return {
        "nothing: the loop's own cost, subtracted from the rest": lambda: None,
        "an empty coroutine, awaited (for scale)": empty,
        "watchdog.watch(30.0), entered and left": watch,
        "slots.take_now + give": slot,
        "ContextVar set + get + reset": context_var,
        "CallContext(...)": lambda: CallContext(retry, 30.0, 4 << 20, 1.0, False, "op", False),
        "telemetry start + finish (API, no SDK)": telemetry_scope,
        "call_options(None, None, None)": lambda: call_options(None, None, None),
        "list's query from {sub_account_id, sort_by}": query,
        "coerce_request(AccessKeyRequest, {name, enabled})": lambda: coerce_request(
            AccessKeyRequest, {"name": "bench-1", "enabled": True}, "access_key_request"
        ),
        "json.dumps(unstructure(request)).encode()": lambda: json.dumps(
            unstructure(request)
        ).encode(),
        "json.dumps({name, enabled}).encode() (raw pays it)": lambda: json.dumps(
            {"name": "bench-1", "enabled": True}
        ).encode(),
        "segment(sub_account_id)": lambda: segment("sub-1"),
        "URL cache lookup (path, query)": lambda: urls.get((path, (("sort_by", "created_at"),))),
        "URL.with_path(path, encoded=True)": lambda: base.with_path(path, encoded=True),
        "url.with_query(name=...)": lambda: url.with_query((("name", "bench-1"),)),
        "limiter.try_acquire + on_answer (unlimited)": gate(unlimited, plain),
        "limiter.try_acquire + on_answer (budget headers)": gate_in_loop,
        "parse_rate_limit(headers without a budget)": lambda: parse_rate_limit(plain),
        "parse_rate_limit(headers with a budget)": lambda: parse_rate_limit(limited),
        "structure(key, AccessKey)": s(key, AccessKey),
        "converter.structure(key, AccessKey)": lambda: converter.structure(key, AccessKey),
        "structure(3-key listing, AccessKeysResponse)": s(listing3, AccessKeysResponse),
        "structure(100-key listing, AccessKeysResponse)": s(listing100, AccessKeysResponse),
        "structure(delete's answer, SuccessResponse)": s(deleted, SuccessResponse),
        "structure(3 environments, ProductEnvironmentsResponse)": s(
            envs, ProductEnvironmentsResponse
        ),
        "json.loads(3-key listing) (raw pays it)": lambda: json.loads(BODIES["keys"]),
        "json.loads(100-key listing) (raw pays it)": lambda: json.loads(text100),
    }


async def _run(counts: dict[str, int]) -> None:
    table = pieces()
    gc.collect()
    gc.freeze()
    for name, fn in table.items():
        n = counts.get(name, 0)
        if n and asyncio.iscoroutine(first := fn()):
            await first
            for _ in range(n - 1):
                await fn()  # type: ignore[misc]
        else:
            for _ in range(n - 1):
                fn()


def child(argv: Sequence[str]) -> int:
    asyncio.run(_run(json.loads(argv[0])))
    return 0


def _count(counts: dict[str, int], out: Path, root: str) -> int:
    import subprocess

    command = [*VALGRIND, f"--cachegrind-out-file={out}", sys.executable, "-m"]
    command += ["benchmarks", "parts", "--child", json.dumps(counts)]
    done = subprocess.run(command, capture_output=True, env=_env(root), cwd=root, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(done.stderr.decode(errors="replace")[-2000:])
    return read_cachegrind(out.read_text())[""]


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks parts", description=__doc__)
    p.add_argument("--counts", default="200,1200", help="K1,K2 (default 200,1200)")
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--root", default=str(ROOT), help="import cldprov_async from this copy")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    k1, k2 = (int(v) for v in args.counts.split(","))
    names = list(pieces())
    import tempfile

    with tempfile.TemporaryDirectory() as scratch, ThreadPoolExecutor(args.jobs) as pool:
        base_counts = dict.fromkeys(names, k1)
        base = pool.submit(_count, base_counts, Path(scratch) / "base", args.root)
        each = {
            name: pool.submit(
                _count, {**base_counts, name: k2}, Path(scratch) / f"p{i}", str(args.root)
            )
            for i, name in enumerate(names)
        }
        costs: dict[str, Any] = {
            name: (future.result() - base.result()) / (k2 - k1) for name, future in each.items()
        }
    loop = costs.pop(names[0])
    costs = {name: cost - loop for name, cost in costs.items()}
    print(f"(the loop's own cost per use, subtracted: {loop:,.0f})")
    for name, cost in costs.items():
        print(f"{cost:10,.0f}  {name}")
    if args.json:
        args.json.write_text(json.dumps(costs, indent=1) + "\n")
    return 0
