"""What machine and commit a run measured (for RESULTS.md).

Imports: the settings only.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from benchmarks.settings import ROOT


def git_state() -> str:
    """The commit measured, and whether the library had uncommitted changes."""
    try:
        head = (
            subprocess.run(
                ["git", "rev-parse", "--short", "HEAD"], capture_output=True, cwd=ROOT, check=True
            )
            .stdout.decode()
            .strip()
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "cldprov_async"],
            capture_output=True,
            cwd=ROOT,
            check=True,
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" + uncommitted changes in cldprov_async/" if dirty.strip() else "")


def machine() -> dict[str, Any]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.partition(":")[2].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in (
        "aiohttp",
        "attrs",
        "cattrs",
        "cloudinary-account-provisioning",
        "httpx",
        "pydantic",
        "cloudinary",
        "urllib3",
        "matplotlib",
    ):
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            versions[dist] = "not installed"
    from cldprov_async import __version__

    versions["cldprov_async"] = __version__
    return {
        "git": git_state(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "versions": versions,
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
