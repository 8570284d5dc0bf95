"""The servers and processes every benchmark shares: the fake server, the canned one, Redis,
and a worker process to measure, with the CPU time they and the rest of the machine spend.

Shared pieces sit below the runners: the runners import this module, never the other way
round (tests/test_imports.py).

Imports: the settings only.
"""

from __future__ import annotations

import json
import os
import re
import resource
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.settings import ACCOUNT, KEY, ROOT, SECRET, env

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a live process, from /proc (None where there is no /proc)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def _busy_seconds() -> float | None:
    """CPU time the whole machine has spent busy (all cores, all processes), from /proc/stat."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLK_TCK


def _children() -> float:
    """CPU time of the children this process has reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass
class Server:
    url: str
    pid: int

    def cpu(self) -> float | None:
        return _cpu_seconds(self.pid)


@contextmanager
def serve(module: str, *args: str, announce: str = "CLDPROV_FAKE_URL") -> Iterator[Server]:
    """``python -m module args`` in its own process, once it prints ``ANNOUNCE=URL``;
    SIGTERM on the way out."""
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        cwd=ROOT,
    )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 30)
        line = process.stdout.readline() if ready else b""
        match = re.fullmatch(announce.encode() + rb"=(http://127\.0\.0\.1:\d+)\n", line)
        if match is None:
            raise RuntimeError(f"{module} did not start: {line!r}")
        yield Server(match.group(1).decode(), process.pid)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


@contextmanager
def fake_server(*args: str) -> Iterator[Server]:
    """The standalone fake server (``python -m cldprov_async.testing``), fresh."""
    credentials = ["--account-id", ACCOUNT, "--api-key", KEY, "--api-secret", SECRET]
    with serve("cldprov_async.testing", "--port", "0", *credentials, *args) as server:
        yield server


class WorkerFailed(RuntimeError):
    pass


def run_worker(worker_args: Sequence[str], server_args: Sequence[str]) -> dict[str, Any]:
    """Start the worker (it imports meanwhile), then a fresh server; hand it the URL."""
    command = [sys.executable, "-m", "benchmarks.worker", *worker_args]
    command += ["--account-id", ACCOUNT, "--api-key", KEY, "--api-secret", SECRET]
    worker = subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env(),
        cwd=ROOT,
    )
    try:
        with fake_server(*server_args) as server:
            busy0, wall0 = _busy_seconds(), time.perf_counter()
            server0, worker0, children0 = server.cpu(), _cpu_seconds(worker.pid), _children()
            out, err = worker.communicate(input=f"{server.url}\n".encode(), timeout=900)
            server1, children1 = server.cpu(), _children()
            busy1, wall1 = _busy_seconds(), time.perf_counter()
    except BaseException:
        worker.kill()
        worker.communicate()
        raise
    lines = [ln for ln in out.decode().splitlines() if ln.startswith("{")]
    if worker.returncode != 0 or not lines:
        tail = err.decode(errors="replace").strip().splitlines()[-5:]
        raise WorkerFailed(f"worker {' '.join(worker_args)} exited {worker.returncode}: {tail}")
    record: dict[str, Any] = json.loads(lines[-1])
    if server0 is not None and server1 is not None:
        record["server_cpu_s"] = server1 - server0
        if busy0 is not None and busy1 is not None and worker0 is not None:
            # Whatever else ran on the machine meanwhile (other people's tests, say): the CPU
            # busy time of the whole machine, less the server's and the worker's.
            worker_cpu = children1 - children0 - worker0
            other = (busy1 - busy0) - worker_cpu - (server1 - server0)
            record["background_cores"] = max(0.0, other) / (wall1 - wall0)
    return record


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_command(port: int) -> list[str]:
    """A redis-server on a loopback port with persistence off (the tests start it so too)."""
    persistence_off = ["--save", "", "--appendonly", "no"]
    return ["redis-server", "--port", str(port), "--bind", "127.0.0.1", *persistence_off]


@contextmanager
def redis_server() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        redis_command(port),
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.02)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)
