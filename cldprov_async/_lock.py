"""``RotationLock``: one rotation at a time per account and server.

Two runs writing to one account's keys at once could each make a key for the same due date.
The lock is keyed on (server host, account id). With a fleet Redis (``rate_limit_url`` or
``rate_limit_redis``) it is a Redis lease (``SET NX PX``, renewed while held, released by
compare-and-delete in a script; one key in the budget's hash slot, so it works on Sentinel and
Cluster too): a holder that dies stops renewing and the lease expires. Without one it is a
lock file held with ``fcntl.flock``, which the kernel releases when its holder dies. Either
way the holder's host and process id are recorded (never a credential), so a refusal can name
them.

Where the lock files live: ``$CLDPROV_LOCK_DIR``, else ``$XDG_RUNTIME_DIR/cldprov-async``,
else ``$XDG_CACHE_HOME/cldprov-async`` (``~/.cache/cldprov-async``).

Imports: the fleet's Redis factory and key namespace, errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import secrets
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from . import _fleet
from .errors import RotationLockedError, RotationLockError

log = logging.getLogger("cldprov_async")

LOCK_DIR_ENV = "CLDPROV_LOCK_DIR"
#: Seconds a Redis lease lives without renewal (it is renewed every third of that).
LEASE_TTL = 30.0
#: Compare-and-renew and compare-and-delete: the lease is ours only while it holds our value.
_RENEW = """if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end"""
_RELEASE = """if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1]) else return 0 end"""


def lock_directory() -> Path:
    """Where lock files go (see the module docstring)."""
    explicit = os.environ.get(LOCK_DIR_ENV)
    if explicit:
        return Path(explicit)
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime:
        return Path(runtime) / "cldprov-async"
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "cldprov-async"


class RotationLock:
    """Held by one run at a time per (``host``, ``account_id``); an async context manager.

    Made by ``client.rotation_lock()``. ``acquire`` never waits: it takes the lock or raises.

    Args:
        host: the API server's ``host:port``.
        account_id: the account.
        fleet: the fleet's Redis (None: a lock file on this machine).
        directory: where the lock file goes (default: ``lock_directory()``).
        ttl: seconds a Redis lease outlives its last renewal.

    Attributes:
        host: the API server's ``host:port`` (half of the lock's key).
        account_id: the account (the other half).
        me: this process's ``{"host": ..., "pid": ...}``, recorded with the lock so that
            a refused run can name its holder.

    Raises:
        RotationLockedError: (from ``acquire``) another run holds it; names its host and pid.
        RotationLockError: (from ``acquire``) the lock's Redis did not answer.
    """

    def __init__(
        self,
        host: str,
        account_id: str,
        *,
        fleet: _fleet.FleetTarget | _fleet.FleetURL | None = None,
        directory: str | Path | None = None,
        ttl: float = LEASE_TTL,
    ) -> None:
        self.host = host
        self.account_id = account_id
        if isinstance(fleet, _fleet.FleetURL):
            fleet = _fleet.FleetTarget(url=fleet)
        self._fleet = fleet
        self._directory = None if directory is None else Path(directory)
        self._ttl_ms = int(ttl * 1000)
        self._fd: int | None = None
        self._redis: Any = None
        self._value: str | None = None
        self._renewer: asyncio.Task[None] | None = None
        self.me = {"host": socket.gethostname(), "pid": os.getpid()}

    def __repr__(self) -> str:
        kind = "redis" if self._fleet is not None else "file"
        return f"RotationLock({self.host!r}, {self.account_id!r}, {kind})"

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None or self._value is not None

    @property
    def path(self) -> Path:
        """The lock file (used when there is no Redis)."""
        digest = hashlib.sha256(f"{self.host}\n{self.account_id}".encode()).hexdigest()[:24]
        return (self._directory or lock_directory()) / f"rotate-{digest}.lock"

    async def acquire(self) -> None:
        """Take the lock now, or raise: it never waits (a cron run that finds another
        running should stop, not queue behind it).

        Raises:
            RotationLockedError: Another run holds it; the message names its host and pid.
            RotationLockError: The lock's Redis did not answer.
            RuntimeError: This object holds it already.
        """
        if self.held:
            raise RuntimeError("this RotationLock is held already")
        if self._fleet is None:
            self._take_file()
        else:
            await self._take_lease(self._fleet)

    async def release(self) -> None:
        """Let the lock go (a lease only if it is still ours)."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # closing releases the flock
        if self._value is not None:
            await self._drop_lease()

    async def __aenter__(self) -> RotationLock:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.release()

    # -- a lock file ---------------------------------------------------------------------------

    def _take_file(self) -> None:
        path = self.path
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raw = os.pread(fd, 4096, 0)
            os.close(fd)
            raise self._refusal(raw.decode("utf-8", "replace")) from None
        except BaseException:
            os.close(fd)
            raise
        record = json.dumps({**self.me, "since": int(time.time())}).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, record, 0)
        self._fd = fd

    def _refusal(self, recorded: str | None) -> RotationLockedError:
        try:
            holder = json.loads(recorded or "")
            host, pid = str(holder["host"]), int(holder["pid"])
        except (ValueError, KeyError, TypeError):
            host, pid = "unknown host", None
        return RotationLockedError(
            f"another rotation of account {self.account_id} on {self.host} is running:"
            f" host {host}, pid {pid if pid is not None else 'unknown'}",
            host=host,
            pid=pid,
        )

    # -- a Redis lease -------------------------------------------------------------------------

    def _key(self, fleet: _fleet.FleetTarget) -> str:
        tag = _fleet.budget_tag(fleet.prefix, self.host, self.account_id)
        return _fleet.fleet_key(tag, "rotation-lock")  # in the budget's hash slot

    async def _take_lease(self, fleet: _fleet.FleetTarget) -> None:
        client = fleet.connect()
        redis = client.redis
        key = self._key(fleet)
        value = json.dumps({**self.me, "token": secrets.token_hex(8)})
        try:
            async with asyncio.timeout(2 * _fleet.REDIS_TIMEOUT):
                taken = await redis.set(key, value, nx=True, px=self._ttl_ms)
                holder = None if taken else await redis.get(key)
        except Exception as exc:
            with contextlib.suppress(Exception):
                await client.aclose()
            raise RotationLockError(
                f"the rotation lock's Redis at {client.where} did not answer ({type(exc).__name__})"
            ) from None
        if not taken:
            with contextlib.suppress(Exception):
                await client.aclose()
            raise self._refusal(holder.decode() if isinstance(holder, bytes) else holder)
        self._redis, self._value = client, value
        self._renewer = asyncio.get_running_loop().create_task(self._renew(key, value))

    async def _renew(self, key: str, value: str) -> None:
        while True:
            await asyncio.sleep(self._ttl_ms / 3000)
            try:
                async with asyncio.timeout(2 * _fleet.REDIS_TIMEOUT):
                    kept = await self._if_ours(self._redis.redis, key, value, "pexpire")
            except Exception as exc:
                log.warning("could not renew the rotation lock (%s)", type(exc).__name__)
                continue
            if not kept:
                log.warning("the rotation lock expired and another run took it")
                return

    async def _if_ours(self, redis: Any, key: str, value: str, action: str) -> bool:
        """Compare and ``pexpire``/``delete`` in one script on one key (atomic, and allowed
        on Redis Cluster, where the key's slot decides the node)."""
        script = _RENEW if action == "pexpire" else _RELEASE
        done = await redis.eval(script, 1, key, value, self._ttl_ms)
        return bool(done)

    async def _drop_lease(self) -> None:
        value, self._value = self._value, None
        renewer, self._renewer = self._renewer, None
        if renewer is not None:
            renewer.cancel()
            with contextlib.suppress(BaseException):
                await renewer
        redis, self._redis = self._redis, None
        if redis is None or value is None or self._fleet is None:
            return
        try:
            async with asyncio.timeout(2 * _fleet.REDIS_TIMEOUT):
                await self._if_ours(redis.redis, self._key(self._fleet), value, "delete")
        except Exception as exc:  # it expires by itself
            log.warning("could not release the rotation lock (%s)", type(exc).__name__)
        finally:
            with contextlib.suppress(Exception):
                await redis.aclose()
