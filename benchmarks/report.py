"""Turn the runner's figures into RESULTS.md, results.json and (with matplotlib) results.png."""

from __future__ import annotations

import json
import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

LABELS = {
    "cldprov_async": "cldprov_async",
    "raw": "raw aiohttp loop (floor)",
    "official": "official AsyncCldProvisioning",
    "classic": "classic cloudinary, threads",
}
COLORS = {"cldprov_async": "#1f77b4", "raw": "#7f7f7f", "official": "#d62728", "classic": "#ff7f0e"}
#: Figures whose median over rounds is reported.
FIGURES = ("wall_s", "calls_per_s", "cpu_us_per_call", "p50_ms", "p99_ms", "rss_mb")
GOAL_WALL, GOAL_CPU, GOAL_SPEEDUP, GOAL_INSTRUCTIONS = 1.3, 1.3, 20.0, 1.25
HEADLINE_CONCURRENCY = 64

Key = tuple[str, int, str]  # (op, concurrency, client)


def summarize(runs: Iterable[dict[str, Any]]) -> dict[Key, dict[str, Any]]:
    """Median of each figure over the rounds, per (op, concurrency, client)."""
    groups: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    for run in runs:
        groups[(run["op"], run["concurrency"], run["client"])].append(run)
    summary: dict[Key, dict[str, Any]] = {}
    for key, group in groups.items():
        row: dict[str, Any] = {name: statistics.median(r[name] for r in group) for name in FIGURES}
        row["calls"] = group[0]["calls"]
        row["rounds"] = len(group)
        row["errors"] = sum(r["errors"] for r in group)
        row["first_error"] = next((r["first_error"] for r in group if r["first_error"]), None)
        row["version"] = group[0]["version"]
        server = [r["server_cpu_s"] / r["calls"] * 1e6 for r in group if "server_cpu_s" in r]
        row["server_cpu_us_per_call"] = statistics.median(server) if server else math.nan
        other = [r["background_cores"] for r in group if "background_cores" in r]
        row["background_cores"] = statistics.median(other) if other else math.nan
        summary[key] = row
    return summary


class Ratios:
    """Ratios between two clients' figures, paired by round: this client's figure over the
    other's *in the same round* (they ran back to back), then the median over the rounds.
    Pairing keeps a slow spell of the machine from landing on one client only."""

    def __init__(self, runs: Iterable[dict[str, Any]]) -> None:
        self._runs: dict[tuple[str, int, str, int], dict[str, Any]] = {}
        for run in runs:
            run = {**run, "per_call_s": run["wall_s"] / run["calls"]}
            self._runs[(run["op"], run["concurrency"], run["client"], run["round"])] = run

    def rounds(self, key: Key, other: str, figure: str) -> list[float]:
        """The ratio in each round that has both clients."""
        values = []
        for (op, conc, client, rnd), mine in sorted(self._runs.items()):
            if (op, conc, client) != key:
                continue
            theirs = self._runs.get((op, conc, other, rnd))
            if theirs is not None and theirs[figure]:
                values.append(float(mine[figure] / theirs[figure]))
        return values

    def __call__(self, key: Key, other: str, figure: str) -> float:
        values = self.rounds(key, other, figure)
        return float(statistics.median(values)) if values else math.nan


def least_possible(requests: int, limit: int, window: float, start: float) -> float:
    """Seconds the fastest client would need from ``start`` (epoch seconds), given fixed windows
    aligned to the wall clock and a full budget: ``limit`` requests in what is left of the
    current window, then ``limit`` at the start of each next one (answers take no time)."""
    batches = math.ceil(requests / limit)
    if batches <= 1:
        return 0.0
    first_end = (math.floor(start / window) + 1) * window
    return (first_end - start) + (batches - 2) * window


def _f(value: float, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.{digits}f}"


def _x(value: float, digits: int = 2) -> str:
    return "-" if math.isnan(value) else f"{value:.{digits}f}x"


