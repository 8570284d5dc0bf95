"""RESULTS.md's section on the fleet scenarios (``benchmarks.fleet``).

Imports: the report's formatting helpers only.
"""

from __future__ import annotations

from typing import Any

from benchmarks.report_format import _f, _table, _x, least_possible


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
