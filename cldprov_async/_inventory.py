"""Each environment's keys for the price of the product-environment listing, when it can be.

``KeyInventory`` takes the environments of a listing (their ``api_access_keys``: key ids and
enabled flags) and the key cache, and gives each environment's keys: from the cache when
its entry is trusted, else from a key listing, which refreshes the entry. An entry is
trusted when all of these hold:

- the listing shows exactly the entry's key ids, with the same enabled flags;
- it is fresh (``KeyCache.fresh``: at most the cache's ttl old);
- it holds no pending hand-off (the lifecycle's ``decide`` says none): handing a key off
  renames it without changing a flag, so such an environment is listed on every run;
- the run did not ask for ``refresh``.

Every other change a rotation makes flips a flag the listing shows, or writes a date that
never changes after, so the states ``decide`` gives from a trusted entry are the server's.
What the listing cannot show (a key renamed by hand) waits for ``refresh`` or the expiry.

A run that writes (a rotation) tells the inventory what it did (``record``, ``forget``), so
the next run finds the cache current. Writes are buffered and flushed at most every
``flush_every`` seconds and on ``close``; a run killed before that only costs listings.

Imports: the access-key operations (key listings), the key cache, the lifecycle, the clock,
models, config and errors.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import datetime

from attrs import frozen

from ._access_keys import AccessKeyOperations
from ._clock import SYSTEM_CLOCK, utc
from ._config import RetryConfig
from ._keycache import CacheEntry, KeyCache
from ._lifecycle import KeyLike, LifecyclePolicy, decide, pending_name
from ._operation import Priority
from .errors import CldProvisioningError, NotFoundError
from .models import AccessKey, ProductEnvironment

#: Seconds between two writes of buffered entries to the cache during a run.
FLUSH_EVERY = 30.0
_NO_POLICY = LifecyclePolicy()  # whether a hand-off is pending does not depend on one
PENDING = pending_name("")  # "@pending": the label's suffix
_SYSTEM_NOW = functools.partial(utc, SYSTEM_CLOCK)


@frozen
class EnvironmentKeys:
    """One environment's keys as a run knows them.

    Attributes:
        environment: the environment, as the product-environment listing showed it.
        keys: its keys: ``AccessKey`` from a key listing (secrets included, in memory
            only), or ``CachedKey`` records from the cache (no secrets).
        from_cache: whether ``keys`` came from the cache (no request).
        fetched_at: when the keys were listed (by this run or the one that cached them).
        error: why the key listing failed (then ``keys`` is empty).
    """

    environment: ProductEnvironment
    keys: tuple[KeyLike, ...] = ()
    from_cache: bool = False
    fetched_at: datetime | None = None
    error: CldProvisioningError | None = None

    @property
    def sub_account_id(self) -> str:
        return self.environment.id


def listing_flags(environment: ProductEnvironment) -> dict[str, bool] | None:
    """api_key -> enabled as the listing shows them; None when a key id appears twice."""
    flags = {k.key: k.enabled for k in environment.api_access_keys}
    return flags if len(flags) == len(environment.api_access_keys) else None


class KeyInventory:
    """Keys per environment, from the cache when trusted, else listed (see the module).

    Args:
        api: the access-key operations that list keys.
        cache: the key cache; None lists every environment and remembers nothing.
        refresh: list every environment (the entries are rewritten).
        clock: the time of decisions and fetches (timezone-aware); the system clock
            by default (runs pass the client's).
        retries: the key listings' retry budget.
        priority: the key listings' priority (``bulk`` for account-wide runs).
        flush_every: seconds between writes of buffered entries during a run.
    """

    def __init__(
        self,
        api: AccessKeyOperations,
        cache: KeyCache | None,
        *,
        refresh: bool = False,
        clock: Callable[[], datetime] = _SYSTEM_NOW,
        retries: RetryConfig | None = None,
        priority: Priority = "normal",
        flush_every: float = FLUSH_EVERY,
    ) -> None:
        if not isinstance(refresh, bool):
            raise TypeError(f"refresh must be a bool, not {type(refresh).__name__}")
        self.api = api
        self.cache = cache
        self.refresh = refresh
        self.clock = clock
        self.retries = retries
        self.priority: Priority = priority
        self.flush_every = flush_every
        #: Key listings sent, and environments answered from the cache, so far.
        self.listed = 0
        self.from_cache = 0
        self._entries: dict[str, CacheEntry | None] = {}
        self._changes: dict[str, CacheEntry | None] = {}
        self._flushed = time.monotonic()
        self._flush_lock = asyncio.Lock()

    # -- reading ---------------------------------------------------------------------------

    async def prefetch(self, ids: Iterable[str]) -> None:
        """Read the entries of ``ids`` in one go (the cache is read once per id at most)."""
        wanted = [sub for sub in dict.fromkeys(ids) if sub not in self._entries]
        if self.cache is None or self.refresh or not wanted:
            return
        found = await self.cache.get(wanted)
        for sub in wanted:
            self._entries.setdefault(sub, found.get(sub))

    async def trusted(self, environment: ProductEnvironment) -> CacheEntry | None:
        """The cache entry of ``environment`` when it may stand in for a key listing."""
        sub = environment.id
        if sub not in self._entries:
            await self.prefetch([sub])
        entry = self._entries.get(sub)
        if entry is None or self.refresh or self.cache is None:
            return None
        now = self.clock()
        if not self.cache.fresh(sub, entry, now) or listing_flags(environment) != entry.flags():
            return None
        # Only a key named ``...@pending`` can be a pending hand-off: decide for those only.
        named_pending = any(k.name.endswith(PENDING) for k in entry.keys)
        if named_pending and decide(entry.keys, now, _NO_POLICY).hand_off is not None:
            return None
        return entry

    async def keys(self, environment: ProductEnvironment) -> EnvironmentKeys:
        """The environment's keys, from the cache or a key listing; a failed listing is
        returned as ``error``, never raised."""
        entry = await self.trusted(environment)
        if entry is None:
            return await self._listed(environment)
        self.from_cache += 1
        return EnvironmentKeys(environment, entry.keys, True, entry.fetched_at)

    async def _listed(self, environment: ProductEnvironment) -> EnvironmentKeys:
        try:
            fetched_at, listed = await self.fetch(environment.id)
        except CldProvisioningError as exc:
            return EnvironmentKeys(environment, error=exc)
        return EnvironmentKeys(environment, listed, False, fetched_at)

    async def fetch(self, sub_account_id: str) -> tuple[datetime, tuple[AccessKey, ...]]:
        """List the environment's keys now and record them. A 404 forgets its entry."""
        fetched_at = self.clock()
        self.listed += 1
        try:
            listing = await self.api.list(
                {"sub_account_id": sub_account_id}, retries=self.retries, priority=self.priority
            )
        except NotFoundError:
            await self.forget(sub_account_id)
            raise
        await self.record(sub_account_id, listing.access_keys, fetched_at)
        return fetched_at, listing.access_keys

    async def each(
        self, environments: Sequence[ProductEnvironment], *, concurrency: int = 8
    ) -> AsyncGenerator[EnvironmentKeys, None]:
        """Every environment's keys: those the cache answers first, at once, then the listed
        ones as they complete, at most ``concurrency`` listings at a time."""
        await self.prefetch(env.id for env in environments)
        to_list: list[ProductEnvironment] = []
        for env in environments:
            entry = await self.trusted(env)
            if entry is None:
                to_list.append(env)
                continue
            self.from_cache += 1
            yield EnvironmentKeys(env, entry.keys, True, entry.fetched_at)
        results: asyncio.Queue[EnvironmentKeys | BaseException] = asyncio.Queue()
        todo = iter(to_list)  # shared: each worker takes the next environment

        async def worker() -> None:
            for env in todo:
                try:
                    await results.put(await self._listed(env))
                except Exception as exc:  # a bug: raised to the consumer, never a hang
                    await results.put(exc)

        workers = [asyncio.create_task(worker()) for _ in range(min(concurrency, len(to_list)))]
        try:
            for _ in to_list:
                got = await results.get()
                if isinstance(got, BaseException):
                    raise got
                yield got
        finally:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)

    # -- writing -----------------------------------------------------------------------------

    async def record(
        self, sub_account_id: str, keys: Iterable[KeyLike], fetched_at: datetime | None = None
    ) -> None:
        """The environment's keys as they stand now (after a listing, or after a run's own
        writes: see ``apply_changes``), listed at ``fetched_at`` (default: now)."""
        entry = CacheEntry.of(keys, self.clock() if fetched_at is None else fetched_at)
        await self._change(sub_account_id, entry)

    async def forget(self, sub_account_id: str) -> None:
        """Drop the environment's entry: the next run lists it (when a write's outcome is
        unknown, or the environment is gone)."""
        await self._change(sub_account_id, None)

    async def _change(self, sub: str, entry: CacheEntry | None) -> None:
        if self.cache is None:
            return  # nothing to remember it for (and memory stays flat)
        self._entries[sub] = entry
        self._changes[sub] = entry
        if time.monotonic() - self._flushed >= self.flush_every:
            await self.flush()

    async def flush(self, *, wait: bool = False) -> None:
        """Write the buffered entries now (one write to the store); unless ``wait``, do
        nothing while another flush runs (it takes what is buffered next time)."""
        if self.cache is None or (self._flush_lock.locked() and not wait):
            return
        async with self._flush_lock:
            if not self._changes:
                return
            changes, self._changes = self._changes, {}
            self._flushed = time.monotonic()
            await self.cache.put(changes, self.clock())

    async def close(self) -> None:
        """Write what is buffered; the inventory may not be used after."""
        await self.flush(wait=True)
