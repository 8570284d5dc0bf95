"""The benchmark runner, once, at its CI smoke size: it runs and writes what it says it writes.

No figure is checked against a threshold: on a shared CI machine times say nothing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from heavy import lowered

from benchmarks.__main__ import COMMANDS
from benchmarks.__main__ import main as benchmarks_main

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_quick_run_writes_results(tmp_path: Path) -> None:
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    # One concurrency of the smoke size's two (1 and 8): every client and operation is still
    # measured and reported, with half the worker processes (concurrency 1 took longest).
    args = ["run", "--quick", "--concurrency", "8", "--out", str(tmp_path)]
    done = subprocess.run(  # at a lower priority: its figures are not judged here
        lowered([sys.executable, "-m", "benchmarks", *args]),
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]

    data = json.loads((tmp_path / "results.json").read_text())
    assert data["failures"] == []
    runs = data["runs"]
    assert {(r["client"], r["op"]) for r in runs} == {
        ("cldprov_async", "generate"),
        ("raw", "generate"),
    }
    for run in runs:
        assert run["errors"] == 0, run["first_error"]
        assert run["calls"] > 0 and run["wall_s"] > 0 and run["cpu_us_per_call"] > 0
        assert 0 < run["p50_ms"] <= run["p99_ms"]
        assert run["rss_mb"] > 0
    assert set(data["imports"]) == {"cldprov_async", "raw"}

    results = (tmp_path / "RESULTS.md").read_text()
    assert results.startswith("# Benchmark results")
    assert "## Machine" in results and "### `generate`" in results
    assert "cldprov_async" in results and "raw aiohttp loop" in results

    png = tmp_path / "results.png"
    if importlib.util.find_spec("matplotlib") is None:
        # matplotlib is a benchmark-only extra: without it, no chart, the rest all the same.
        assert not png.exists()
        assert "results.png" not in results
    else:
        assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
        assert "(results.png)" in results


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_answers_help_without_running(
    command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        benchmarks_main([command, "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m benchmarks {command} ")
