"""RESULTS.md's section of instructions per call (``benchmarks.instructions``) and its goals.

Two floors: ``raw`` (the tightest aiohttp loop we could write, ``clients.raw``) and ``plain``
(an independent loop written as a plain-aiohttp user would, ``benchmarks.plain``); each case's
ratio is given against both.

Imports: nothing of the benchmarks.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

#: Instructions per call over the raw loop's, 3-key pages (every operation) ...
GOAL_INSTRUCTIONS = 1.2
#: ... and a 100-key listing, where building 100 models is work no loop without models does.
GOAL_LIST_100 = 1.8
FLOORS = ("raw", "plain")


def instruction_summary(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Per case: each client's mean Ir/call over the repeats, ratios to each floor, spread."""
    out = []
    for case, row in result["cases"].items():
        mine = row.get("cldprov_async", [])
        if not mine or not row.get("raw"):
            continue
        ours = statistics.fmean(mine)
        summary: dict[str, Any] = {"case": case, "ours": ours}
        spreads = [_spread(mine)]
        for floor in FLOORS:
            theirs = row.get(floor, [])
            if theirs:
                summary[floor] = statistics.fmean(theirs)
                summary[f"ratio_{floor}"] = ours / summary[floor]
                summary[f"ratios_{floor}"] = [a / b for a, b in zip(mine, theirs, strict=False)]
                spreads.append(_spread(theirs))
        summary["ratio"], summary["ratios"] = summary["ratio_raw"], summary["ratios_raw"]
        summary["raw"] = summary.get("raw", 0.0)
        summary["spread_pct"] = max(spreads) * 100
        out.append(summary)
    return out


def _spread(values: Sequence[float]) -> float:
    return (max(values) - min(values)) / statistics.fmean(values) if len(values) > 1 else 0.0


def goal_of(case: str) -> float:
    return GOAL_LIST_100 if case == "list-100" else GOAL_INSTRUCTIONS


def instruction_goals(result: dict[str, Any] | None) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) per case: against the raw loop, the plain loop's ratio beside."""
    out = []
    for row in instruction_summary(result or {"cases": {}}):
        goal = goal_of(row["case"])
        pages = "100-key pages" if row["case"] == "list-100" else "3-key pages"
        text = f"`{row['case']}`: instructions per call ≤ {goal}x the raw loop's ({pages})"
        measured = f"{row['ratio']:.3f}x"
        if len(row["ratios"]) > 1:
            measured += " (repeats: " + ", ".join(f"{r:.3f}" for r in row["ratios"]) + ")"
        if "ratio_plain" in row:
            measured += f"; {row['ratio_plain']:.3f}x the plain loop's"
        out.append((text, measured, row["ratio"] <= goal))
    return out


def instruction_section(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    s = result["settings"]
    n1, n2 = s["calls"]
    out = ["## Instructions per call (cachegrind, instant server)", ""]
    out.append(
        "What one call costs the client in CPU instructions, which wander far less than times"
        " with the machine's load: each client in its own process under"
        " `valgrind --tool=cachegrind --cache-sim=no`, against `benchmarks.canned` (an instant"
        " server in another process, not counted, whose answers carry the rate-limit headers,"
        " fields the spec lacks and a dedicated key, as the live API's do), concurrency"
        f" {s['concurrency']}, at {n1} and {n2} calls: Ir per call = (Ir({n2}) - Ir({n1})) /"
        f" {n2 - n1}, so start-up and imports cancel (their objects frozen out of the garbage"
        " collector before the calls, `gc.freeze()`). Requests are plain mappings with string"
        " enum values, as users write them. Two floors: the *raw* loop (URLs and headers built"
        " once, bytes in and out) and the *plain* loop (`benchmarks/plain.py`, written apart:"
        " `params=`, `json=`, `resp.json()`). The whole set was measured"
        f" {s['repeats']} time(s); *spread* is the largest (max - min) / mean of any client"
        " over the repeats. `list-100` lists 100 keys per answer, where parsing and building"
        f" the models dominate. {result.get('valgrind', '')}, Python"
        f" {result.get('python', '?')}."
    )
    if "git" in result:  # counted apart from the run (`benchmarks instructions --results`)
        out[-1] += f" Counted apart from the rest of this run, at commit {result['git']}."
    return [*out, "", *instruction_table(result), ""]


def instruction_table(result: dict[str, Any]) -> list[str]:
    """The markdown table: Ir per call of each client and the ratios to both floors."""
    lines = [
        "| case | cldprov_async Ir/call | raw loop Ir/call | ratio | plain loop Ir/call"
        " | ratio | goal | spread |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in instruction_summary(result):
        plain = f"{row['plain']:,.0f}" if "plain" in row else "-"
        plain_ratio = f"{row['ratio_plain']:.3f}x" if "ratio_plain" in row else "-"
        lines.append(
            f"| `{row['case']}` | {row['ours']:,.0f} | {row['raw']:,.0f} | {row['ratio']:.3f}x"
            f" | {plain} | {plain_ratio} | ≤ {goal_of(row['case'])}x"
            f" | {row['spread_pct']:.2f} % |"
        )
    return lines
