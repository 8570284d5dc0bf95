"""The audit: every selected environment's keys at a glance, judged by the rotation policy.

One row per environment (``AuditRow``): its keys, enabled keys, the ages of the newest and
oldest enabled keys, the webhooks key, and its lifecycle state, which is the lifecycle's own
``decide`` applied to its keys with the policy a rotation would use (``older_than``,
``grace``, ``prune_after``). The summary (``AuditSummary``) counts the states and the ages
of the newest enabled keys.

An audit only reads: the product-environment listing, then for each environment its keys
from the key cache when the listing shows no change, else a key listing (``_inventory``),
which refreshes the cache. With a warm cache a whole account costs one request. It takes no
lock and writes nothing to the server, so any number may run beside a rotation.

Imports: the key inventory and cache, the listing and access-key operations, ``_bulk_args``'s
bulk retries, the clock, the lifecycle, models, config and errors.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from attrs import Factory, define, frozen

from ._access_keys import AccessKeyOperations
from ._bulk_args import bulk_retries
from ._clock import utc
from ._config import RetryConfig
from ._inventory import EnvironmentKeys, KeyInventory
from ._lifecycle import (
    AUDIT_STATES,
    AuditState,
    LifecyclePolicy,
    NextStep,
    age_text,
    decide,
)
from ._product_environments import MAX_LISTED
from .models import ProductEnvironment, check_id

__all__ = [
    "AGE_BUCKETS",
    "DEFAULT_OLDER_THAN",
    "AuditReport",
    "AuditRow",
    "AuditSummary",
    "audit",
    "histogram",
    "row_of",
]

#: ``older_than`` of an audit unless told otherwise.
DEFAULT_OLDER_THAN = timedelta(days=90)
#: A hand-off pending longer than this (from the pending key's creation) needs attention.
HAND_OFF_OVERDUE = timedelta(days=1)
#: The histogram's buckets of the newest enabled keys' ages: (label, upper bound).
AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("< 7d", timedelta(days=7)),
    ("7-30d", timedelta(days=30)),
    ("30-60d", timedelta(days=60)),
    ("60-90d", timedelta(days=90)),
    ("90-180d", timedelta(days=180)),
    ("180d-1y", timedelta(days=365)),
    (">= 1y", None),
)


@frozen
class AuditRow:
    """One product environment in an audit. Never holds a secret.

    Attributes:
        sub_account_id: The environment's id.
        cloud_name: Its cloud name, as the listing shows it.
        name: Its name, as the listing shows it.
        environment_enabled: Whether the environment itself is enabled (None: unknown).
        keys: How many keys it has.
        enabled_keys: How many of them are enabled.
        newest_enabled_created_at: The creation date of its newest enabled key (None: no
            enabled key).
        oldest_enabled_created_at: The creation date of its oldest enabled key.
        newest_enabled_age: The newest enabled key's age at the audit's ``now``: what
            ``--older-than`` and ``--max-age`` are compared with.
        oldest_enabled_age: The oldest enabled key's age at the audit's ``now``.
        webhooks_key: The api_key of the key dedicated for webhooks, if any.
        state: The lifecycle state (``current``, ``due``, ``hand-off pending``, ``in
            grace``, ``retire due``, ``prune due``, ``no enabled key``); None on error.
        in_grace_until: The end of the grace period, in state ``in grace``.
        pending_since: The creation date of the key whose hand-off is pending.
        next: The step a rotation would take next (None: nothing is due).
        next_at: When that step is due (None: now).
        from_cache: Whether the keys came from the key cache (no request).
        error: Why the environment could not be audited (then ``state`` is None).
    """

    sub_account_id: str
    cloud_name: str = ""
    name: str = ""
    environment_enabled: bool | None = None
    keys: int = 0
    enabled_keys: int = 0
    newest_enabled_created_at: datetime | None = None
    oldest_enabled_created_at: datetime | None = None
    newest_enabled_age: timedelta | None = None
    oldest_enabled_age: timedelta | None = None
    webhooks_key: str | None = None
    state: AuditState | None = None
    in_grace_until: datetime | None = None
    pending_since: datetime | None = None
    next: NextStep | None = None
    next_at: datetime | None = None
    from_cache: bool = False
    error: str | None = None

    @property
    def state_text(self) -> str:
        """The state as a person reads it: ``in grace until 2026-12-08T14:00:00Z``."""
        if self.state is None:
            return "error"
        if self.in_grace_until is not None:
            return f"in grace until {_iso(self.in_grace_until)}"
        return self.state

    def attention(self, max_age: timedelta, now: datetime) -> str | None:
        """Why a monitor watching for ``max_age`` should page about this row.

        Args:
            max_age: The oldest a newest enabled key may be (``audit --max-age``).
            now: The time to judge a pending hand-off's age at (the report's ``now``).

        Returns:
            The reason in a few words (not audited, no enabled key, a hand-off pending for
            more than a day, a newest enabled key older than ``max_age``), or None.
        """
        if self.error is not None:
            return f"not audited: {self.error}"
        if self.newest_enabled_age is None:
            return "no enabled key"
        if self.pending_since is not None and now - self.pending_since > HAND_OFF_OVERDUE:
            return f"hand-off pending for {age_text(now - self.pending_since)}"
        if self.newest_enabled_age > max_age:
            return f"newest enabled key is {age_text(self.newest_enabled_age)} old"
        return None


@frozen
class AuditSummary:
    """What an audit found, counted.

    Attributes:
        environments: rows (environments audited or failed).
        states: rows per lifecycle state, every state present (0 included).
        failed: rows that could not be audited.
        newest_ages: the histogram of the newest enabled keys' ages: (label, rows) per
            bucket of ``AGE_BUCKETS`` (environments without an enabled key are left out).
        from_cache: environments whose keys came from the key cache.
        key_listings: key listings sent (one request each, retries aside).
        listings: product-environment listings sent.
    """

    environments: int
    states: dict[str, int]
    failed: int
    newest_ages: tuple[tuple[str, int], ...]
    from_cache: int
    key_listings: int
    listings: int


@frozen
class AuditReport:
    """An audit's rows, in the listing's order (ids: in the order given), and its summary.

    Attributes:
        now: The instant the ages and states were judged at.
        policy: The policy they were judged by (``older_than``, ``grace``, ``prune_after``).
        rows: One row per environment.
        summary: The counts of ``rows``.
    """

    now: datetime
    policy: LifecyclePolicy
    rows: tuple[AuditRow, ...]
    summary: AuditSummary

    def needs_attention(self, max_age: timedelta) -> tuple[tuple[AuditRow, str], ...]:
        """The rows a monitor should page about, with why (``audit --max-age`` exits 1 when
        there is any).

        Args:
            max_age: The oldest a newest enabled key may be.

        Returns:
            ``(row, reason)`` for each row whose ``AuditRow.attention`` gives a reason.
        """
        found = ((row, row.attention(max_age, self.now)) for row in self.rows)
        return tuple((row, why) for row, why in found if why is not None)


def _fixed(now: datetime) -> datetime:
    return now


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def histogram(ages: Iterable[timedelta]) -> tuple[tuple[str, int], ...]:
    """Rows per bucket of ``AGE_BUCKETS``."""
    counts = dict.fromkeys((label for label, _ in AGE_BUCKETS), 0)
    for age in ages:
        label = next(lb for lb, top in AGE_BUCKETS if top is None or age < top)
        counts[label] += 1
    return tuple(counts.items())


def row_of(known: EnvironmentKeys, now: datetime, policy: LifecyclePolicy) -> AuditRow:
    """The audit row of an environment whose keys are known (or whose listing failed)."""
    env = known.environment
    if known.error is not None:
        error = " ".join(str(known.error).split())
        return AuditRow(env.id, env.cloud_name, env.name, env.enabled, error=error)
    decision = decide(known.keys, now, policy)
    facts = decision.facts
    newest, oldest = facts.newest_enabled_age, facts.oldest_enabled_age
    return AuditRow(
        env.id,
        env.cloud_name,
        env.name,
        env.enabled,
        keys=facts.keys,
        enabled_keys=facts.enabled,
        newest_enabled_created_at=None if newest is None else now - newest,
        oldest_enabled_created_at=None if oldest is None else now - oldest,
        newest_enabled_age=newest,
        oldest_enabled_age=oldest,
        webhooks_key=facts.webhooks_key,
        state=decision.state,
        in_grace_until=decision.in_grace_until,
        pending_since=None if decision.hand_off is None else decision.hand_off.created_at,
        next=decision.next,
        next_at=decision.next_at,
        from_cache=known.from_cache,
    )


# -- the run ---------------------------------------------------------------------------------

OnRow = Callable[[AuditRow], object]


@define
class _Run:
    """One audit: the selection, then a row per environment, then the report."""

    api: AccessKeyOperations
    ids: list[str] | None
    prefix: str | None
    enabled_only: bool
    policy: LifecyclePolicy
    inventory: KeyInventory
    concurrency: int
    now: datetime
    listings: int = 0
    order: list[str] = Factory(list)

    async def rows(self) -> AsyncGenerator[AuditRow, None]:
        try:
            envs, missing = await self._select()
            for sub in missing:
                yield AuditRow(sub, error="not in the account's product-environment listing")
            async for known in self.inventory.each(envs, concurrency=self.concurrency):
                yield row_of(known, self.now, self.policy)
        finally:
            await self.inventory.close()

    async def _select(self) -> tuple[list[ProductEnvironment], list[str]]:
        listing = self.api.environments
        if listing is None:
            raise TypeError("audit needs client.access_keys (it lists product environments)")
        if self.ids is None:
            enabled = True if self.enabled_only else None
            self.listings += 1
            found = (await listing.list(enabled=enabled, prefix=self.prefix or None)).sub_accounts
            self.order.extend(env.id for env in found)
            return list(found), []
        known: dict[str, ProductEnvironment] = {}
        for start in range(0, len(self.ids), MAX_LISTED):
            self.listings += 1
            page = await listing.list(ids=self.ids[start : start + MAX_LISTED])
            known.update((env.id, env) for env in page.sub_accounts)
        self.order.extend(self.ids)
        chosen = [known[sub] for sub in self.ids if sub in known and self._matches(known[sub])]
        return chosen, [sub for sub in self.ids if sub not in known]

    def _matches(self, env: ProductEnvironment) -> bool:
        if self.enabled_only and not env.enabled:
            return False
        prefix = self.prefix
        return not prefix or env.name.casefold().startswith(prefix.casefold())

    def report(self, rows: Sequence[AuditRow]) -> AuditReport:
        position = {sub: n for n, sub in enumerate(self.order)}
        ordered = sorted(rows, key=lambda r: position.get(r.sub_account_id, len(position)))
        states: dict[str, int] = dict.fromkeys(AUDIT_STATES, 0)
        for row in ordered:
            if row.state is not None:
                states[row.state] += 1
        ages = (r.newest_enabled_age for r in ordered if r.newest_enabled_age is not None)
        summary = AuditSummary(
            environments=len(ordered),
            states=states,
            failed=sum(r.state is None for r in ordered),
            newest_ages=histogram(ages),
            from_cache=self.inventory.from_cache,
            key_listings=self.inventory.listed,
            listings=self.listings,
        )
        return AuditReport(self.now, self.policy, tuple(ordered), summary)


async def audit(
    api: AccessKeyOperations,
    sub_account_ids: Iterable[str] | None = None,
    *,
    prefix: str | None = None,
    enabled_only: bool = False,
    older_than: timedelta | None = DEFAULT_OLDER_THAN,
    grace: timedelta = timedelta(0),
    prune_after: timedelta | None = None,
    refresh: bool = False,
    concurrency: int = 8,
    now: datetime | None = None,
    retries: RetryConfig | None = None,
    on_row: OnRow | None = None,
) -> AuditReport:
    """Audit the account's environments (or ``sub_account_ids``) against a rotation policy.

    Only reads: one product-environment listing (one per 100 ids given), and a key listing
    for each environment the key cache cannot answer for (see ``client.key_cache``).

    Args:
        sub_account_ids: the environments to audit; None: every one of the account.
        prefix: only environments whose name starts with this (case-insensitive).
        enabled_only: only enabled environments.
        older_than: a key older than this is due for rotation (None: every run rotates).
        grace: how long a handed-off key serves beside the older keys (rotate's ``grace``).
        prune_after: when retired keys are due for deletion (rotate's ``prune_after``).
        refresh: list every environment's keys, trusting no cache entry (and rewrite them).
        concurrency: key listings in flight at most.
        now: the time the audit judges at, the cache entries' expiry included
            (timezone-aware); the client's clock by default.
        retries: the requests' retry budget (default: the client's, waiting up to an hour
            for the rate limit's window, as a rotation does).
        on_row: called with each row as soon as it is ready (those the cache answers
            first, then the listed ones as they complete), e.g. to stream them; awaited
            when it returns an awaitable.

    Returns:
        An ``AuditReport``: one row per environment and the summary. An environment whose
        key listing failed is a row with ``error``; ids the account does not have too.

    Raises:
        TypeError, ValueError: a bad argument, named, before anything is sent.
        CldProvisioningError: the product-environment listing failed.
    """
    ids = None
    if sub_account_ids is not None:
        if isinstance(sub_account_ids, str):
            raise TypeError("sub_account_ids must be an iterable of ids, not a str")
        ids = [check_id(sub, "sub_account_ids[]") for sub in sub_account_ids]
        if len(set(ids)) != len(ids):
            raise ValueError("sub_account_ids must not repeat an id")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str or None, not {type(prefix).__name__}")
    for flag, value in (("enabled_only", enabled_only), ("refresh", refresh)):
        if not isinstance(value, bool):
            raise TypeError(f"{flag} must be a bool, not {type(value).__name__}")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, not {concurrency!r}")
    if on_row is not None and not callable(on_row):
        raise TypeError("on_row must be a callable taking an AuditRow")
    if now is not None and (not isinstance(now, datetime) or now.tzinfo is None):
        raise TypeError("now must be a timezone-aware datetime or None")
    policy = LifecyclePolicy(older_than=older_than, grace=grace, prune_after=prune_after)
    if retries is None:
        retries = bulk_retries(api)
    clock: Callable[[], datetime] = functools.partial(utc, api.clock)
    if now is not None:
        clock = functools.partial(_fixed, now)
    inventory = KeyInventory(
        api, api.key_cache, refresh=refresh, clock=clock, retries=retries, priority="bulk"
    )
    run = _Run(api, ids, prefix, enabled_only, policy, inventory, concurrency, clock())
    rows: list[AuditRow] = []
    async with contextlib.aclosing(run.rows()) as stream:
        async for row in stream:
            rows.append(row)
            if on_row is not None:
                outcome = on_row(row)
                if inspect.isawaitable(outcome):
                    await outcome
    return run.report(rows)
