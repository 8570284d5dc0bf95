"""The key cache, measured: what a daily ``rotate --all --older-than 90d`` and an ``audit``
cost in requests over thousands of environments when nothing (or little) changed.

Each run is ``cldprov-async`` as a real process against the fake server (served from a
thread of this process, no rate limit), with its own empty ``XDG_CACHE_HOME``; requests are
counted from what the server received. The sequence, for each store (the file; Redis too
when ``redis-server`` is installed):

1. ``rotate --all --older-than 90d`` on a cold cache, nothing due: the listing plus one key
   listing per environment;
2. the same again: the listing only;
3. the same after ``--changed`` environments were changed behind our back (half of them got a
   key added, half had a key disabled): the listing plus one key listing each;
4. ``audit`` (table) and ``audit --json`` with the warm cache: wall time of the process and
   requests.

Nothing is asserted here (``tests/test_benchmarks_key_cache.py`` checks the counts at a
small size). Usage: ``python -m benchmarks key-cache`` (5,000 environments, 50 changed) or
``--quick``. Writes ``KEY_CACHE.md`` and ``key_cache.json`` into ``--out`` (default: this
folder).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from benchmarks.servers import redis_server
from cldprov_async.testing import FakeProvisioningServer

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"
DAY = 86400.0
KEYS = 2  # per environment, each 1 to 80 days old: nothing is due at 90 days


def server_for(n: int, seed: int) -> FakeProvisioningServer:
    rng = random.Random(seed)
    server = FakeProvisioningServer(sub_accounts=(), keys_per_sub_account=0, seed=seed)
    now = time.time()
    for i in range(n):
        sub = f"env-{i:05d}"
        server.add_sub_account(sub, name=f"Product environment {i}")
        for _ in range(KEYS):
            server.add_key(sub, created_at=now - rng.uniform(1, 80) * DAY)
    return server


def cli(
    server: FakeProvisioningServer, cache_home: str, redis_url: str | None, *args: str
) -> dict[str, Any]:
    """One ``cldprov-async`` process: exit status, wall time, requests the server received,
    and what it printed (parsed: JSON lines or one document)."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL,
        "XDG_CACHE_HOME": cache_home,
    }
    env.pop("CLDPROV_RATE_LIMIT_URL", None)
    shared = ["--rate-limit-url", redis_url] if redis_url else []
    cmd = [sys.executable, "-m", "cldprov_async", "--server-url", server.url, *shared, *args]
    server.clear_journal()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "command": "cldprov-async " + " ".join(args),
        "exit_status": done.returncode,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "load_average": round(os.getloadavg()[0], 2),
        "requests": server.stats.received,
        "stdout": done.stdout,
        "stderr_tail": done.stderr[-500:],
    }