def _table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def goals(
    ratio: Ratios, ops: Sequence[str], instructions: dict[str, Any] | None = None
) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for every goal that was measured in this run."""
    out: list[tuple[str, str, bool]] = []
    for row in instruction_summary(instructions or {"cases": {}}):
        if row["case"] not in ("generate", "list", "update"):
            continue
        goal = (
            f"`{row['case']}`: instructions per call ≤ {GOAL_INSTRUCTIONS}x the raw loop's"
            " (instant server, 3-key pages)"
        )
        each = ", ".join(f"{r:.3f}" for r in row["ratios"])
        measured_ = f"{row['ratio']:.3f}x"
        if len(row["ratios"]) > 1:
            measured_ += f" (repeats: {each})"
        out.append((goal, measured_, row["ratio"] <= GOAL_INSTRUCTIONS))
    c = HEADLINE_CONCURRENCY

    def add(goal: str, key: Key, other: str, figure: str, ok: Any, digits: int = 2) -> None:
        r = ratio(key, other, figure)
        if math.isnan(r):
            return
        rounds = ratio.rounds(key, other, figure)
        each = (
            f" (rounds: {', '.join(f'{v:.{digits}f}' for v in rounds)})" if len(rounds) > 1 else ""
        )
        out.append((goal, _x(r, digits) + each, bool(ok(r))))

    for op in ("generate", "list"):
        goal = f"`{op}` at concurrency {c}: wall time ≤ {GOAL_WALL}x the raw loop's"
        add(goal, (op, c, "cldprov_async"), "raw", "per_call_s", lambda r: r <= GOAL_WALL)
    for op in ops:
        goal = f"`{op}` at concurrency {c}: throughput ≥ {GOAL_SPEEDUP:g}x the official SDK's"
        key = (op, c, "cldprov_async")
        add(goal, key, "official", "calls_per_s", lambda r: r >= GOAL_SPEEDUP, 1)
    for op in ops:
        goal = f"`{op}` at concurrency {c}: client CPU per call ≤ {GOAL_CPU}x the raw loop's"
        add(goal, (op, c, "cldprov_async"), "raw", "cpu_us_per_call", lambda r: r <= GOAL_CPU)
    return out


def markdown(data: dict[str, Any], chart_name: str | None, analysis: str | None) -> str:
    settings, m = data["settings"], data["machine"]
    summary = summarize(data["runs"])
    ratio = Ratios(data["runs"])
    ops = [op for op in settings["ops"] if any(k[0] == op for k in summary)]
    clients = [c for c in ("cldprov_async", "raw", "official", "classic") if c in data["imports"]]
    out = ["# Benchmark results", ""]
    figures = "`results.json` (every figure of every round)"
    outputs = f", {figures} and `{chart_name}`" if chart_name else f" and {figures}"
    out.append(
        f"Generated by `{data['command'].strip()}` on {m['date']} in {data['elapsed_s']:.0f} s;"
        f" running it again overwrites this file{outputs}. Nothing here is asserted on:"
        " the figures are recorded, not judged."
    )
    if settings["quick"]:
        out += ["", "**Quick (smoke) size: too small to quote any figure from.**"]
    out += ["", "## Machine", ""]
    v = m["versions"]
    out += _table(
        ["", ""],
        [
            ["CPU", f"{m['cpu']}, {m['cores']} cores"],
            ["OS", m["platform"]],
            ["Python", f"{m['implementation']} {m['python']}"],
            ["aiohttp / attrs / cattrs", f"{v['aiohttp']} / {v['attrs']} / {v['cattrs']}"],
            ["cldprov_async", f"{v['cldprov_async']} (commit {m.get('git', 'unknown')})"],
            [
                "cloudinary-account-provisioning / httpx / pydantic",
                f"{v['cloudinary-account-provisioning']} / {v['httpx']} / {v['pydantic']}",
            ],
            ["cloudinary / urllib3", f"{v['cloudinary']} / {v['urllib3']}"],
            ["date", m["date"]],
        ],
    )
    out += ["", "## How it was measured", ""]
    caps = []
    if 1 in settings["concurrency"] and settings["calls_at_1"] < settings["calls"]:
        caps.append(f"{settings['calls_at_1']} at concurrency 1")
    if "official" in clients and settings["official_calls"] < settings["calls"]:
        caps.append(
            f"the official SDK makes at most {settings['official_calls']}: it costs"
            " milliseconds of CPU per call"
        )
    if "classic" in clients and settings["classic_calls"] < settings["calls"]:
        caps.append(f"the classic SDK at most {settings['classic_calls']}")
    out += [
        f"- Operations {', '.join(f'`{o}`' for o in settings['ops'])} at concurrency"
        f" {', '.join(map(str, settings['concurrency']))}; {settings['calls']} calls per"
        f" measurement{' (' + '; '.join(caps) + ')' if caps else ''}; {settings['rounds']}"
        " round(s), the order of the clients reversed every other round; each figure is the"
        " median over the rounds.",
        "- Every measurement gets a **fresh fake server** (`python -m cldprov_async.testing`,"
        " its own process, one sub-account holding"
        f" {settings['keys_per_sub_account']} keys) and a **fresh worker process** for the"
        " client (`python -m benchmarks.worker`). With 2 cores, the server has one and the"
        " client the other.",
        "- Concurrency N = N lanes, each making its next call as soon as the previous returns."
        " `update` spreads over the existing keys (their api_keys fetched with the standard"
        " library before the clock starts). Bodies: `generate` `{name: bench-i, enabled: true}`,"
        " `update` `{name: upd-i, enabled: i even}`, the same for every client.",
        "- **wall**: from the first call to the last answer. **CPU µs/call**:"
        " `time.process_time()` of the worker around the calls only (imports, client set-up and"
        " the key fetch excluded), divided by the calls. **p50/p99**: each call's latency."
        " **RSS**: the worker's peak (`ru_maxrss`, imports included). **server µs/call**: the"
        " server process's CPU (from /proc) over the worker's run, divided by the calls: when it"
        " nears the wall time per call, the server is the bottleneck, not the client."
        " **other load**: the CPU the rest of the machine used meanwhile (other processes,"
        " hypervisor steal), in cores, from /proc/stat: above ~0.2 the figures of that"
        " measurement are disturbed.",
        "- **time ÷ raw** = wall time per call over the raw loop's; **CPU ÷ raw** likewise;"
        " **x official** = calls per second over the official SDK's (so a capped call count"
        " does not matter). Ratios are paired by round: each round's figure over the other"
        " client's in the same round (they ran back to back), then the median over rounds.",
        "- Clients: **cldprov_async** with its defaults (dicts as request bodies, models out);"
        " **raw**: one `aiohttp.ClientSession` (connection limit 100, as cldprov_async), the"
        " same method, URL, headers (Basic auth, Accept, User-Agent, Content-Type) and body,"
        " `json.loads` of the answer, nothing else; **official**: `AsyncCldProvisioning` of"
        " cloudinary-account-provisioning with its defaults (httpx, no retries);"
        " **classic**: `cloudinary.provisioning.account` functions"
        " (`generate_access_key`, `access_keys`, `update_access_key`) on N threads, pointed at"
        " the fake with the `upload_prefix` option. Its urllib3 pool keeps one connection per"
        " host (it logs and discards the others), so under concurrency most of its calls open"
        " a new TCP connection: that is how it ships.",
        "- The default asyncio event loop everywhere (no uvloop).",
        "- This machine is shared (other sessions run tests on it): a measurement of"
        " cldprov_async or the raw loop during which other processes kept more than"
        f" {settings['max_other_load']:g} cores busy was run again, up to"
        f" {settings['retries']} times, keeping the quietest attempt; the **other load**"
        " column shows what was left.",
    ]
    # -- goals
    measured = goals(ratio, ops, data.get("instructions"))
    out += ["", f"## Goals (ratios from this run, concurrency {HEADLINE_CONCURRENCY})", ""]
    if measured:
        out += _table(
            ["goal", "measured", "met?"],
            [[g, v_, "yes" if ok else "**no**"] for g, v_, ok in measured],
        )
        if analysis:
            out += [
                "",
                "The analysis at the end of this file says where the time goes, and why the"
                " CPU ratios of `generate` and `update` flatter cldprov_async on this set-up.",
            ]
    else:
        out.append("Not measured in this run (it needs cldprov_async with raw/official at 64).")
    # -- per-op tables
    out += ["", "## Throughput and cost", ""]
    if chart_name:
        out += [f"![calls per second and CPU per call]({chart_name})", ""]
    header = [
        "conc.",
        "client",
        "calls",
        "wall s",
        "calls/s",
        "CPU µs/call",
        "p50 ms",
        "p99 ms",
        "RSS MB",
        "server µs/call",
        "other load",
        "time ÷ raw",
        "CPU ÷ raw",
        "x official",
    ]
    for op in ops:
        rows = []
        for conc in settings["concurrency"]:
            for client in clients:
                key = (op, conc, client)
                row = summary.get(key)
                if row is None:
                    continue
                rows.append(
                    [
                        str(conc),
                        LABELS[client] if client != "cldprov_async" else "**cldprov_async**",
                        str(row["calls"]),
                        _f(row["wall_s"], 3),
                        _f(row["calls_per_s"]),
                        _f(row["cpu_us_per_call"]),
                        _f(row["p50_ms"]),
                        _f(row["p99_ms"]),
                        _f(row["rss_mb"], 1),
                        _f(row["server_cpu_us_per_call"]),
                        _f(row["background_cores"]),
                        _x(ratio(key, "raw", "per_call_s")),
                        _x(ratio(key, "raw", "cpu_us_per_call")),
                        _x(ratio(key, "official", "calls_per_s"), 1),
                    ]
                )
        out += [f"### `{op}`", "", *_table(header, rows), ""]
    errors = [(k, r) for k, r in sorted(summary.items()) if r["errors"]]
    if errors:
        out += [
            "Calls that failed, over all rounds (they count in calls/s: a client whose calls"
            " fail under load is measured doing that):",
            "",
        ]
        for (op, conc, client), row in errors:
            total = row["calls"] * row["rounds"]
            out.append(
                f"- `{op}` at {conc}, {LABELS[client]}: {row['errors']} of {total}"
                f" (first: {row['first_error']})"
            )
        out.append("")
    out += instruction_section(data.get("instructions"))
    # -- imports
    out += ["## Import time", ""]
    out.append(
        f"A fresh interpreter per sample (median of {settings['import_repeats']}), interpreter"
        " start-up excluded. *Ready* adds building a client and reaching its `access_keys`"
        " (the official SDK imports that module lazily on first access)."
    )
    out.append("")
    out += _table(
        ["client", "import ms", "import + ready ms"],
        [
            [LABELS[c], _f(t["import_s"] * 1e3, 1), _f(t["ready_s"] * 1e3, 1)]
            for c, t in data["imports"].items()
        ],
    )
    # -- scenarios
    rl = [s for s in data["scenarios"] if s["scenario"] == "ratelimit"]
    if rl:
        first = rl[0]
        n, limit, window = first["calls"], first["limit"], first["window"]
        out += ["", "## Under a rate limit", ""]
        out.append(
            f"{n} concurrent `generate` calls against a fresh server allowing {limit} requests"
            f" per {window:g}-second window (fixed windows aligned to the wall clock, as the live"
            f" API's): {math.ceil(n / limit)} windows' worth of budget. **Least possible** is"
            " counted from the moment the calls start: the rest of the current window, then one"
            " more window per further batch: between"
            f" {(math.ceil(n / limit) - 2) * window:g} and {(math.ceil(n / limit) - 1) * window:g}"
            " s, depending on where in its window the run starts."
            " Requests sent and rejected are counted client side: cldprov_async's"
            " `client.stats`, an httpx event hook for the official SDK, which runs with a"
            " RetryConfig (backoff 0.5-5 s, x1.5, 60 s budget; it retries 429 and 5XX, never"
            " 420). cldprov_async runs with its defaults."
        )
        out.append("")
        rows = []
        for s in rl:
            least = least_possible(s["calls"], s["limit"], s["window"], s["start_epoch"])
            rows.append(
                [
                    s["variant"],
                    LABELS[s["client"]],
                    f"{s['ok']}/{s['calls']}",
                    _f(s["wall_s"]),
                    _f(least),
                    _x(s["wall_s"] / least) if least else "-",
                    str(s["sent"]),
                    str(s["rejected"]),
                    ", ".join(f"{k} x{v}" for k, v in s["failures"].items()) or "none",
                ]
            )
        out += _table(
            [
                "server answers",
                "client",
                "succeeded",
                "wall s",
                "least possible s",
                "wall ÷ least",
                "requests sent",
                "rejected (420/429)",
                "failures",
            ],
            rows,
        )
    rot = [s for s in data["scenarios"] if s["scenario"] == "rotation"]
    for s in rot:
        needed = s["envs"] * (2 + s["keys"])
        least = least_possible(needed, s["limit"], s["window"], s["start_epoch"])
        out += ["", "## Rotating many environments", ""]
        out.append(
            f"`client.access_keys.rotate_many(ids, concurrency={s['concurrency']})` over"
            f" {s['envs']} product environments holding {s['keys']} enabled keys each: per"
            f" environment one `list`, one `generate` and {s['keys']} `update` (disable) ="
            f" {needed} requests at least. The limit is **scaled**: {s['limit']} requests per"
            f" {s['window']:g}-second window (420, reset header only) instead of the live API's"
            " hourly windows (2000 per hour would take an hour per 2000 requests); the client"
            " sees only a budget and a reset time, so it behaves the same, with seconds for"
            " hours. Least possible counted as above."
        )
        out.append("")
        out += _table(
            [
                "wall s",
                "least possible s",
                "wall ÷ least",
                "all ok?",
                "new keys",
                "keys retired",
                "requests sent",
                "rejected",
                "retried",
                "failures",
            ],
            [
                [
                    _f(s["wall_s"]),
                    _f(least),
                    _x(s["wall_s"] / least) if least else "-",
                    "yes" if s["ok"] == s["envs"] else f"**no** ({s['ok']}/{s['envs']})",
                    str(s["new_keys"]),
                    str(s["retired"]),
                    str(s["sent"]),
                    str(s["rejected"]),
                    str(s["retried"]),
                    ", ".join(f"{k} x{v}" for k, v in s["failures"].items()) or "none",
                ]
            ],
        )
    out += fleet_section(data["scenarios"])
    if data["notes"] or data["failures"]:
        out += ["", "## Notes", ""]
        out += [f"- {n}" for n in data["notes"]]
        out += [f"- failed: {f}" for f in data["failures"]]
    if analysis:
        out += ["", analysis.strip()]
    return "\n".join(out) + "\n"


def fleet_section(scenarios: list[dict[str, Any]]) -> list[str]:
    """The fleet scenarios (``benchmarks/fleet.py``): one budget shared through Redis."""
    out: list[str] = []
    gates = [s for s in scenarios if s["scenario"] == "fleet_gates"]
    if gates:
        g = gates[0]
        out += ["", "## A fleet on one account", ""]
        out.append(
            f"{g['processes']} processes x {g['calls'] // g['processes']} named `generate`"
            f" (32 at a time each) under {g['limit']} requests per {g['window']:g}-second window"
            " (420, reset header only); sent and rejected summed from the processes'"
            " `client.stats`. Least possible counted as above."
        )
        out.append("")
        rows = []
        for s in gates:
            least = least_possible(s["calls"], s["limit"], s["window"], s["start_epoch"])
            rows.append(
                [
                    s["variant"],
                    f"{s['ok']}/{s['calls']}",
                    _f(s["wall_s"]),
                    _f(least),
                    _x(s["wall_s"] / least) if least else "-",
                    str(s["sent"]),
                    str(s["rejected"]),
                ]
            )
        header = ["gates", "succeeded", "wall s", "least possible s", "wall ÷ least"]
        out += _table([*header, "requests sent", "rejected"], rows)
    reserve = [s for s in scenarios if s["scenario"] == "fleet_reserve"]
    if reserve:
        r = reserve[0]
        out += ["", "### The reserve", ""]
        out.append(
            f"A bulk `rotate_many` over {r['bulk_envs']} environments in one process, a normal"
            " `generate` every 0.3 s in another (`max_wait` 1 s, shorter than the"
            f" {r['window']:g}-second window), {r['limit']} requests per window, one Redis."
            " Bulk share used: bulk requests over (windows x the bulk share of a window)."
        )
        out.append("")
        out += _table(
            [
                "bulk_reserve",
                "normal failed",
                "normal p50 s",
                "normal max s",
                "bulk ok",
                "bulk share used",
                "rejected",
            ],
            [
                [
                    f"{s['bulk_reserve']:g}",
                    f"{s['normal_failed']}/{s['normal_calls']}",
                    _f(s["normal_p50_s"] or 0.0, 3),
                    _f(s["normal_max_s"] or 0.0, 3),
                    f"{s['bulk_ok']}/{s['bulk_envs']}",
                    _f(s["bulk_share_used"]),
                    str(s["rejected"]),
                ]
                for s in reserve
            ],
        )
    for s in (s for s in scenarios if s["scenario"] == "fleet_throughput"):
        out += ["", "### The shared gate's cost", ""]
        out.append(
            f"{s['calls']} `generate` at concurrency {s['concurrency']}, a limit too high to"
            f" matter, median of {s['rounds']} alternating rounds: in-process"
            f" {s['in_process_rps']:.0f}/s, shared {s['shared_rps']:.0f}/s:"
            f" **{_x(s['shared_over_in_process'])}** the in-process gate's throughput."
        )
    return out


def instruction_section(result: dict[str, Any] | None) -> list[str]:
    """RESULTS.md's section of instructions per call (``benchmarks.instructions``)."""
    if not result:
        return []
    s = result["settings"]
    n1, n2 = s["calls"]
    out = ["## Instructions per call (cachegrind, instant server)", ""]
    out.append(
        "What one call costs the client in CPU instructions, which wander far less than times"
        " with the machine's load: each client in its own process under"
        " `valgrind --tool=cachegrind --cache-sim=no`, against `benchmarks.canned` (an instant"
        " server in another process, not counted), concurrency"
        f" {s['concurrency']}, at {n1} and {n2} calls: Ir per call = (Ir({n2}) - Ir({n1})) /"
        f" {n2 - n1}, so start-up and imports cancel (their objects frozen out of the garbage"
        " collector before the calls, `gc.freeze()`). The whole set was measured"
        f" {s['repeats']} time(s); *spread* is the largest (max - min) / mean of either"
        " client over the repeats. `list-100` lists 100 keys per answer, where parsing and"
        f" building the models dominate. {result.get('valgrind', '')}, Python"
        f" {result.get('python', '?')}."
    )
    return [*out, "", *instruction_table(result), ""]


