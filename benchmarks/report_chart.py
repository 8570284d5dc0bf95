"""The chart of RESULTS.md (matplotlib, a benchmark-only extra: without it, no chart).

Imports: the report's formatting helpers only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks.report_format import COLORS, LABELS, summarize


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
