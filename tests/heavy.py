"""CPU-heavy steps of the tests, run at a lower priority.

A browser, valgrind, mypy or pip can keep both cores busy for seconds. The fleet's tests,
which another pytest-xdist worker may be running at the same time, measure real windows:
their processes must run when they wake. At niceness 10 the heavy steps take the CPU those
leave; nothing they check depends on time.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence

NICENESS = 10


def lowered(command: Sequence[str]) -> list[str]:
    """``command`` started through ``nice`` (as it is where there is no ``nice``)."""
    nice = shutil.which("nice")
    return [nice, "-n", str(NICENESS), *command] if nice else list(command)


def lower_this_process() -> None:
    """For a process of its own that does heavy work (and starts more)."""
    os.nice(NICENESS)
