"""A bulk rotation's arguments, checked before anything is sent, and the options it runs with.

``rotate_iter`` (``_bulk``) takes many keyword arguments; they are checked here in one place
(a ``ValueError`` or ``TypeError`` naming the argument, nothing sent), and become one frozen
``Options``: the run's name and retire mode, its verifier and retries, the age policy, the
lifecycle run when in lifecycle mode, and the key cache's listing and inventory.

Imports: the lifecycle's run and policy, rotation's checks, the key inventory, the
access-key operations (their type, clock and key cache), the verifier, models and config.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterable, Iterable, Mapping
from datetime import timedelta

from attrs import evolve, frozen

from ._access_keys import AccessKeyOperations
from ._clock import utc
from ._config import RetryConfig
from ._inventory import KeyInventory
from ._labels import check_run_name
from ._lifecycle import LifecyclePolicy
from ._lifecycle_run import Deliver, LifecycleRun, delivering
from ._rotation import Retire, Verify, check_rotate_options, run_name
from ._verify import PingVerifier
from .models import AccessKey, ProductEnvironment, check_id

#: Hourly windows reset up to an hour later; a bulk rotation waits for them.
BULK_MAX_WAIT = 3700.0

#: What ``rotate_iter`` takes: ids, or the environments of a listing (no lookup needed).
Item = str | ProductEnvironment
Source = Iterable[Item] | AsyncIterable[Item]


@frozen
class Options:
    """What every environment of one bulk run is rotated with."""

    name: str
    retire: Retire
    verify: Verify | PingVerifier | None
    retries: RetryConfig
    max_age: timedelta | None
    dry_run: bool
    lifecycle: LifecycleRun | None
    # The key cache: environments as a listing showed them, and what reads and records keys.
    environments: Mapping[str, ProductEnvironment]
    inventory: KeyInventory


def bulk_retries(api: AccessKeyOperations) -> RetryConfig:
    """The client's retry budget, waiting out an hourly window (bulk work is patient)."""
    base = api.default_retry
    return evolve(base, max_wait=max(base.max_wait, BULK_MAX_WAIT))


def checked_source(sub_account_ids: Source) -> Source:
    """The ids as given (an async iterable is checked as it is read), a list when listed."""
    if isinstance(sub_account_ids, str):
        raise TypeError("sub_account_ids must be an iterable of ids, not a str")
    if isinstance(sub_account_ids, AsyncIterable):
        return sub_account_ids
    return checked_ids(sub_account_ids)


def checked_ids(sub_account_ids: Iterable[Item]) -> list[Item]:
    """The ids as a list, each a valid id, none repeated."""
    ids = list(sub_account_ids)
    subs = [id_of(sub) for sub in ids]
    for sub in subs:
        check_id(sub, "sub_account_ids[]")
    if len(set(subs)) != len(subs):
        raise ValueError("sub_account_ids must not repeat an id")
    return ids


def id_of(item: object) -> object:
    """An item's id (a ``ProductEnvironment``'s, or the item itself)."""
    return item.id if isinstance(item, ProductEnvironment) else item


def options(
    api: AccessKeyOperations,
    *,
    concurrency: int,
    name: str | None,
    retire: Retire,
    verify: Verify | PingVerifier | None,
    retries: RetryConfig | None,
    max_age: timedelta | None,
    dry_run: bool,
    deliver: Deliver | None,
    grace: timedelta | None,
    prune_after: timedelta | None,
    listing: Iterable[ProductEnvironment] | None,
    refresh: bool,
) -> Options:
    """``rotate_iter``'s keyword arguments, checked, as one run's options."""
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be a positive int, not {concurrency!r}")
    check_rotate_options(name, retire, verify)
    if max_age is not None:
        if not isinstance(max_age, timedelta):
            raise TypeError(f"max_age must be a timedelta, not {type(max_age).__name__}")
        if max_age <= timedelta(0):
            raise ValueError(f"max_age must be positive, not {max_age}")
    if not isinstance(dry_run, bool):
        raise TypeError(f"dry_run must be a bool, not {type(dry_run).__name__}")
    if retries is None:
        retries = bulk_retries(api)
    run: LifecycleRun | None = None
    if deliver is not None or grace is not None or prune_after is not None:
        if deliver is None and not dry_run:
            raise TypeError(
                "deliver is required with grace or prune_after: an async callable taking"
                " (new_key, environment) that stores the secret where its consumers read it"
            )
        if deliver is not None and not callable(deliver):
            raise TypeError("deliver must be an async callable taking (new_key, environment)")
        if name is not None:
            check_run_name(name)
        policy = LifecyclePolicy(max_age, grace or timedelta(0), prune_after, retire)
        run = LifecycleRun(
            name or run_name(),
            policy,
            delivering(deliver or _no_delivery),
            verify,
            retries,
            api.clock,
        )
    listed, inventory = key_cache(api, retries, listing, refresh)
    return Options(
        name or run_name(), retire, verify, retries, max_age, dry_run, run, listed, inventory
    )


def lifecycle_options(
    api: AccessKeyOperations,
    run: LifecycleRun,
    *,
    dry_run: bool,
    listing: Iterable[ProductEnvironment] | None,
    refresh: bool,
) -> Options:
    """The options of a lifecycle run the caller assembled (the CLI)."""
    listed, inventory = key_cache(api, run.retries, listing, refresh)
    policy = run.policy
    return Options(
        run.name,
        policy.retire,
        run.verify,
        run.retries,
        policy.older_than,
        dry_run,
        run,
        listed,
        inventory,
    )


def key_cache(
    api: AccessKeyOperations,
    retries: RetryConfig,
    listing: Iterable[ProductEnvironment] | None,
    refresh: bool,
) -> tuple[dict[str, ProductEnvironment], KeyInventory]:
    """The environments of ``listing`` by id (checked), and the run's key inventory on the
    client's key cache and clock."""
    if not isinstance(refresh, bool):
        raise TypeError(f"refresh must be a bool, not {type(refresh).__name__}")
    listed = list(listing or ())
    if not all(isinstance(env, ProductEnvironment) for env in listed):
        raise TypeError("listing must hold ProductEnvironment objects")
    clock = functools.partial(utc, api.clock)
    inventory = KeyInventory(
        api, api.key_cache, refresh=refresh, clock=clock, retries=retries, priority="bulk"
    )
    return {env.id: env for env in listed}, inventory


async def _no_delivery(key: AccessKey, environment: ProductEnvironment) -> None:
    raise AssertionError("a dry run hands nothing off")  # pragma: no cover
