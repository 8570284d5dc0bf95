"""Rotation at account scale: many environments, streamed as they finish, planned, filtered
by a key-age policy.

``rotate_iter`` is the engine: it takes ids lazily (a list, or an async iterator), keeps at
most ``concurrency`` environments in flight (never thousands of tasks at once, so memory
stays flat), and yields each ``RotationResult`` as it completes. ``rotate_many`` collects it
in input order. Per environment it either rotates (``_rotation``), skips (the policy), or,
in a dry run, plans: only the key listing is sent, and the result says what a run would do.

Imports: rotation (one environment), the access-key operations, telemetry, models, config,
errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from attrs import evolve, frozen

from . import _telemetry as telemetry
from ._access_keys import AccessKeyOperations
from ._config import RetryConfig
from ._inventory import KeyInventory
from ._keycache import apply_changes
from ._lifecycle import KeyLike, age_text
from ._rotation import (
    ROTATE,
    Retire,
    RotationPlan,
    RotationResult,
    Verify,
    check_rotate_options,
    log_failure,
    rotate_listed,
    run_name,
)
from .errors import CldProvisioningError
from .models import AccessKey, DedicatedFor, ProductEnvironment, check_id

log = logging.getLogger("cldprov_async")

OnProgress = Callable[[int, int, RotationResult], object]
#: Hourly windows reset up to an hour later; a bulk rotation waits for them.
BULK_MAX_WAIT = 3700.0


@frozen
class _Options:
    name: str
    retire: Retire
    verify: Verify | None
    retries: RetryConfig
    max_age: timedelta | None
    dry_run: bool
    # The key cache (issue 19): environments as listed, and what reads and records keys.
    environments: Mapping[str, ProductEnvironment]
    inventory: KeyInventory | None


# -- policy and plan: pure functions of one environment's keys ------------------------------


def policy_skip(
    keys: Sequence[KeyLike], name: str, max_age: timedelta, now: datetime
) -> str | None:
    """Why ``max_age`` skips this environment, or None to rotate it.

    A key already called ``name`` means a rerun of an unfinished rotation: never skipped.
    No enabled key at all means someone disabled them on purpose: skipped.
    """
    if any(k.name == name for k in keys):
        return None
    enabled = [k for k in keys if k.enabled]
    if not enabled:
        return "no enabled key (disabled on purpose?); not rotated"
    newest = max(enabled, key=lambda k: k.created_at)
    age = now - newest.created_at
    if age > max_age:
        return None
    label = newest.name or newest.api_key
    old, limit = age_text(age), age_text(max_age)
    return f"newest enabled key {label!r} is {old} old, not older than {limit}"


def plan_rotation(keys: Sequence[AccessKey], name: str, retire: Retire) -> RotationPlan:
    """What ``rotate`` would do with these keys (the same decisions, nothing sent)."""
    existing = next((k for k in keys if k.name == name), None)
    others = [k for k in keys if existing is None or k.api_key != existing.api_key]
    dedicated = any(DedicatedFor.WEBHOOKS in k.dedicated_for for k in others)
    moves = dedicated and (existing is None or DedicatedFor.WEBHOOKS not in existing.dedicated_for)
    retiring = tuple(k for k in others if k.enabled) if retire != "keep" else ()
    creates = existing is None
    enables = existing is not None and not existing.enabled
    requests = 1 + (creates or enables) + moves + len(retiring)
    return RotationPlan(name, creates, retiring, moves, requests)


# -- the engine ------------------------------------------------------------------------------


def rotate_iter(
    api: AccessKeyOperations,
    sub_account_ids: Iterable[str] | AsyncIterable[str],
    *,
    concurrency: int = 8,
    name: str | None = None,
    retire: Retire = "disable",
    verify: Verify | None = None,
    retries: RetryConfig | None = None,
    max_age: timedelta | None = None,
    dry_run: bool = False,
    listing: Iterable[ProductEnvironment] | None = None,
    refresh: bool = False,
) -> AsyncGenerator[RotationResult, None]:
    """Rotate (or plan, or skip) each environment, yielding each result as it completes.

    At most ``concurrency`` environments are in flight; ids are taken from
    ``sub_account_ids`` only as room frees up, so an async iterator of ids streams through.
    ``max_age`` rotates only environments whose newest enabled key is older than that.
    ``dry_run`` sends only each environment's key listing and yields ``planned`` results.
    ``listing``: the environments as a product-environment listing showed them; with it,
    ``max_age`` skips an environment whose keys the key cache holds unchanged without a
    request (``refresh`` trusts no entry). Every rotation records its keys in the cache.
    Arguments are checked here, before anything is sent. Closing the iterator (or cancelling
    its consumer) cancels the environments in flight; rerun with the same ``name`` to finish.
    """
    if isinstance(sub_account_ids, str):
        raise TypeError("sub_account_ids must be an iterable of ids, not a str")
    ids: Iterable[str] | AsyncIterable[str] = sub_account_ids
    if not isinstance(sub_account_ids, AsyncIterable):
        ids = _checked_ids(sub_account_ids)
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
        base = api.default_retry
        retries = evolve(base, max_wait=max(base.max_wait, BULK_MAX_WAIT))
    if not isinstance(refresh, bool):
        raise TypeError(f"refresh must be a bool, not {type(refresh).__name__}")
    listed = list(listing or ())
    if not all(isinstance(env, ProductEnvironment) for env in listed):
        raise TypeError("listing must hold ProductEnvironment objects")
    environments = {env.id: env for env in listed}
    inventory = None
    if api.key_cache is not None:
        inventory = KeyInventory(
            api, api.key_cache, refresh=refresh, retries=retries, priority="bulk"
        )
    opts = _Options(
        name or run_name(), retire, verify, retries, max_age, dry_run, environments, inventory
    )
    return _run(api, ids, concurrency, opts)


def _checked_ids(sub_account_ids: Iterable[str]) -> list[str]:
    ids = list(sub_account_ids)
    for sub in ids:
        check_id(sub, "sub_account_ids[]")
    if len(set(ids)) != len(ids):
        raise ValueError("sub_account_ids must not repeat an id")
    return ids


async def _ids(source: Iterable[str] | AsyncIterable[str]) -> AsyncGenerator[str, None]:
    if isinstance(source, AsyncIterable):
        async for sub in source:
            yield sub
    else:
        for sub in source:
            yield sub


async def _run(
    api: AccessKeyOperations,
    source: Iterable[str] | AsyncIterable[str],
    concurrency: int,
    opts: _Options,
) -> AsyncGenerator[RotationResult, None]:
    ids = _ids(source)
    seen: set[str] = set()
    pending: set[asyncio.Task[RotationResult]] = set()
    exhausted = False
    try:
        if opts.inventory is not None and opts.max_age is not None:
            await opts.inventory.prefetch(opts.environments)
        while True:
            while not exhausted and len(pending) < concurrency:
                try:
                    sub = await anext(ids)
                except StopAsyncIteration:
                    exhausted = True
                    break
                pending.add(asyncio.create_task(_one(api, sub, seen, opts)))
            if not pending:
                return
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                yield task.result()
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        await ids.aclose()
        if opts.inventory is not None:
            await opts.inventory.close()


async def _one(
    api: AccessKeyOperations, sub: str, seen: set[str], opts: _Options
) -> RotationResult:
    """One environment; every failure becomes its result, so one never stops the others."""
    try:
        check_id(sub, "sub_account_ids[]")
        if sub in seen:
            raise ValueError(f"sub_account_ids repeats {sub!r}")
        seen.add(sub)
    except Exception as exc:
        return RotationResult(sub, error=exc)
    with telemetry.span(ROTATE, sub) as span:  # the rotation's calls are its children
        result = await _steps(api, sub, opts)
        telemetry.failed(span, result.error)
    return result


async def _steps(api: AccessKeyOperations, sub: str, opts: _Options) -> RotationResult:
    inventory = opts.inventory
    try:
        skipped = await _cached_skip(sub, opts)
        if skipped is not None:
            return skipped
        keys: Sequence[AccessKey] | None = None  # rotate_listed lists them when we need not
        if inventory is not None:  # the same listing, recorded in the key cache
            keys = (await inventory.fetch(sub))[1]
        elif opts.dry_run or opts.max_age is not None:
            listing = await api.list({"sub_account_id": sub}, retries=opts.retries, priority="bulk")
            keys = listing.access_keys
        if keys is not None:
            if opts.max_age is not None:
                reason = policy_skip(keys, opts.name, opts.max_age, datetime.now(UTC))
                if reason is not None:
                    return RotationResult(sub, skipped=reason)
            if opts.dry_run:
                return RotationResult(sub, plan=plan_rotation(keys, opts.name, opts.retire))
        result = await rotate_listed(
            api,
            sub,
            keys,
            name=opts.name,
            retire=opts.retire,
            verify=opts.verify,
            retries=opts.retries,
        )
        if inventory is not None and keys is not None:
            await _remember(inventory, sub, keys, result, opts.retire)
        return result
    except CldProvisioningError as exc:
        log_failure(sub, exc)
        return RotationResult(sub, error=exc)
    except Exception as exc:  # a bug or an odd verify: still only this one fails
        log.exception(
            "rotation of %s failed unexpectedly",
            sub,
            extra=telemetry.log_extra(ROTATE, sub_account_id=sub),
        )
        return RotationResult(sub, error=exc)


async def _cached_skip(sub: str, opts: _Options) -> RotationResult | None:
    """The policy's skip from the key cache, when its entry is trusted (no request)."""
    env = opts.environments.get(sub)
    if opts.inventory is None or opts.max_age is None or env is None:
        return None
    entry = await opts.inventory.trusted(env)
    if entry is None:
        return None
    reason = policy_skip(entry.keys, opts.name, opts.max_age, datetime.now(UTC))
    return None if reason is None else RotationResult(sub, skipped=reason)


