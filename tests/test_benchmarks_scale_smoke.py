"""The account-scale benchmark, once, at a CI size: it runs, writes what it says, and every
environment ends with exactly one new key (no time is checked: CI machines are shared)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from heavy import lowered

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def test_scale_benchmark_runs_at_a_small_size(tmp_path: Path) -> None:
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    args = ["--quick", "--environments", "60", "--limit", "100", "--seed", "7"]
    done = subprocess.run(  # at a lower priority: its figures are not judged here
        lowered([sys.executable, "-m", "benchmarks", "scale", *args, "--out", str(tmp_path)]),
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
        timeout=180,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    data = json.loads((tmp_path / "scale.json").read_text())
    for run in (data["tenth"], data["full"]):
        assert run["exit_status"] == 0
        assert run["environments_wrong"] == run["duplicate_new_keys"] == 0
        assert run["results_printed"] == run["environments"] == run["keys_created"]
        assert run["requests_received"] >= run["requests_needed"]
        assert run["peak_rss_mib"] > 0
    killed = data["killed"]
    assert killed["resume_exit_status"] == 0
    assert killed["environments_wrong"] == killed["duplicate_new_keys"] == 0
    assert killed["keys_created"] == killed["environments"]
    assert (tmp_path / "SCALE.md").read_text().startswith("# Rotation at account scale")
