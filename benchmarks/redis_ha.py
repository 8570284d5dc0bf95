"""Real Redis topologies on free loopback ports, for the fleet's tests and benchmarks.

* ``Standalone``: one ``redis-server``.
* ``Sentinels``: a master, one replica and three sentinels (Debian's ``redis-server`` in
  ``--sentinel`` mode, each with its own writable copy of its config), ``down-after``
  1 second, serving the service ``cldprov``.
* ``Cluster``: three masters with one replica each, made by ``redis-cli --cluster create``
  (``redis-tools``), node timeout 1 second.

Every server is a child process with persistence off. ``stop()`` ends them all (SIGCONT,
SIGTERM, then SIGKILL) and may be called twice; use the topologies as context managers so
they stop even when a test fails. No wait here is without a deadline.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import redis

SERVICE = "cldprov"
#: Seconds a topology may take to come up or to fail over before we give up.
DEADLINE = 30.0


def free_port(bus: bool = False) -> int:
    """A free loopback port; with ``bus``, one whose cluster bus port (+10000) is free too."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if not bus:
            return port
        if port + 10000 < 65536:
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
                return port
    raise RuntimeError("no free loopback port")


def wait_until(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    """Poll ``check`` (Redis errors count as not yet) until it holds, or raise."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            if check():
                return
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def client(port: int) -> Any:  # redis-py's sync client, replies decoded
    return redis.Redis(port=port, decode_responses=True, socket_timeout=2.0)


class Server:
    """One ``redis-server`` child process."""

    def __init__(self, port: int, args: list[str]) -> None:
        self.port = port
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", *self.args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self) -> None:
        """SIGKILL, as a crashed host."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.signal(signal.SIGCONT)  # a paused server cannot act on SIGTERM
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None


def data_args(port: int, workdir: Path | None = None) -> list[str]:
    """A data node: loopback, persistence off, replicas synced without delay; a replica
    writes the master's snapshot it loads into ``workdir`` (its working directory else)."""
    where = ["--dir", str(workdir), "--dbfilename", f"dump-{port}.rdb"] if workdir else []
    return [
        *where,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--repl-diskless-sync-delay",
        "0",
    ]


class _Topology:
    servers: list[Server]

    def __init__(self) -> None:
        self.servers = []

    def _spawn(self, port: int, args: list[str]) -> Server:
        server = Server(port, args)
        self.servers.append(server)
        server.start()
        return server

    def node(self, port: int) -> Server:
        return next(s for s in self.servers if s.port == port)

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class Standalone(_Topology):
    """One ``redis-server``."""

    def __init__(self) -> None:
        super().__init__()
        self.port = free_port()

    def start(self) -> Standalone:
        self.server = self._spawn(self.port, data_args(self.port))
        wait_until(lambda: bool(client(self.port).ping()), "redis-server to start")
        return self

    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"


class Sentinels(_Topology):
    """A master, one replica, three sentinels watching them (quorum 2)."""

    def __init__(self, workdir: Path, down_after_ms: int = 1000) -> None:
        super().__init__()
        self.workdir = workdir
        self.down_after_ms = down_after_ms
        self.sentinel_ports: list[int] = []

    def start(self) -> Sentinels:
        try:
            master, replica = free_port(), free_port()
            self._spawn(master, data_args(master, self.workdir))
            replica_of = ["--replicaof", "127.0.0.1", str(master)]
            self._spawn(replica, [*data_args(replica, self.workdir), *replica_of])
            wait_until(
                lambda: client(replica).info("replication")["master_link_status"] == "up",
                "the replica to sync",
            )
            for _ in range(3):
                port = free_port()
                conf = self.workdir / f"sentinel-{port}.conf"  # each its own: sentinels rewrite it
                conf.write_text(
                    f"port {port}\nbind 127.0.0.1\ndir {self.workdir}\n"
                    f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
                    f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}\n"
                    f"sentinel failover-timeout {SERVICE} 2000\n"
                )
                self._spawn(port, [str(conf), "--sentinel"])
                self.sentinel_ports.append(port)
            wait_until(self._watching, "the sentinels to see the replica and each other")
        except BaseException:
            self.stop()
            raise
        return self

    def _watching(self) -> bool:
        for port in self.sentinel_ports:
            state = client(port).sentinel_master(SERVICE)
            if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                return False
        return True

    def url(self, scheme: str = "redis+sentinel", query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports)
        return f"{scheme}://{hosts}/{SERVICE}" + (f"?{query}" if query else "")

    def master_port(self) -> int:
        for port in self.sentinel_ports:
            try:
                return int(client(port).sentinel_get_master_addr_by_name(SERVICE)[1])
            except redis.RedisError:
                continue
        raise RuntimeError("no sentinel answers")

    def kill_master(self) -> int:
        """SIGKILL the master; returns its port."""
        port = self.master_port()
        self.node(port).kill()
        return port

    def wait_promoted(self, old: int) -> int:
        """Wait until a replica is the master the sentinels name; returns its port."""
        wait_until(
            lambda: (
                self.master_port() != old
                and client(self.master_port()).info("replication")["role"] == "master"
            ),
            "a replica to be promoted",
        )
        return self.master_port()


