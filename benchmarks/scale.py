"""Rotation at account scale, measured: ``cldprov-async rotate --all`` as a real process over
thousands of product environments on the fake server, under an hourly-style limit scaled
down to one-second windows, and a run killed with SIGKILL at a random point then resumed.

Reported, from one run (nothing asserted here; the tests check correctness at small size):

* wall time against the least possible, ``requests needed / budget`` (the requests a
  rotation needs at the server's limit per window), as a ratio;
* whether every environment was rotated (exactly one enabled key, the new one);
* the process's peak RSS for the full size and for a tenth of it (memory flat: the run
  keeps no per-environment results with ``--jsonl``);
* the SIGKILL run: when it was killed, how many environments had finished, and whether the
  same command run again left exactly one new enabled key per environment and every old key
  retired, with no extra key created.

Usage: ``python -m benchmarks scale`` (5,000 environments, 400 requests per 1-second window;
about two minutes) or ``--quick`` (CI size: seconds). Writes ``SCALE.md`` and
``scale.json`` into ``--out`` (default: this folder).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from cldprov_async.testing import FakeProvisioningServer, RateLimitPolicy

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
KEYS = 2  # old keys per environment: list + generate + 2 retirements = 4 requests each
ACCOUNT_URL = "account://fake-key:fake-secret@fake-account"


def server_for(n: int, limit: int, journal: bool = False) -> FakeProvisioningServer:
    server = FakeProvisioningServer(
        sub_accounts=(),
        keys_per_sub_account=KEYS,
        rate_limit=RateLimitPolicy(limit=limit, window=1.0),
        keep_journal=journal,
        seed=1,
    )
    for i in range(n):
        server.add_sub_account(f"env-{i:05d}", name=f"Product environment {i}")
    return server


def start(server: FakeProvisioningServer, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL,
    }
    # Nothing else calls this account, so the rotation may use whole windows: no reserve.
    cmd = [
        *(sys.executable, "-m", "cldprov_async", "--server-url", server.url),
        *("--bulk-reserve", "0", "rotate", *args),
    ]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )


def _high_water_mib(pid: int) -> float | None:
    """The process's peak RSS so far (``VmHWM``: reset by exec, unlike ``ru_maxrss``, which
    keeps the forking parent's size, here the fake server's)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def finish(proc: subprocess.Popen[str]) -> tuple[int, float, int]:
    """(exit status, peak RSS in MiB, JSON lines printed) of a started run."""
    assert proc.stdout is not None
    peak = [0.0]

    def watch() -> None:
        while proc.returncode is None:
            seen = _high_water_mib(proc.pid)
            if seen is None:
                return
            peak[0] = max(peak[0], seen)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    lines = sum(1 for _ in proc.stdout)  # stdout closes as the process exits
    seen = _high_water_mib(proc.pid)  # a zombie keeps no memory: read before reaping
    peak[0] = max(peak[0], seen or 0.0)
    proc.stdout.close()
    proc.wait()
    watcher.join()
    return proc.returncode, peak[0], lines


def invariant(server: FakeProvisioningServer, n: int, name: str) -> dict[str, int]:
    """Per environment: exactly one enabled key, the new one, and every old key retired."""
    bad = extra = 0
    for i in range(n):
        keys = server.keys(f"env-{i:05d}")
        new = [k for k in keys if k.name == name]
        extra += max(0, len(new) - 1)
        if len(new) != 1 or [k.name for k in keys if k.enabled] != [name] or len(keys) != KEYS + 1:
            bad += 1
    return {"environments_wrong": bad, "duplicate_new_keys": extra}


def full_run(n: int, limit: int, concurrency: int) -> dict[str, Any]:
    server = server_for(n, limit, journal=True)
    with server.run_in_thread():
        started = time.monotonic()
        proc = start(
            server, "--all", "--jsonl", "--name", "bench", "--concurrency", str(concurrency)
        )
        status, rss, lines = finish(proc)
        wall = time.monotonic() - started
        stats = server.stats
        requests = n * (2 + KEYS) + 1  # the listing, then per environment
        least = requests / limit
        per_window = Counter(int(e.time) for e in server.journal if e.status not in (420, 429))
        inner = [per_window[w] for w in sorted(per_window)[1:-1]]  # whole windows only
        return {
            "environments": n,
            "limit_per_second": limit,
            "concurrency": concurrency,
            "exit_status": status,
            "results_printed": lines,
            "requests_needed": requests,
            "requests_received": stats.received,
            "rejected_by_rate_limit": stats.rate_limited,
            "wall_s": round(wall, 2),
            "least_possible_s": round(least, 2),
            "ratio": round(wall / least, 3),
            "peak_rss_mib": round(rss, 1),
            "whole_windows": len(inner),
            "whole_windows_filled": sum(c >= limit for c in inner),
            "least_filled_window": min(inner, default=0),
            "keys_created": server.keys_created,
            **invariant(server, n, "bench"),
        }