def change_behind_our_back(server: FakeProvisioningServer, n: int, changed: int) -> list[str]:
    """Half get a key added by hand, half have a key disabled by hand (through the API, as a
    person would; those requests are not counted in any run)."""
    subs = [f"env-{i:05d}" for i in random.Random(n).sample(range(n), changed)]
    added, disabled = subs[: changed // 2], subs[changed // 2 :]
    for sub in added:
        server.add_key(sub, name="added-by-hand")

    async def disable() -> None:
        async with server.client(key_cache=False) as client:
            for sub in disabled:
                await client.access_keys.update(
                    sub, server.keys(sub)[0].api_key, {"enabled": False}
                )

    asyncio.run(disable())
    return subs


def repeated(
    server: FakeProvisioningServer, home: str, redis: str | None, times: int, *args: str
) -> dict[str, Any]:
    """The run ``times`` times; the one of median wall time (with every wall time)."""
    runs = sorted(
        (cli(server, home, redis, *args) for _ in range(times)), key=lambda r: r["wall_s"]
    )
    middle = runs[len(runs) // 2]
    return {**middle, "walls_s": [r["wall_s"] for r in runs], "median_of": times}


def sequence(
    server: FakeProvisioningServer, n: int, changed: int, redis: str | None, times: int
) -> dict[str, Any]:
    home = tempfile.mkdtemp(prefix="cldprov-key-cache-")
    rotate = ["rotate", "--all", "--older-than", "90d", "--jsonl", "--concurrency", "16"]
    try:
        runs: dict[str, Any] = {"cold": cli(server, home, redis, *rotate)}
        runs["warm"] = cli(server, home, redis, *rotate)
        change_behind_our_back(server, n, changed)
        runs["changed"] = cli(server, home, redis, *rotate)
        runs["audit_table"] = repeated(server, home, redis, times, "audit")
        runs["audit_json"] = repeated(server, home, redis, times, "audit", "--json")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    for name in ("cold", "warm", "changed"):
        lines = [json.loads(line) for line in runs[name].pop("stdout").splitlines()]
        runs[name]["skipped"] = sum(r["status"] == "skipped" for r in lines)
        runs[name]["results"] = len(lines)
    runs["audit_table"].pop("stdout")
    doc = json.loads(runs["audit_json"].pop("stdout") or "{}")
    runs["audit_json"]["rows"] = len(doc.get("environments", ()))
    runs["audit_json"]["states"] = doc.get("summary", {}).get("states", {})
    return runs


def report(data: dict[str, Any]) -> str:
    n, changed = data["environments"], data["changed"]
    bounds = {
        "cold": f"{n + 1:,}",
        "warm": "2",
        "changed": f"{changed + 2:,}",
        "audit_table": "2",
        "audit_json": "2",
    }
    what = {
        "cold": "rotate --all --older-than 90d, cold cache",
        "warm": "the same again",
        "changed": f"the same, {changed} environments changed by hand",
        "audit_table": "audit (table), warm cache",
        "audit_json": "audit --json, warm cache",
    }
    lines = [
        "# The key cache: requests per run",
        "",
        f"One run, {data['when']}, {data['machine']}. Reproduce: `python -m benchmarks key-cache"
        f"{' --quick' if data['quick'] else ''}`.",
        "",
        f"{n:,} product environments with {KEYS} keys each, none older than 80 days (nothing due"
        " at 90 days); each run is a `cldprov-async` process against the fake server (no rate"
        " limit); requests are what the server received; wall is the whole process, start-up"
        " included; CPU is the process's user + system time (the machine is shared: the"
        " load average, taken after each run, says how busy it was).",
        "",
    ]
    for store, runs in data["stores"].items():
        lines += [
            f"## Cache in {store}",
            "",
            "| run | requests | the issue's bound | exit | wall | CPU | load average |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, run in runs.items():
            walls = run.get("walls_s")
            wall = f"{run['wall_s']} s" + (
                f" (median of {', '.join(map(str, walls))})" if walls else ""
            )
            lines.append(
                f"| {what[name]} | {run['requests']:,} | {bounds[name]} | {run['exit_status']} |"
                f" {wall} | {run['cpu_s']} s | {run['load_average']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks key-cache", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="CI size: 200 environments, 10 changed")
    p.add_argument("--environments", type=int)
    p.add_argument("--changed", type=int)
    p.add_argument("--no-redis", action="store_true", help="measure the file store only")
    p.add_argument("--seed", type=int, default=19)
    p.add_argument("--repeat", type=int, default=3, help="audits per output, median reported")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    n = args.environments or (200 if args.quick else 5000)
    changed = args.changed if args.changed is not None else (10 if args.quick else 50)
    stores: dict[str, Any] = {}
    with ExitStack() as stack:
        urls: dict[str, str | None] = {"a file": None}
        if not args.no_redis and shutil.which("redis-server"):
            urls["Redis"] = stack.enter_context(redis_server())
        for store, url in urls.items():
            with server_for(n, args.seed).run_in_thread() as server:
                stores[store] = sequence(server, n, changed, url, max(1, args.repeat))
    data: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "quick": args.quick,
        "environments": n,
        "changed": changed,
        "stores": stores,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "key_cache.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "KEY_CACHE.md").write_text(report(data))
    print(report(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