def instruction_summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per case: the mean Ir/call of each client over the repeats, the ratio, the spread."""
    out = []
    for case, row in result["cases"].items():
        mine, theirs = row.get("cldprov_async", []), row.get("raw", [])
        if not mine or not theirs:
            continue
        ours_mean, raw_mean = statistics.fmean(mine), statistics.fmean(theirs)
        ratios = [a / b for a, b in zip(mine, theirs, strict=False)]
        out.append(
            {
                "case": case,
                "ours": ours_mean,
                "raw": raw_mean,
                "ratio": ours_mean / raw_mean,
                "ratios": ratios,
                "spread_pct": max(_spread(mine), _spread(theirs)) * 100,
            }
        )
    return out


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.fmean(values) if len(values) > 1 else 0.0


def instruction_table(result: dict[str, Any]) -> list[str]:
    """The markdown table: Ir per call of each client, ratio per repeat, spread."""
    lines = [
        "| case | cldprov_async Ir/call | raw loop Ir/call | ratio | each repeat | spread |",
        "|---|---|---|---|---|---|",
    ]
    for row in instruction_summary(result):
        each = ", ".join(f"{r:.3f}x" for r in row["ratios"])
        lines.append(
            f"| `{row['case']}` | {row['ours']:,.0f} | {row['raw']:,.0f} | {row['ratio']:.3f}x"
            f" | {each} | {row['spread_pct']:.2f} % |"
        )
    return lines


def draw_chart(data: dict[str, Any], path: Path) -> bool:
    """Calls per second and CPU per call, per op and concurrency; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = summarize(data["runs"])
    ops = [op for op in data["settings"]["ops"] if any(k[0] == op for k in summary)]
    if not ops:
        return False
    concs = data["settings"]["concurrency"]
    clients = [c for c in LABELS if any(k[2] == c for k in summary)]
    fig, axes = plt.subplots(2, len(ops), figsize=(5 * len(ops), 8), squeeze=False)
    width = 0.8 / len(clients)
    for col, op in enumerate(ops):
        for row_no, (figure, title) in enumerate(
            (("calls_per_s", "calls per second"), ("cpu_us_per_call", "client CPU µs per call"))
        ):
            ax = axes[row_no][col]
            for i, client in enumerate(clients):
                xs = [j + (i - (len(clients) - 1) / 2) * width for j in range(len(concs))]
                ys = [summary.get((op, c, client), {}).get(figure, 0.0) for c in concs]
                ax.bar(xs, ys, width, label=LABELS[client], color=COLORS[client])
            ax.set_xticks(range(len(concs)), [f"c={c}" for c in concs])
            ax.set_yscale("log")
            ax.set_title(f"{op}: {title}")
            ax.grid(axis="y", which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(clients), frameon=False)
    m = data["machine"]
    fig.suptitle(
        f"median of {data['settings']['rounds']} round(s), log scales; {m['cpu']}, {m['cores']}"
        " cores"
    )
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def write_all(data: dict[str, Any], out: Path, *, chart: bool, analysis: Path | None) -> list[Path]:
    """results.json, results.png (if asked and matplotlib is there), RESULTS.md."""
    written = [out / "results.json"]
    written[0].write_text(json.dumps(data, indent=1) + "\n")
    png = out / "results.png"
    drew = chart and draw_chart(data, png)
    if drew:
        written.append(png)
    text = analysis.read_text() if analysis is not None and analysis.exists() else None
    md = out / "RESULTS.md"
    md.write_text(markdown(data, png.name if drew else None, text))
    written.append(md)
    return written
