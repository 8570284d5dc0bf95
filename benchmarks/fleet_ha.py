"""Fleet scenarios on the Redis that production runs: Sentinel and Cluster, and their failovers.

    PYTHONPATH=. .venv/bin/python -m benchmarks fleet-ha           # ~3 minutes on 2 cores
    PYTHONPATH=. .venv/bin/python -m benchmarks fleet-ha --quick   # a smoke run

Writes ``FLEET_HA.md`` and ``fleet_ha.json`` into ``--out`` (default: this folder).

* ``fleet_ha_throughput``: one process, ``generate`` at concurrency 64 against a limit too
  high to matter: the in-process gate, then the shared gate on one ``redis-server``, on
  Sentinel (its master) and on Cluster, in 7 alternating rounds (this machine is shared:
  single rounds vary 0.5x to 1x); requests per second and each
  shared gate's ratio to the in-process gate's, medians of the rounds.
* ``fleet_gap``: 4 processes x 100 named generates (32 at a time each) under 40 requests
  per 1-second window (420, reset header only), on one budget: with no fault, and with a
  fault once every process is listed in the budget's members and 2 seconds more have
  passed: one ``redis-server`` SIGSTOPped for 5 seconds; the Sentinel master SIGKILLed (a
  replica promoted, ``down-after`` 1 s); the master of the budget's slot SIGKILLed on a
  Cluster (its replica promoted, node timeout 1 s). Requests sent and rejected come from
  the processes' ``client.stats``; the log lines are the library's, timed from the fault.

Fake server, Redis servers and clients each run in their own processes, on free loopback
ports. Nothing is judged here: the figures are written down.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.gates import ACCOUNT_URL, WORKER, fake_server, generates
from benchmarks.redis_ha import Cluster, Sentinels, Standalone, client, wait_until
from cldprov_async._fleet import budget_tag, fleet_key

KINDS = ("standalone", "sentinel", "cluster")


@contextmanager
def topology(kind: str) -> Iterator[Any]:
    with tempfile.TemporaryDirectory() as workdir:
        topo: Any
        if kind == "sentinel":
            topo = Sentinels(Path(workdir)).start()
        elif kind == "cluster":
            topo = Cluster(Path(workdir)).start()
        else:
            topo = Standalone().start()
        try:
            yield topo
        finally:
            topo.stop()


def members_key(server_url: str) -> str:
    host = server_url.split("//", 1)[1].rstrip("/")
    return fleet_key(budget_tag("", host, "fake-account"), "members")


def members(kind: str, topo: Any, key: str) -> int:
    """How many processes the budget lists (read from whichever node holds the key)."""
    if kind == "cluster":
        port = topo.master_of(key)
    elif kind == "sentinel":
        port = topo.master_port()
    else:
        port = topo.port
    return int(client(port).zcard(key))


def fault(kind: str, topo: Any, key: str) -> dict[str, Any]:
    """Break the Redis holding ``key``; returns what was done and when it healed."""
    started = time.time()
    if kind == "standalone":
        topo.server.signal(signal.SIGSTOP)  # answers nothing, closes nothing
        time.sleep(5.0)
        topo.server.signal(signal.SIGCONT)
        return {"fault": "SIGSTOP 5 s", "at": started, "healed_after_s": time.time() - started}
    if kind == "sentinel":
        old = topo.kill_master()
        new = topo.wait_promoted(old)
    else:
        old = topo.master_of(key)
        topo.node(old).kill()
        new = topo.wait_promoted(key, old)
    return {
        "fault": f"SIGKILL of the master {old}",
        "promoted": new,
        "at": started,
        "healed_after_s": time.time() - started,
    }


def fleet_run(kind: str, with_fault: bool, n: int = 100, procs: int = 4) -> dict[str, Any]:
    with topology(kind) as topo, fake_server("--rate-limit", "40/1") as url:
        env = {**os.environ, "CLOUDINARY_ACCOUNT_URL": ACCOUNT_URL}
        opts = {"server_url": url, "max_wait": 60.0, "mode": "generate", "n": n}
        opts |= {"concurrency": 32, "rate_limit_url": topo.url()}
        workers = [
            subprocess.Popen(
                [sys.executable, WORKER, json.dumps({**opts, "tag": f"p{i}"})],
                stdout=subprocess.PIPE,
                env=env,
                text=True,
            )
            for i in range(procs)
        ]
        try:
            done: dict[str, Any] = {"fault": None}
            if with_fault:
                key = members_key(url)
                wait_until(lambda: members(kind, topo, key) >= procs, "every process to start")
                time.sleep(2.0)
                done = fault(kind, topo, key)
            outs = []
            for proc in workers:
                out, _ = proc.communicate(timeout=300)
                outs.append(json.loads(out.strip().splitlines()[-1]))
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                    proc.communicate()
    started = min(o["start_epoch"] for o in outs)
    at = done.pop("at", None) or started
    sent = sum(o["sent"] for o in outs)
    return {
        "scenario": "fleet_gap",
        "redis": kind,
        **done,
        "processes": procs,
        "calls": n * procs,
        "limit": 40,
        "window": 1.0,
        "ok": sum(o["ok"] for o in outs),
        "sent": sent,
        "rejected": sum(o["rejected"] for o in outs),
        "rejected_pct": 100.0 * sum(o["rejected"] for o in outs) / max(1, sent),
        "wall_s": max(o["start_epoch"] + o["wall"] for o in outs) - started,
        "per_process": [
            {
                "ok": o["ok"],
                "failed": len(o["failed"]),
                "sent": o["sent"],
                "rejected": o["rejected"],
                "longest_call_s": o["max_call"],
                # the library's lines but its per-attempt retries, timed from the fault
                "log": [
                    [round(t - at, 3), level, text]
                    for t, level, text in o["log"]
                    if not text.startswith("retrying")
                ],
                "retries_logged": sum(text.startswith("retrying") for _t, _l, text in o["log"]),
            }
            for o in outs
        ],
    }


def gaps(n: int = 100, procs: int = 4) -> list[dict[str, Any]]:
    runs = [("sentinel", False), ("cluster", False)]
    runs += [("standalone", True), ("sentinel", True), ("cluster", True)]
    return [fleet_run(kind, with_fault, n, procs) for kind, with_fault in runs]


def throughput(n: int = 2000, concurrency: int = 64, rounds: int = 7) -> list[dict[str, Any]]:
    rps: dict[str, list[float]] = {"in-process": [], **{k: [] for k in KINDS}}
    with fake_server("--rate-limit", "1000000/1") as url:
        with topology("standalone") as one, topology("sentinel") as sen:
            with topology("cluster") as clu:
                urls = {"standalone": one.url(), "sentinel": sen.url(), "cluster": clu.url()}
                for _ in range(rounds):  # alternating, so drift hits all alike
                    rps["in-process"].append(asyncio.run(generates(url, n, concurrency, None)))
                    for kind in KINDS:
                        rps[kind].append(asyncio.run(generates(url, n, concurrency, urls[kind])))
    local = rps["in-process"]
    return [
        {
            "scenario": "fleet_ha_throughput",
            "calls": n,
            "concurrency": concurrency,
            "rounds": rounds,
            "in_process_rps": statistics.median(local),
            **{f"{k}_rps": statistics.median(rps[k]) for k in KINDS},
            **{
                f"{k}_over_in_process": statistics.median(
                    s / lo for s, lo in zip(rps[k], local, strict=True)
                )
                for k in KINDS
            },
        }
    ]


def run_all(small: bool = False) -> list[dict[str, Any]]:
    if small:
        return [*throughput(n=200, rounds=1), fleet_run("sentinel", False, n=10, procs=2)]
    return [*throughput(), *gaps()]


def report(records: list[dict[str, Any]]) -> str:
    """FLEET_HA.md: the figures of one run, as tables."""
    out = [
        "# The fleet's budget on Sentinel and Cluster",
        "",
        f"One run, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores,"
        f" Python {sys.version.split()[0]}. Reproduce: `python -m benchmarks fleet-ha`.",
        "",
    ]
    for r in (r for r in records if r["scenario"] == "fleet_ha_throughput"):
        out += [
            f"Throughput, one process, {r['calls']} generates at concurrency"
            f" {r['concurrency']}, a limit too high to matter (median of {r['rounds']}"
            " alternating rounds):",
            "",
            "| gate | requests/s | over the in-process gate |",
            "|---|---|---|",
            f"| in-process | {r['in_process_rps']:.0f} | 1.00x |",
        ]
        out += [
            f"| shared, {k} | {r[f'{k}_rps']:.0f} | {r[f'{k}_over_in_process']:.2f}x |"
            for k in KINDS
        ]
        out.append("")
    gaps_run = [r for r in records if r["scenario"] == "fleet_gap"]
    if gaps_run:
        out += [
            "4 processes x 100 named generates (32 at a time each) on one budget of 40 per"
            " 1-second window (420): the fault comes 2 s after every process is listed in the"
            " budget's members. Requests sent and rejected from the processes' `client.stats`.",
            "",
            "| Redis | fault | healed after | ok | sent | rejected | per process: sent"
            " (rejected) | longest call | wall |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in gaps_run:
            healed = f"{r['healed_after_s']:.1f} s" if r.get("healed_after_s") else "-"
            each = ", ".join(f"{p['sent']} ({p['rejected']})" for p in r["per_process"])
            longest = max(p["longest_call_s"] for p in r["per_process"])
            out.append(
                f"| {r['redis']} | {r['fault'] or 'none'} | {healed} | {r['ok']}/{r['calls']}"
                f" | {r['sent']} | {r['rejected']} ({r['rejected_pct']:.1f}%) | {each}"
                f" | {longest:.1f} s | {r['wall_s']:.1f} s |"
            )
        out += ["", "The library's log lines in the runs with a fault (from the fault):", ""]
        for r in (r for r in gaps_run if r["fault"]):
            out.append(f"- {r['redis']}, {r['fault']}:")
            for i, p in enumerate(r["per_process"]):
                for t, level, text in p["log"]:
                    out.append(f"  - p{i} {t:+.2f} s {level}: {text}")
        out.append("")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks fleet-ha", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: seconds")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    args = parser.parse_args(argv)
    records = run_all(small=args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "fleet_ha.json").write_text(json.dumps(records, indent=1) + "\n")
    (args.out / "FLEET_HA.md").write_text(report(records))
    print(report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
