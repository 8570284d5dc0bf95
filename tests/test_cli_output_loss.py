"""Issue 23: a rotation whose output goes away loses no secret (real processes).

``rotate ... --jsonl`` read by a pipe that its reader closes after one line, and a run killed
with SIGKILL: in both, stderr named the run and its resume command before the first write,
every environment is left consistent (untouched, or with its new key whole), and the resume
command gives back on stdout every touched environment's key and secret, exactly as the server
holds them, making no second key. Classic mode and lifecycle mode (the line is the hand-off).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import forked
import pytest

from cldprov_async.testing import FakeProvisioningServer, Faults

ROOT = Path(__file__).resolve().parents[1]
ENVS = [f"env-{n:02d}" for n in range(12)]
MODES = {
    "classic": [],
    "lifecycle": ["--grace", "7d", "--prune-after", "14d"],
}


@pytest.fixture
def fake() -> Iterator[FakeProvisioningServer]:
    # Every request takes 30 ms, so a run of 12 environments two at a time lasts a while.
    server = FakeProvisioningServer(
        sub_accounts=ENVS,
        keys_per_sub_account=1,
        faults=Faults(rate=1.0, kinds=("delay",), delay=0.03),
    )
    with server.run_in_thread():
        yield server


def start(fake: FakeProvisioningServer, tmp_path: Path, mode: str) -> subprocess.Popen[str]:
    args = ["--all", "--jsonl", "--concurrency", "2", *MODES[mode]]
    return forked.Popen(
        [sys.executable, "-m", "cldprov_async", "--server-url", fake.url, "rotate", *args],
        env=environ(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def environ(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "CLOUDINARY_ACCOUNT_URL": "account://fake-key:fake-secret@fake-account",
        "CLDPROV_LOCK_DIR": str(tmp_path),
    }


def resume_command(first_stderr_lines: list[str]) -> tuple[str, list[str]]:
    """The run's name and resume command, from the lines it printed before writing."""
    head, command = first_stderr_lines
    assert head.startswith("cldprov-async: run '") and "gives back every new key" in head
    name = head.split("'")[1]
    argv = shlex.split(command.strip())
    assert argv[:2] == ["cldprov-async", "rotate"] and argv[argv.index("--name") + 1] == name
    return name, argv[2:]


def resume(fake: FakeProvisioningServer, tmp_path: Path, args: list[str]) -> dict[str, Any]:
    done = forked.run(
        [sys.executable, "-m", "cldprov_async", "--server-url", fake.url, "rotate", *args],
        env=environ(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "fake-secret" not in done.stdout + done.stderr
    return {doc["sub_account_id"]: doc for doc in map(json.loads, done.stdout.splitlines())}


def consistent(fake: FakeProvisioningServer, name: str, mode: str) -> set[str]:
    """Every environment is untouched or has its new key whole; returns the touched ones."""
    touched = set()
    for sub in ENVS:
        keys = fake.keys(sub)
        ours = [k for k in keys if k.name.split("@")[0] == name]
        assert len(ours) <= 1, (sub, keys)  # never a second key
        if not ours:
            assert [(k.name, k.enabled) for k in keys] == [("key-1", True)], (sub, keys)
            continue
        touched.add(sub)
        assert ours[0].enabled, (sub, keys)  # a new key is whole before anything retires
        if mode == "lifecycle":  # in grace (or pending): the old key still serves
            assert [k.enabled for k in keys if k.name == "key-1"] == [True], (sub, keys)
    return touched


def check_given_back(
    fake: FakeProvisioningServer, touched: set[str], name: str, lines: dict[str, Any]
) -> None:
    assert set(lines) == set(ENVS)  # the resume also finishes the run
    for sub in ENVS:
        (ours,) = [k for k in fake.keys(sub) if k.name.split("@")[0] == name]
        doc = lines[sub]
        assert doc["new_key"]["api_key"] == ours.api_key, (sub, doc)
        assert doc["new_api_secret"] == ours.api_secret, (sub, doc)
    assert fake.keys_created == len(ENVS)  # one key per environment, no second anywhere
    assert touched <= set(lines)


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_reader_that_closes_the_pipe_loses_no_secret(
    fake: FakeProvisioningServer, tmp_path: Path, mode: str
) -> None:
    proc = start(fake, tmp_path, mode)
    assert proc.stdout is not None and proc.stderr is not None
    name, args = resume_command([proc.stderr.readline(), proc.stderr.readline()])
    first = json.loads(proc.stdout.readline())  # `| head -1`: one line, then the pipe closes
    proc.stdout.close()
    err = proc.stderr.read()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1, err
    assert "Traceback" not in err
    assert "stdout was closed" in err and "touched by this run" in err
    assert shlex.split(err.rsplit("\n  ", 1)[1])[2:] == args  # the same resume command
    touched = consistent(fake, name, mode)
    assert first["sub_account_id"] in touched and len(touched) < len(ENVS)
    assert f"{len(touched)} product environment" in err
    check_given_back(fake, touched, name, resume(fake, tmp_path, args))


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_run_killed_outright_is_resumed_from_its_log(
    fake: FakeProvisioningServer, tmp_path: Path, mode: str
) -> None:
    proc = start(fake, tmp_path, mode)
    assert proc.stdout is not None and proc.stderr is not None
    name, args = resume_command([proc.stderr.readline(), proc.stderr.readline()])
    proc.stdout.readline()
    proc.stdout.readline()  # under way: a few environments done, some in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    touched = set()
    for sub in ENVS:  # whatever point it was killed at, no second key, nothing half-retired
        keys = fake.keys(sub)
        ours = [k for k in keys if k.name.split("@")[0] == name]
        assert len(ours) <= 1
        if ours:
            touched.add(sub)
            assert ours[0].enabled
    assert touched
    check_given_back(fake, touched, name, resume(fake, tmp_path, args))
