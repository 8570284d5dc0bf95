"""The key cache: what key listings said about each environment's keys, so that a run whose
product-environment listing shows no change needs no key listing.

Per account and server it holds, for each environment, its keys as a listing showed them
(``CachedKey``: name, api_key, enabled, dates, dedication; never a secret) and when they
were fetched (``CacheEntry``). An entry is trusted for at most ``ttl`` (7 days by default;
``CacheEntry.expires_at`` spreads the expiries over the last fifth of it). Whether the
listing still matches is the caller's question (``_inventory``); this package stores.

Two stores behind ``KeyCache``: the Redis of ``rate_limit_url`` when one is set
(``_redis``), else a file under ``$XDG_CACHE_HOME/cldprov-async/`` (``_file``). The cache
only ever saves requests: a store that is corrupt or unreachable logs one warning (logger
``cldprov_async.keycache``), reads as empty, and is rebuilt by the next write.

Imports: ``_fleet`` (the Redis client factory and the hash tag), the lifecycle's key shape.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Collection, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from .. import _fleet
from ._file import FileStore, Merge, StoreUnavailable, StoreUnreadable, default_directory
from ._records import (
    CachedKey,
    CacheEntry,
    CorruptEntry,
    apply_changes,
    entry_from_json,
    entry_json,
)
from ._redis import RedisStore

__all__ = [
    "DEFAULT_TTL",
    "CacheEntry",
    "CachedKey",
    "KeyCache",
    "apply_changes",
    "default_directory",
    "open_key_cache",
]

log = logging.getLogger("cldprov_async.keycache")

#: How long an entry is trusted at most without a key listing.
DEFAULT_TTL = timedelta(days=7)
#: Seconds each call to a Redis store may take (a whole account's entries in one read).
REDIS_CACHE_TIMEOUT = 2.0


class Store(Protocol):
    where: str

    async def load(self, ids: Collection[str]) -> dict[str, object]: ...

    async def save(self, changes: Mapping[str, dict[str, Any] | None], merge: Merge) -> None: ...

    async def close(self) -> None: ...


class KeyCache:
    """The cache of one account on one server; ``where`` names its file or Redis hash.

    The client opens it (``CldProvisioning(key_cache=...)``); audits and age-filtered
    rotations read it, and every rotation writes what it did into it.

    Args:
        store: where the entries live (a file or a Redis hash).
        ttl: how long an entry is trusted at most (positive).

    Attributes:
        store: where the entries live.
        ttl: how long an entry is trusted at most.

    Raises:
        TypeError: ``ttl`` is not a timedelta.
        ValueError: ``ttl`` is not positive.
    """

    def __init__(self, store: Store, *, ttl: timedelta = DEFAULT_TTL) -> None:
        if not isinstance(ttl, timedelta):
            raise TypeError(f"key_cache_ttl must be a timedelta, not {type(ttl).__name__}")
        if ttl <= timedelta(0):
            raise ValueError(f"key_cache_ttl must be positive, not {ttl}")
        self.store = store
        self.ttl = ttl
        self._failing = False  # warned about an unavailable store, not yet recovered

    @property
    def where(self) -> str:
        """The file's path, or the Redis hash's name and server, for messages."""
        return self.store.where

    def __repr__(self) -> str:
        return f"KeyCache({self.where!r}, ttl={self.ttl})"

    def fresh(self, sub_account_id: str, entry: CacheEntry, now: datetime) -> bool:
        """Whether an entry may still be trusted without a key listing.

        Args:
            sub_account_id: The environment the entry belongs to.
            entry: The entry, as ``get`` returned it.
            now: The time to judge at (the client's clock).

        Returns:
            True before the entry's expiry (``CacheEntry.expires_at``).
        """
        return now < entry.expires_at(sub_account_id, self.ttl)

    async def get(self, ids: Collection[str]) -> dict[str, CacheEntry]:
        """The readable entries of some environments. Never raises for the store's sake: a
        failure is one warning and an empty answer, so the caller lists keys instead.

        Args:
            ids: The environments wanted.

        Returns:
            ``{sub_account_id: entry}`` for each readable entry (stale ones included: see
            ``fresh``); unreadable ones are left out, with a warning.
        """
        try:
            raw = await self.store.load(ids)
        except StoreUnreadable as exc:
            log.warning(
                "key cache %s is unreadable (%s); listing keys instead and rebuilding it",
                self.where,
                exc,
            )
            return {}
        except StoreUnavailable as exc:
            self._unavailable(exc)
            return {}
        self._failing = False
        wanted = set(ids)
        out: dict[str, CacheEntry] = {}
        bad: list[str] = []
        for sub, data in raw.items():
            if sub not in wanted:
                continue
            try:
                out[sub] = entry_from_json(data)
            except CorruptEntry as exc:
                bad.append(f"{sub}: {exc}")
        if bad:
            log.warning(
                "key cache %s: %d unreadable entr%s (%s); listing those environments instead"
                " and rewriting them",
                self.where,
                len(bad),
                "y" if len(bad) == 1 else "ies",
                bad[0],
            )
        return out

    async def put(self, changes: Mapping[str, CacheEntry | None], now: datetime) -> None:
        """Write entries atomically. A newer entry another process wrote is kept; entries
        past the ttl are dropped. Never raises for the store's sake (one warning).

        Args:
            changes: ``{sub_account_id: entry}``; None forgets that environment's entry.
            now: The time to judge the stored entries' expiry at.
        """
        if not changes:
            return
        as_json = {sub: None if e is None else entry_json(e) for sub, e in changes.items()}

        def merge(current: dict[str, object]) -> dict[str, object]:
            out: dict[str, object] = {}
            for sub, data in current.items():
                when = _fetched_at(data)
                if when is not None and now < when + self.ttl:
                    out[sub] = data
            for sub, entry in changes.items():
                if entry is None:
                    out.pop(sub, None)
                    continue
                theirs = _fetched_at(out.get(sub))
                if theirs is None or theirs <= entry.fetched_at:
                    out[sub] = as_json[sub]
            return out

        for attempt in (1, 2):  # a Redis key of the wrong type is deleted on the retry
            try:
                await self.store.save(as_json, merge)
            except StoreUnreadable:
                if attempt == 2:
                    return
                continue
            except StoreUnavailable as exc:
                self._unavailable(exc)
                return
            self._failing = False
            return

    def _unavailable(self, exc: Exception) -> None:
        if not self._failing:
            log.warning("key cache %s is unavailable (%s); listing keys instead", self.where, exc)
        self._failing = True

    async def close(self) -> None:
        """Release the store (a Redis connection; a file holds nothing open)."""
        await self.store.close()


def _fetched_at(data: object) -> datetime | None:
    """The fetch time of a stored entry's JSON, or None when it has none that reads."""
    if not isinstance(data, dict) or not isinstance(data.get("fetched_at"), str):
        return None
    try:
        when = datetime.fromisoformat(data["fetched_at"])
    except ValueError:
        return None
    return when if when.tzinfo is not None else None


def _file_name(server: str, account_id: str) -> str:
    """``keys-ACCOUNT-HOST_PORT-HASH.json``: readable, and apart for every account and server."""
    digest = hashlib.sha256(f"{server}/{account_id}".encode()).hexdigest()[:12]
    readable = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{account_id}-{server}")[:80]
    return f"keys-{readable}-{digest}.json"


def open_key_cache(
    *,
    account_id: str,
    server: str,
    directory: str | Path | None = None,
    fleet: _fleet.FleetTarget | _fleet.FleetURL | None = None,
    ttl: timedelta = DEFAULT_TTL,
) -> KeyCache:
    """The cache for ``account_id`` on ``server`` (``host:port``): a file in ``directory``
    when one is given, else the Redis of ``fleet`` when one is set, else a file in
    ``default_directory()``. Nothing is read or connected until the first use."""
    store: Store
    if directory is None and fleet is not None:
        target = _fleet.FleetTarget(url=fleet) if isinstance(fleet, _fleet.FleetURL) else fleet
        key = _fleet.fleet_key(_fleet.budget_tag(target.prefix, server, account_id), "keys")
        store = RedisStore(
            lambda: target.connect(timeout=REDIS_CACHE_TIMEOUT),
            key,
            where=_where(target),
            ttl=ttl,
        )
    else:
        folder = default_directory() if directory is None else Path(directory)
        path = folder / _file_name(server, account_id)
        store = FileStore(path, server=server, account_id=account_id)
    return KeyCache(store, ttl=ttl)


def _where(target: _fleet.FleetTarget) -> str:
    """Where the cache's Redis is, for messages: no credentials, no query."""
    if target.adopted is not None:
        return target.adopted.where
    url = target.url
    assert url is not None
    if url.nodes:
        return ",".join(f"{host}:{port}" for host, port in url.nodes)
    rest = url.url.split("://", 1)[-1].split("?", 1)[0]
    return rest.rpartition("@")[2] or rest
