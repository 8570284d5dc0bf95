"""The instructions-per-call instrument (``benchmarks.instructions``), at smoke size.

The counted process runs natively against the canned server (does it make its calls?), the
cachegrind files are read and differenced as the instrument does, and, where valgrind is
installed, one real two-count difference is taken. No figure is judged against a goal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from heavy import lowered

from benchmarks import instructions, report, report_instructions
from benchmarks.servers import serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent

CACHEGRIND = """\
desc: I1 cache:
cmd: python -m x
events: Ir
fl=/usr/lib/python3.11/ceval.c
fn=_PyEval_EvalFrameDefault
10 {eval}
11 5
fl=json.c
fn=scanstring
3 {scan}
summary: {total}
"""


def _env() -> dict[str, str]:
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def test_reads_and_differences_cachegrind_files() -> None:
    low = instructions.read_cachegrind(CACHEGRIND.format(eval=100, scan=7, total=1112))
    high = instructions.read_cachegrind(CACHEGRIND.format(eval=300, scan=27, total=1352))
    assert low == {"ceval.c:_PyEval_EvalFrameDefault": 105, "json.c:scanstring": 7, "": 1112}
    diff = instructions.per_call(low, high, 20)
    assert diff == {"ceval.c:_PyEval_EvalFrameDefault": 10.0, "json.c:scanstring": 1.0, "": 12.0}
    with pytest.raises(ValueError, match="summary"):
        instructions.read_cachegrind("events: Ir\nfn=f\n1 2\n")


def test_report_section_and_goals() -> None:
    result = {
        "settings": {"calls": [500, 1500], "concurrency": 64, "repeats": 2},
        "valgrind": "valgrind-3.19.0",
        "python": "3.11.7",
        "cases": {
            "generate": {
                "op": "generate",
                "keys": 3,
                "cldprov_async": [110.0, 111.0],
                "raw": [100.0, 100.0],
                "plain": [105.0, 105.0],
            },
            "list": {
                "op": "list",
                "keys": 3,
                "cldprov_async": [140.0, 140.0],
                "raw": [100.0, 100.0],
            },
            "list-100": {"op": "list", "keys": 100, "cldprov_async": [170.0], "raw": [100.0]},
        },
    }
    rows = {r["case"]: r for r in report_instructions.instruction_summary(result)}
    assert rows["generate"]["ratio"] == pytest.approx(110.5 / 100)
    assert rows["generate"]["ratios"] == pytest.approx([1.1, 1.11])
    assert rows["generate"]["ratio_plain"] == pytest.approx(110.5 / 105)
    assert rows["generate"]["spread_pct"] == pytest.approx(1 / 110.5 * 100)
    assert "ratio_plain" not in rows["list"]
    section = "\n".join(report_instructions.instruction_section(result))
    assert "(Ir(1500) - Ir(500)) / 1000" in section
    assert "| `generate` | 110 | 100 | 1.105x | 105 | 1.052x | ≤ 1.2x |" in section
    assert "| `list-100` | 170 | 100 | 1.700x | - | - | ≤ 1.8x |" in section
    met = {g.split("`")[1]: ok for g, _, ok in report.goals(report.Ratios([]), [], result)}
    assert met == {"generate": True, "list": False, "list-100": True}
    assert report_instructions.instruction_section(None) == []


@pytest.mark.parametrize(
    ("client", "op", "keys"), [("cldprov_async", "update", 3), ("raw", "list", 100)]
)
def test_counted_process_makes_its_calls(client: str, op: str, keys: int) -> None:
    with serve("benchmarks.canned", "--keys", str(keys), announce="CANNED_URL") as server:
        child = ["--child", client, op, "12", "4", server.url]
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks", "instructions", *child],
            capture_output=True,
            cwd=ROOT,
            env=_env(),
            timeout=60,
        )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def test_every_piece_runs() -> None:
    from benchmarks import instruction_parts

    counts = json.dumps(dict.fromkeys(instruction_parts.pieces(), 2))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "parts", "--child", counts],
        capture_output=True,
        cwd=ROOT,
        env=_env(),
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_counts_instructions_under_valgrind(monkeypatch: pytest.MonkeyPatch) -> None:
    # valgrind at a lower priority (``heavy``): what it counts does not depend on time.
    monkeypatch.setattr(instructions, "VALGRIND", tuple(lowered(instructions.VALGRIND)))
    settings = instructions.Settings(
        cases=["generate"], clients=["raw"], calls=(4, 12), repeats=1, jobs=2
    )
    result = instructions.measure(settings, None, log=lambda _: None)
    (per_call,) = result["cases"]["generate"]["raw"]
    # A raw aiohttp request and answer is hundreds of thousands of instructions: far more
    # than nothing, far less than start-up (about 1.4 billion), which must have cancelled.
    assert 50_000 < per_call < 5_000_000
