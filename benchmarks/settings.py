"""What every benchmark module shares: where the repository is, the fake account's
credentials, and the environment child processes run in.

Imports: nothing of the benchmarks (the lowest layer).
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
ACCOUNT, KEY, SECRET, SUB = "bench-account", "bench-key", "bench-secret", "sub-1"


def env(*, root: str | None = None) -> dict[str, str]:
    """The environment of a child process: this checkout (or ``root`` first) importable."""
    first = [root] if root else []
    paths = [*first, str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1"}
