"""Instructions per call, cldprov_async against the raw aiohttp loop, counted by valgrind.

    PYTHONPATH=. .venv/bin/python -m benchmarks instructions               # table + JSON
    PYTHONPATH=. .venv/bin/python -m benchmarks instructions --profile /tmp/prof   # + where

Timing a 20 % difference on a shared 2-core machine is noise (the raw loop alone wanders
83-130 µs per call). Instructions do not wander: each client runs in its own process under
``valgrind --tool=cachegrind --cache-sim=no`` against the instant server
(``benchmarks.canned``, its own process, not counted), at two call counts, so start-up,
imports and connection set-up cancel out::

    Ir per call = (Ir(N2) - Ir(N1)) / (N2 - N1)

Start-up's objects are frozen out of the garbage collector before the calls (``gc.freeze``):
otherwise a full collection, traversing every module and class, lands between N1 and N2 in
one run and not in the next.

Cases: ``generate``, ``list`` and ``update`` with 3-key listings, and ``list`` of 100 keys
(``list-100``), where parsing and model building dominate. The whole set is measured
``--repeats`` times (the clients' order alternating), so the table shows whether it repeats.

``--profile DIR`` keeps the cachegrind files and adds, per case, the C functions whose
instructions per call differ most between the two clients (the same two-count difference,
per function). Python 3.11 runs all Python code in ``_PyEval_EvalFrameDefault``, so Python
functions show only as interpreter work: attribute those by taking a piece away (a scratch
copy of the library, measured with ``--root``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.clients import Target, fetch_keys, ours, raw
from benchmarks.machine import git_state
from benchmarks.plain import plain
from benchmarks.report_instructions import instruction_table
from benchmarks.servers import serve
from benchmarks.settings import ACCOUNT, HERE, KEY, ROOT, SECRET, SUB
from benchmarks.timing import drive_async


def _plain(target: Target, op: str) -> Any:
    t = target
    return plain(t.url, t.account_id, t.api_key, t.api_secret, t.sub_account, t.keys, op)


#: Ours, the tight raw loop, and the independent plain-aiohttp loop (``benchmarks.plain``).
CLIENTS = {"cldprov_async": ours, "raw": raw, "plain": _plain}
#: The raw loop with one of our session's mechanisms added (``benchmarks.micro``'s rungs), to
#: price that mechanism alone: ``--clients raw+middleware`` etc. (``generate`` and ``list``).
RUNGS = {
    "raw+middleware": (True, "empty", False),
    "raw+timeout": (True, "timeout", False),
    "raw+url": (True, "timeout", True),
}
#: case -> (operation, keys per listing served)
CASES: dict[str, tuple[str, int]] = {
    "generate": ("generate", 3),
    "list": ("list", 3),
    "update": ("update", 3),
    "delete": ("delete", 3),
    "delete_by_name": ("delete_by_name", 3),
    "environments": ("environments", 3),
    "list-100": ("list", 100),
}
VALGRIND = ("valgrind", "--tool=cachegrind", "--cache-sim=no")


@dataclass
class Settings:
    cases: list[str] = field(default_factory=lambda: list(CASES))
    clients: list[str] = field(default_factory=lambda: list(CLIENTS))
    calls: tuple[int, int] = (500, 1500)
    concurrency: int = 64
    repeats: int = 2
    #: Client processes counted at the same time (counts do not depend on it).
    jobs: int = 2
    #: Where the library is imported from (a scratch copy, to measure a change to it).
    root: str = str(ROOT)


# --- the counted process -------------------------------------------------------------------


async def _calls(client: str, op: str, calls: int, concurrency: int, url: str) -> None:
    target = Target(url, ACCOUNT, KEY, SECRET, SUB)
    if op in ("update", "delete"):
        target = Target(url, ACCOUNT, KEY, SECRET, SUB, fetch_keys(target))
    if client in RUNGS:
        from benchmarks.micro import _rung

        make = _rung(*RUNGS[client])
    else:
        make = CLIENTS[client]
    async with make(target, op) as call:
        # Start-up's objects (every module, class and function) out of the collector's
        # reach: a full collection traverses them all, and whether one falls between N1 and
        # N2 would swing the difference by several percent. What the calls allocate is still
        # collected, and counted.
        gc.collect()
        gc.freeze()
        timed = await drive_async(call, calls, concurrency)
    if timed.failures:
        raise SystemExit(f"{len(timed.failures)} of {calls} calls failed: {timed.failures[0]}")


def child(argv: Sequence[str]) -> int:
    """``--child CLIENT OP CALLS CONCURRENCY URL``: the process valgrind counts."""
    client, op, calls, concurrency, url = argv
    asyncio.run(_calls(client, op, int(calls), int(concurrency), url))
    return 0


# --- counting ------------------------------------------------------------------------------


def _env(root: str) -> dict[str, str]:
    paths = [root, str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # A fixed hash seed: set and dict iteration orders, hence instruction counts, repeat.
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONHASHSEED": "0"}
    # No CA store: importing aiohttp makes its default TLS contexts, and loading the system's
    # certificates into them was about 40 % of a counted process's instructions (some
    # 470 million, seconds under valgrind). The calls go to the canned server over plain
    # HTTP, and start-up cancels out of the difference anyway.
    env.update(SSL_CERT_FILE=os.devnull, SSL_CERT_DIR=os.devnull)
    return env


def count(
    client: str, op: str, calls: int, url: str, settings: Settings, out: Path
) -> dict[str, int]:
    """Ir of one whole client process; per C function too (``"": total``)."""
    command = [*VALGRIND, f"--cachegrind-out-file={out}", sys.executable]
    command += ["-m", "benchmarks", "instructions", "--child", client, op, str(calls)]
    command += [str(settings.concurrency), url]
    # ``python -m`` puts the working directory first on sys.path: run where the library
    # under test is, so that ``--root`` wins over this checkout.
    done = subprocess.run(
        command, capture_output=True, env=_env(settings.root), cwd=settings.root, timeout=1800
    )
    if done.returncode != 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{client} {op} x{calls} exited {done.returncode}: {tail}")
    return read_cachegrind(out.read_text())


def read_cachegrind(text: str) -> dict[str, int]:
    """Ir per ``file:function`` from a cachegrind out file (events: Ir), and the total as ``""``."""
    per_fn: dict[str, int] = defaultdict(int)
    total: int | None = None
    fl = fn = "?"
    for line in text.splitlines():
        if line.startswith("fl="):
            fl = line[3:]
        elif line.startswith("fn="):
            fn = line[3:]
        elif line.startswith("summary:"):
            total = int(line.split()[1])
        elif line[:1].isdigit():
            parts = line.split()
            if len(parts) >= 2:
                per_fn[f"{Path(fl).name}:{fn}"] += int(parts[1])
    if total is None:
        raise ValueError("no summary line: not a complete cachegrind file")
    per_fn[""] = total
    return dict(per_fn)


def per_call(low: dict[str, int], high: dict[str, int], n: int) -> dict[str, float]:
    """The two-count difference, per function: what one more call costs."""
    return {k: (high.get(k, 0) - low.get(k, 0)) / n for k in set(low) | set(high)}


def measure(settings: Settings, profile: Path | None, log: Any = print) -> dict[str, Any]:
    n1, n2 = settings.calls
    if not 0 < n1 < n2:
        raise ValueError(f"calls must be two counts N1 < N2, not {settings.calls}")
    if shutil.which("valgrind") is None:
        raise RuntimeError("valgrind is not installed (Debian: apt-get install valgrind)")
    rows: dict[str, dict[str, list[float]]] = {
        case: {client: [] for client in settings.clients} for case in settings.cases
    }
    functions: dict[str, dict[str, dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for rep in range(settings.repeats):
            order = settings.clients if rep % 2 == 0 else settings.clients[::-1]
            for case in settings.cases:
                op, keys = CASES[case]
                where = profile if profile is not None and rep == 0 else Path(scratch)
                with (
                    serve("benchmarks.canned", "--keys", str(keys), announce="CANNED_URL") as srv,
                    ThreadPoolExecutor(settings.jobs) as pool,
                ):
                    runs = {
                        (client, n): pool.submit(
                            count, client, op, n, srv.url, settings, where / f"{case}.{client}.{n}"
                        )
                        for client in order
                        for n in (n1, n2)
                    }
                    for client in order:
                        low, high = runs[client, n1].result(), runs[client, n2].result()
                        diff = per_call(low, high, n2 - n1)
                        rows[case][client].append(diff[""])
                        if rep == 0:
                            functions.setdefault(case, {})[client] = diff
                        log(f"repeat {rep + 1} {case:9} {client:14} {diff['']:10,.0f} Ir/call")
    result: dict[str, Any] = {
        "settings": asdict(settings),
        "valgrind": _valgrind_version(),
        "python": sys.version.split()[0],
        "cases": {
            case: {
                "op": CASES[case][0],
                "keys": CASES[case][1],
                **{client: values for client, values in by_client.items()},
            }
            for case, by_client in rows.items()
        },
    }
    if profile is not None:
        result["profile"] = {case: top_functions(fns) for case, fns in functions.items()}
        (profile / "profile.json").write_text(json.dumps(result["profile"], indent=1) + "\n")
    return result


def top_functions(by_client: dict[str, dict[str, float]], n: int = 25) -> list[dict[str, Any]]:
    """The C functions whose Ir per call differ most between cldprov_async and the raw loop."""
    mine, theirs = by_client.get("cldprov_async", {}), by_client.get("raw", {})
    names = (set(mine) | set(theirs)) - {""}
    ranked = sorted(names, key=lambda k: -abs(mine.get(k, 0.0) - theirs.get(k, 0.0)))
    return [
        {"function": k, "ours": mine.get(k, 0.0), "raw": theirs.get(k, 0.0)} for k in ranked[:n]
    ]


def _valgrind_version() -> str:
    try:
        return subprocess.run(
            ["valgrind", "--version"], capture_output=True, check=True, text=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


# --- reading the figures --------------------------------------------------------------------


def profile_lines(result: dict[str, Any], n: int = 15) -> list[str]:
    lines: list[str] = []
    for case, rows in result.get("profile", {}).items():
        lines += ["", f"{case}: C functions, Ir per call (cldprov_async, raw loop, difference)"]
        for r in rows[:n]:
            delta = r["ours"] - r["raw"]
            lines.append(f"  {r['ours']:9,.0f} {r['raw']:9,.0f} {delta:+9,.0f}  {r['function']}")
    return lines


# --- command line -------------------------------------------------------------------------


def _counts(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+),(\d+)", text)
    if match is None or not 0 < int(match.group(1)) < int(match.group(2)):
        raise argparse.ArgumentTypeError(f"expected N1,N2 with 0 < N1 < N2, not {text!r}")
    return int(match.group(1)), int(match.group(2))


def _cases(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    for item in items:
        if item not in CASES:
            raise argparse.ArgumentTypeError(f"{item!r} is not one of {', '.join(CASES)}")
    return items


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--child"]:
        return child(argv[1:])
    p = argparse.ArgumentParser(prog="python -m benchmarks instructions", description=__doc__)
    p.add_argument("--cases", type=_cases, help=f"comma-separated: {','.join(CASES)} (all)")
    p.add_argument("--clients", help="comma-separated: cldprov_async,raw (both)")
    p.add_argument("--calls", type=_counts, help="the two call counts N1,N2 (default 500,1500)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--repeats", type=int, default=2, help="whole runs, to show the spread (2)")
    p.add_argument("--jobs", type=int, default=2, help="client processes counted at once (2)")
    p.add_argument("--root", help="import cldprov_async from this copy of the repository")
    p.add_argument("--json", type=Path, help="write the figures here")
    p.add_argument("--profile", type=Path, help="keep cachegrind files here, print top functions")
    p.add_argument(
        "--results",
        type=Path,
        help="put these figures in DIR/results.json (a full run's) in place of its own and"
        " rewrite DIR/RESULTS.md from it (its chart kept); the section names the commit"
        " counted",
    )
    args = p.parse_args(argv)
    settings = Settings(concurrency=args.concurrency, repeats=max(1, args.repeats))
    settings.jobs = max(1, args.jobs)
    if args.cases:
        settings.cases = args.cases
    if args.calls:
        settings.calls = args.calls
    if args.clients:
        known = [*CLIENTS, *RUNGS]
        settings.clients = [c for c in known if c in args.clients.split(",")] or list(CLIENTS)
    if args.root:
        settings.root = str(Path(args.root).resolve())
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    result = measure(settings, args.profile, log=lambda m: print(m, file=sys.stderr, flush=True))
    print("\n".join(instruction_table(result)))
    if args.profile is not None:
        print("\n".join(profile_lines(result)))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.results is not None:
        for path in refresh_results(result, args.results):
            print(f"wrote {path}", file=sys.stderr)
    return 0


def refresh_results(result: dict[str, Any], out: Path) -> list[Path]:
    """A full run's report with only its instruction counts replaced by ``result``."""
    data = json.loads((out / "results.json").read_text())
    data["instructions"] = {**result, "git": git_state()}
    analysis = None if data["settings"]["quick"] else HERE / "ANALYSIS.md"
    text = analysis.read_text() if analysis is not None and analysis.exists() else None
    # The chart draws the timed figures, which did not change: the run's stays as it is.
    chart = "results.png" if (out / "results.png").exists() else None
    written = [out / "results.json", out / "RESULTS.md"]
    written[0].write_text(json.dumps(data, indent=1) + "\n")
    written[1].write_text(report.markdown(data, chart, text))
    return written