def killed_run(n: int, limit: int, concurrency: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    server = server_for(n, limit)
    args = ["--all", "--jsonl", "--name", "resumed", "--concurrency", str(concurrency)]
    with server.run_in_thread():
        least = (n * (2 + KEYS) + 1) / limit
        started = time.monotonic()
        proc = start(server, *args)
        assert proc.stdout is not None
        proc.stdout.readline()  # under way
        # Read on, as a consumer of --jsonl does: a full pipe would pause the run.
        reader = threading.Thread(target=lambda: sum(1 for _ in proc.stdout or ()), daemon=True)
        reader.start()
        time.sleep(rng.uniform(0.0, 0.8 * least))
        killed_at = time.monotonic() - started
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        reader.join()
        proc.stdout.close()
        done_before = sum(
            1
            for i in range(n)
            if [k.name for k in server.keys(f"env-{i:05d}") if k.enabled] == ["resumed"]
        )
        status, _, lines = finish(start(server, *args))
        return {
            "environments": n,
            "seed": seed,
            "killed_after_s": round(killed_at, 2),
            "killed_exit": proc.returncode,
            "fully_rotated_before_resume": done_before,
            "resume_exit_status": status,
            "resume_results_printed": lines,
            "keys_created": server.keys_created,
            **invariant(server, n, "resumed"),
        }


def report(data: dict[str, Any]) -> str:
    full, small, kill = data["full"], data["tenth"], data["killed"]
    lines = [
        "# Rotation at account scale",
        "",
        f"One run, {data['when']}, {data['machine']}. Reproduce: `python -m benchmarks scale"
        f"{' --quick' if data['quick'] else ''}`.",
        "",
        f"`cldprov-async rotate --all --jsonl` over {full['environments']:,} product environments"
        f" ({KEYS} old keys each: 4 requests per environment) on the fake server limited to"
        f" {full['limit_per_second']} requests per 1-second window, `--concurrency"
        f" {full['concurrency']}`.",
        "",
        "| environments | wall | least possible (requests / budget) | ratio | rejected (420) |"
        " all rotated | peak RSS | whole windows used to the limit |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in (small, full):
        ok = run["environments_wrong"] == 0 and run["exit_status"] == 0
        lines.append(
            f"| {run['environments']:,} | {run['wall_s']} s | {run['least_possible_s']} s"
            f" ({run['requests_needed']:,} / {run['limit_per_second']}/s) | {run['ratio']}x |"
            f" {run['rejected_by_rate_limit']} | {'yes' if ok else 'NO'} |"
            f" {run['peak_rss_mib']} MiB | {run['whole_windows_filled']} of"
            f" {run['whole_windows']} (least: {run['least_filled_window']}) |"
        )
    lines += [
        "",
        f"SIGKILL at a random point (seed {kill['seed']}): {kill['environments']:,} environments,"
        f" killed after {kill['killed_after_s']} s with {kill['fully_rotated_before_resume']:,}"
        " fully rotated; the same command run again exited"
        f" {kill['resume_exit_status']} and left {kill['environments_wrong']} environment(s)"
        f" wrong and {kill['duplicate_new_keys']} duplicate new key(s); keys created in all:"
        f" {kill['keys_created']:,} for {kill['environments']:,} environments.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks scale", description=__doc__.splitlines()[0]
    )
    p.add_argument("--quick", action="store_true", help="CI size: 200 environments")
    p.add_argument("--environments", type=int)
    p.add_argument("--limit", type=int, help="requests per 1-second window (400)")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, help="of the SIGKILL point (random by default)")
    p.add_argument("--out", type=Path, default=HERE)
    args = p.parse_args(argv)
    n = args.environments or (200 if args.quick else 5000)
    limit = args.limit or (200 if args.quick else 400)
    seed = args.seed if args.seed is not None else random.randrange(1_000_000)
    data: dict[str, Any] = {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} cores, Python {platform.python_version()}",
        "quick": args.quick,
        "tenth": full_run(max(1, n // 10), limit, args.concurrency),
        "full": full_run(n, limit, args.concurrency),
        "killed": killed_run(max(1, n // 5), limit, args.concurrency, seed),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scale.json").write_text(json.dumps(data, indent=2) + "\n")
    (args.out / "SCALE.md").write_text(report(data))
    print(report(data))
    return 0