async def _remember(
    inventory: KeyInventory,
    sub: str,
    before: Sequence[AccessKey],
    result: RotationResult,
    retire: Retire,
) -> None:
    """Write what the rotation did into the key cache; a failed one is forgotten (its
    last write's outcome may be unknown), so the next run lists it."""
    if result.error is not None or result.new_key is None:
        await inventory.forget(sub)
        return
    gone = [k.api_key for k in result.retired] if retire == "delete" else []
    changed = [result.new_key, *(() if retire == "delete" else result.retired)]
    await inventory.record(sub, apply_changes(before, changed, gone))


async def rotate_many(
    api: AccessKeyOperations,
    sub_account_ids: Iterable[str],
    *,
    concurrency: int = 8,
    on_progress: OnProgress | None = None,
    name: str | None = None,
    retire: Retire = "disable",
    verify: Verify | None = None,
    retries: RetryConfig | None = None,
    max_age: timedelta | None = None,
    dry_run: bool = False,
    listing: Iterable[ProductEnvironment] | None = None,
    refresh: bool = False,
) -> list[RotationResult]:
    """Rotate many environments, at most ``concurrency`` at a time, results in input order.

    Built on ``rotate_iter`` (see it for ``max_age`` and ``dry_run``). One failure never
    stops the others. Calls wait out the rate limit's window (up to an hour by default)
    rather than fail: pass ``retries`` to choose another budget.
    """
    if isinstance(sub_account_ids, str):
        sub_account_ids = [sub_account_ids]
    ids = _checked_ids(sub_account_ids)
    results: dict[str, RotationResult] = {}
    stream = rotate_iter(
        api,
        ids,
        concurrency=concurrency,
        name=name,
        retire=retire,
        verify=verify,
        retries=retries,
        max_age=max_age,
        dry_run=dry_run,
        listing=listing,
        refresh=refresh,
    )
    async with contextlib.aclosing(stream):
        async for result in stream:
            results[result.sub_account_id] = result
            if on_progress is not None:
                outcome = on_progress(len(results), len(ids), result)
                if inspect.isawaitable(outcome):
                    await outcome
    return [results[sub] for sub in ids]