class Cluster(_Topology):
    """Three masters with one replica each."""

    def __init__(self, workdir: Path, node_timeout_ms: int = 1000) -> None:
        super().__init__()
        self.workdir = workdir
        self.node_timeout_ms = node_timeout_ms
        self.ports: list[int] = []

    def start(self) -> Cluster:
        try:
            self.ports = [free_port(bus=True) for _ in range(6)]
            for port in self.ports:
                self._spawn(
                    port,
                    [
                        *data_args(port, self.workdir),
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        str(self.workdir / f"nodes-{port}.conf"),
                        "--cluster-node-timeout",
                        str(self.node_timeout_ms),
                    ],
                )
            wait_until(lambda: all(client(p).ping() for p in self.ports), "the nodes to start")
            subprocess.run(
                [
                    "redis-cli",
                    "--cluster",
                    "create",
                    *(f"127.0.0.1:{p}" for p in self.ports),
                    "--cluster-replicas",
                    "1",
                    "--cluster-yes",
                ],
                check=True,
                capture_output=True,
                timeout=DEADLINE,
            )
            wait_until(self._healthy, "the cluster to be ready")
        except BaseException:
            self.stop()
            raise
        return self

    def _alive(self) -> list[int]:
        return [s.port for s in self.servers if s.proc is not None and s.proc.poll() is None]

    def _healthy(self) -> bool:
        for port in self._alive():
            if client(port).cluster("info")["cluster_state"] != "ok":
                return False
            replication = client(port).info("replication")
            if replication["role"] == "slave" and replication["master_link_status"] != "up":
                return False
        return True

    def url(self, scheme: str = "redis+cluster", query: str = "") -> str:
        hosts = ",".join(f"127.0.0.1:{p}" for p in self.ports[:3])
        return f"{scheme}://{hosts}" + (f"?{query}" if query else "")

    def master_of(self, key: str) -> int:
        """The port of the master that holds ``key``'s slot, as a live node sees it."""
        node = client(self._alive()[0])
        slot = int(node.cluster("keyslot", key))
        for entry in node.execute_command("CLUSTER", "SLOTS"):
            if int(entry[0]) <= slot <= int(entry[1]):
                return int(entry[2][1])
        raise RuntimeError(f"no master holds slot {slot}")

    def wait_promoted(self, key: str, old: int) -> int:
        """Wait until another master holds ``key``'s slot and the cluster is whole again."""
        wait_until(
            lambda: self.master_of(key) != old and self._healthy(), "a replica to take the slot"
        )
        return self.master_of(key)
