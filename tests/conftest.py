"""Shared fixtures: a scriptable recording HTTP server on 127.0.0.1. And the suite's order.

(aioresponses comes from the installed plugin's ``cldprov_aioresponses`` fixture.)

The suite runs on parallel workers (pytest-xdist, ``addopts`` in pyproject.toml), so every
test is independent: servers on port 0 (or a port checked to be this test's own), files
under ``tmp_path``, nothing written to the repository. A test that takes seconds is marked
``@pytest.mark.slow`` (or its module, with ``pytestmark``); slow tests are collected first,
so the workers start the longest ones at once instead of finding one last at the end.
A module's tests run on one worker (``--dist loadfile``), so a module-scoped fixture (the
built wheel, OpenTelemetry's global providers) is set up once. (``--dist loadgroup`` with
``xdist_group`` marks did not keep a group together with pytest 9 and xdist 3.8 here.)

The fleet's tests (``REAL_TIME``) run one after another on one worker: several processes
each, on real windows, failovers and Redis stalls, their checks bound how late a process may
act; two such tests at once on 2 cores made them late. The other workers meanwhile run the
rest, their CPU-heavy steps niced (``heavy``).
"""

from __future__ import annotations

import asyncio
import enum
import json
import os
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from multidict import CIMultiDictProxy, MultiMapping


@pytest.fixture(autouse=True)
def _private_cache_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test (and every process it starts) gets its own XDG cache directory: the key
    cache never reaches the real home, and parallel tests never share one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))


def pytest_configure(config: pytest.Config) -> None:
    """Bytecode is kept: the suite starts a few hundred Python processes (the CLI, benchmarks,
    examples, pytest itself, which rewrites this package's modules as a plugin's). Where the
    environment sets ``PYTHONDONTWRITEBYTECODE`` (these machines do), each would compile
    every module again; the workers and the processes the tests start inherit the
    environment without it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False


#: Test files on real time across processes: one unit of work for pytest-xdist, started first.
REAL_TIME = (
    "test_fleet.py",
    "test_fleet_gap.py",
    "test_fleet_sentinel.py",
    "test_fleet_cluster.py",
)


@pytest.hookimpl(optionalhook=True)  # xdist's: absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile``, but the ``REAL_TIME`` files are one unit, and units go out in
    collection order (not xdist's largest-first, which sent the slowest files last)."""
    from xdist.scheduler import LoadFileScheduling  # type: ignore[import-untyped]

    class _Scheduling(LoadFileScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            scope: str = super()._split_scope(nodeid)
            return "real time" if os.path.basename(scope) in REAL_TIME else scope

    config.option.loadscopereorder = False
    return _Scheduling(config, log)


@pytest.hookimpl(optionalhook=True)  # xdist's: absent with -p no:xdist
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core and one more. The fleet's tests (one worker's unit)
    mostly wait on real windows, failovers and processes; the extra worker uses the core they
    leave idle. Their processes keep it when they wake because the CPU-heavy steps run niced
    (``heavy``). (On 2 cores: about 178 s with 2 workers, 118-120 s with 3 and this order.)"""
    return (os.cpu_count() or 1) + 1


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The real-time files first (the longest unit), then slow tests (a stable sort:
    otherwise the order stays as collected)."""

    def rank(item: pytest.Item) -> int:
        if item.path.name in REAL_TIME:
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=rank)


# --- the recording server -----------------------------------------------------------------------
class _Unset(enum.Enum):
    UNSET = enum.auto()


UNSET = _Unset.UNSET


@dataclass(frozen=True)
class Reply:
    """One scripted answer. ``json`` wins over ``body``; ``delay`` seconds before answering."""

    status: int = 200
    json: Any = UNSET
    body: bytes | str = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    raw_path: str  # percent-encoding intact, without the query string
    raw_query: str
    query: MultiMapping[str]  # decoded
    headers: CIMultiDictProxy[str]
    body: bytes
    transport: asyncio.BaseTransport | None

    def json(self) -> Any:
        return json.loads(self.body)


class RecordingServer:
    """Answers every request with the next queued Reply, else the default one; records all."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.default = Reply(json={})
        self._queue: deque[Reply] = deque()
        self._runner: web.ServerRunner | None = None
        self.url = ""

    def respond(self, status: int = 200, **kwargs: Any) -> None:
        """Set the answer to every request from now on (see ``Reply``)."""
        self.default = Reply(status, **kwargs)

    def enqueue(self, status: int = 200, **kwargs: Any) -> None:
        """Answer the next unanswered request this way, once."""
        self._queue.append(Reply(status, **kwargs))

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        body = await request.read()
        path, _, query = request.raw_path.partition("?")
        self.requests.append(
            Recorded(
                request.method,
                path,
                query,
                request.query,
                request.headers,
                body,
                request.transport,
            )
        )
        reply = self._queue.popleft() if self._queue else self.default
        if reply.delay:
            await asyncio.sleep(reply.delay)
        headers = dict(reply.headers)
        if reply.json is not UNSET:
            payload: bytes | str = json.dumps(reply.json)
            headers.setdefault("Content-Type", "application/json")
        else:
            payload = reply.body
        raw = payload.encode() if isinstance(payload, str) else payload
        return web.Response(status=reply.status, body=raw, headers=headers)

    async def start(self) -> None:
        server = web.Server(self._handle, handler_cancellation=True)
        self._runner = web.ServerRunner(server, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture
async def recording_server_factory() -> AsyncIterator[Callable[[], Awaitable[RecordingServer]]]:
    """Start as many recording servers as a test needs; all are stopped afterwards."""
    started: list[RecordingServer] = []

    async def start() -> RecordingServer:
        server = RecordingServer()
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()


@pytest.fixture
async def recording_server(
    recording_server_factory: Callable[[], Awaitable[RecordingServer]],
) -> RecordingServer:
    """A recording server on 127.0.0.1 answering ``200 {}`` until scripted otherwise."""
    return await recording_server_factory()
