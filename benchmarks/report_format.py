"""The report's shared pieces: labels, medians and ratios of the runs, number formats.

Imports: nothing of the benchmarks.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
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
GOAL_WALL, GOAL_CPU, GOAL_SPEEDUP = 1.3, 1.3, 20.0
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
