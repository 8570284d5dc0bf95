"""The key-cache benchmark at a small size, in this process (its runs are real CLI processes):
the request counts the issue bounds, read from what the fake server received (no time is
checked)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.key_cache import main


def test_request_counts_at_a_small_size(tmp_path: Path) -> None:
    n, changed = 30, 4
    args = ["--environments", str(n), "--changed", str(changed), "--repeat", "1"]
    assert main([*args, "--no-redis", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "key_cache.json").read_text())
    runs = data["stores"]["a file"]
    assert all(run["exit_status"] == 0 for run in runs.values())
    assert runs["cold"]["requests"] == n + 1  # the listing, then each environment's keys
    assert runs["warm"]["requests"] == 1
    assert runs["changed"]["requests"] == 1 + changed
    assert runs["audit_table"]["requests"] == runs["audit_json"]["requests"] == 1
    assert all(runs[r]["skipped"] == runs[r]["results"] == n for r in ("cold", "warm", "changed"))
    assert runs["audit_json"]["rows"] == n
    assert runs["audit_json"]["states"]["current"] == n
    assert (tmp_path / "KEY_CACHE.md").read_text().startswith("# The key cache")
