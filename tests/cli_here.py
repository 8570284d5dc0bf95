"""The command line run in this process, for tests of what it refuses.

A usage error is decided before any connection or event loop: starting a Python process for
each costs most of a second of a 2-core machine and proves nothing more. Tests of what the
command does (exit codes of runs, signals, pipes, output) still run the real process.
"""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
from collections.abc import Mapping
from unittest import mock

from cldprov_async._cli import main


def run_here(args: list[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """``main(args)`` with ``env`` as the whole environment; its status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with (
        mock.patch.dict(os.environ, env, clear=True),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        status = main(args)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())
