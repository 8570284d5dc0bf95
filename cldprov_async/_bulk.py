"""Rotation at account scale: many environments, streamed as they finish, planned, filtered
by a key-age policy.

``rotate_iter`` is the engine: it takes ids lazily (a list, or an async iterator), keeps at
most ``concurrency`` environments in flight (never thousands of tasks at once, so memory
stays flat), and yields each ``RotationResult`` as it completes. ``rotate_many`` collects it
in input order. Per environment it either rotates (``_rotation``), skips (the policy), or,
in a dry run, plans: only the key listing is sent, and the result says what a run would do.

The key cache (issue 19): an environment given with its listing (``ProductEnvironment``
items, ``listing=``, or looked up for a lifecycle run) whose key ids and enabled flags match
the cache's entry is decided from the entry, with no request, when its policy leaves
nothing due; every rotation writes what it did into the cache (``_inventory``).

Its arguments are checked, and become one run's ``Options``, in ``_bulk_args``.

Imports: its arguments (``_bulk_args``), rotation (one environment, and the lifecycle's
run), the key inventory and cache, the access-key operations, telemetry, models, config,
errors.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from datetime import timedelta

from . import _telemetry as telemetry
from ._access_keys import AccessKeyOperations
from ._bulk_args import (
    Item,
    Options,
    Source,
    checked_ids,
    checked_source,
    id_of,
    lifecycle_options,
    options,
)
from ._clock import utc
from ._config import RetryConfig
from ._environments import EnvironmentLookup
from ._inventory import KeyInventory
from ._keycache import apply_changes
from ._lifecycle_run import Deliver, LifecycleRun, run_lifecycle
from ._product_environments import ProductEnvironmentOperations
from ._rotation import (
    ROTATE,
    Retire,
    RotationResult,
    Verify,
    log_failure,
    plan_rotation,
    policy_skip,
    rotate_listed,
)
from ._verify import PingVerifier
from .errors import CldProvisioningError
from .models import AccessKey, ProductEnvironment, check_id

log = logging.getLogger("cldprov_async")

OnProgress = Callable[[int, int, RotationResult], object]


# -- the engine ------------------------------------------------------------------------------


def rotate_iter(
    api: AccessKeyOperations,
    sub_account_ids: Source,
    *,
    concurrency: int = 8,
    name: str | None = None,
    retire: Retire = "disable",
    verify: Verify | PingVerifier | None = None,
    retries: RetryConfig | None = None,
    max_age: timedelta | None = None,
    dry_run: bool = False,
    deliver: Deliver | None = None,
    grace: timedelta | None = None,
    prune_after: timedelta | None = None,
    listing: Iterable[ProductEnvironment] | None = None,
    refresh: bool = False,
) -> AsyncGenerator[RotationResult, None]:
    """Rotate (or plan, or skip) each environment, yielding each result as it completes.

    At most ``concurrency`` environments are in flight; ids are taken from
    ``sub_account_ids`` only as room frees up, so an async iterator streams through.
    Arguments are checked here, before anything is sent.

    Lifecycle mode (any of ``deliver``, ``grace``, ``prune_after``): keys are made as
    ``NAME@pending``, verified, handed to ``deliver(new_key, environment)``, renamed
    ``NAME@current``; the older enabled keys retire once it has been current for ``grace``;
    keys a rotation retired are deleted after ``prune_after``. Statuses add ``handed_off``,
    ``in_grace``, ``retired`` and ``pruned``. The rotation guide tells the whole lifecycle.

    The key cache (``client.key_cache``): with ``max_age`` or in lifecycle mode, an
    environment whose key ids and enabled flags in ``listing`` match its cache entry, and for
    which nothing is due, is answered from the entry without a request. Every rotation writes
    what it did into the cache, so the run after it is cheap too.

    Stopping early (``break``, ``aclose()``, cancelling the consumer) cancels the
    environments in flight: those yielded and those in flight may have been touched (a key
    made, older keys retired), none later. Each touched environment holds a key named after
    the run, so running again with the same ``name`` over the same ids yields every touched
    environment's key and secret again and makes no second key: pass ``name`` when you may
    need to resume (a result's ``new_key.name`` also carries it).

    Args:
        sub_account_ids: The environments: an iterable of ids or ``ProductEnvironment``
            objects, or an async iterable of them taken lazily.
        concurrency: Environments in flight at most.
        name: The new keys' name, which identifies the run (reuse it to resume);
            ``rotated-TIME-RANDOM`` when None.
        retire: What happens to the old enabled keys outside lifecycle mode:
            ``"disable"``, ``"delete"`` or ``"keep"``.
        verify: An async callable taking each new key, awaited before anything of that
            environment is handed off or retires (returning False or raising rejects the
            key), or a ``PingVerifier`` (``client.ping_verifier()``).
        retries: The retry budget of each call; by default the client's, with room to wait
            for an hourly window.
        max_age: Rotate only where the newest enabled key is older than this.
        dry_run: Only list the keys and plan; no hook runs.
        deliver: Lifecycle mode's hand-off: an async callable taking the new key and its
            ``ProductEnvironment``; returning means delivered, raising or returning False
            fails the environment and the next run hands the same key off again.
        grace: How long a new key is current before the older enabled keys retire.
        prune_after: How long after its retirement a key a rotation retired is deleted.
        listing: The environments as a product-environment listing showed them, for the
            key cache (and for the environment a lifecycle run hands to ``deliver``).
        refresh: Trust no cache entry: list every environment's keys.

    Returns:
        An async iterator of one ``RotationResult`` per environment, as each completes.

    Raises:
        ValueError: An argument has a bad value (named in the message, such as a repeated id
            or ``@`` in a lifecycle name); nothing was sent.
        TypeError: An argument has the wrong type (named in the message), or lifecycle mode
            outside a dry run has no ``deliver``; nothing was sent.
    """
    ids = checked_source(sub_account_ids)
    opts = options(
        api,
        concurrency=concurrency,
        name=name,
        retire=retire,
        verify=verify,
        retries=retries,
        max_age=max_age,
        dry_run=dry_run,
        deliver=deliver,
        grace=grace,
        prune_after=prune_after,
        listing=listing,
        refresh=refresh,
    )
    return _run(api, ids, concurrency, opts, _lookup(api, ids, opts))


def lifecycle_iter(
    api: AccessKeyOperations,
    sub_account_ids: Source,
    run: LifecycleRun,
    *,
    concurrency: int = 8,
    dry_run: bool = False,
    listing: Iterable[ProductEnvironment] | None = None,
    refresh: bool = False,
) -> AsyncGenerator[RotationResult, None]:
    """``rotate_iter`` in lifecycle mode with a run assembled by the caller (the CLI, whose
    hand-off may be its result line); arguments as ``rotate_iter`` checks them."""
    ids = sub_account_ids
    if not isinstance(ids, AsyncIterable):
        ids = checked_ids(ids)
    opts = lifecycle_options(api, run, dry_run=dry_run, listing=listing, refresh=refresh)
    return _run(api, ids, concurrency, opts, _lookup(api, ids, opts))


def _lookup(api: AccessKeyOperations, ids: Source, opts: Options) -> EnvironmentLookup | None:
    """The environments' lookup, when the run needs their cloud names (else None)."""
    if opts.lifecycle is None and not isinstance(opts.verify, PingVerifier):
        return None
    listing = api.environments
    if not isinstance(listing, ProductEnvironmentOperations):
        raise TypeError(
            "this rotation needs each environment's cloud name: call it on"
            " client.access_keys (which can list the account's product environments)"
        )
    order = None
    if not isinstance(ids, AsyncIterable):  # ids to list ahead: those not given listed
        order = [i for i in ids if isinstance(i, str) and i not in opts.environments]
    return EnvironmentLookup(listing, order, opts.retries)


async def _ids(source: Source) -> AsyncGenerator[Item, None]:
    if isinstance(source, AsyncIterable):
        async for sub in source:
            yield sub
    else:
        for sub in source:
            yield sub


async def _run(
    api: AccessKeyOperations,
    source: Source,
    concurrency: int,
    opts: Options,
    lookup: EnvironmentLookup | None,
) -> AsyncGenerator[RotationResult, None]:
    ids = _ids(source)
    seen: set[str] = set()
    pending: set[asyncio.Task[RotationResult]] = set()
    exhausted = False
    try:
        if opts.max_age is not None or opts.lifecycle is not None:  # decided from the cache
            listed = [*opts.environments]
            if not isinstance(source, AsyncIterable):
                listed += [i.id for i in source if isinstance(i, ProductEnvironment)]
            await opts.inventory.prefetch(listed)
        while True:
            while not exhausted and len(pending) < concurrency:
                try:
                    item = await anext(ids)
                except StopAsyncIteration:
                    exhausted = True
                    break
                pending.add(asyncio.create_task(_one(api, item, seen, opts, lookup)))
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
        await opts.inventory.close()


async def _one(
    api: AccessKeyOperations,
    item: Item,
    seen: set[str],
    opts: Options,
    lookup: EnvironmentLookup | None,
) -> RotationResult:
    """One environment; every failure becomes its result, so one never stops the others."""
    sub = id_of(item)
    try:
        check_id(sub, "sub_account_ids[]")
        assert isinstance(sub, str)
        if sub in seen:
            raise ValueError(f"sub_account_ids repeats {sub!r}")
        seen.add(sub)
    except Exception as exc:
        return RotationResult(str(sub), error=exc)
    with telemetry.span(ROTATE, sub) as span:  # the rotation's calls are its children
        result = await _steps(api, sub, item, opts, lookup)
        telemetry.failed(span, result.error)
    if result.error is not None:
        await opts.inventory.forget(sub)  # a write's outcome may be unknown: list it next time
    return result


async def _steps(
    api: AccessKeyOperations,
    sub: str,
    item: Item,
    opts: Options,
    lookup: EnvironmentLookup | None,
) -> RotationResult:
    inventory = opts.inventory
    try:
        listed = item if isinstance(item, ProductEnvironment) else opts.environments.get(sub)
        env = listed if lookup is None else await lookup.get(listed or item)
        if opts.lifecycle is not None and env is not None:
            return await run_lifecycle(api, env, opts.lifecycle, inventory, dry_run=opts.dry_run)
        verify: Verify | None
        if isinstance(opts.verify, PingVerifier):
            assert env is not None  # _lookup made the lookup for it
            verify = functools.partial(opts.verify, environment=env)
        else:
            verify = opts.verify
        skipped = await _cached_skip(api, env, opts)
        if skipped is not None:
            return skipped
        keys = (await inventory.fetch(sub))[1]  # the key listing, recorded in the key cache
        if opts.max_age is not None:
            reason = policy_skip(keys, opts.name, opts.max_age, utc(api.clock))
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
            verify=verify,
            retries=opts.retries,
        )
        if result.error is None:
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


async def _cached_skip(
    api: AccessKeyOperations, env: ProductEnvironment | None, opts: Options
) -> RotationResult | None:
    """The policy's skip from the key cache, when its entry is trusted (no request)."""
    if opts.max_age is None or env is None:
        return None
    entry = await opts.inventory.trusted(env)
    if entry is None:
        return None
    reason = policy_skip(entry.keys, opts.name, opts.max_age, utc(api.clock))
    return None if reason is None else RotationResult(env.id, skipped=reason)


async def _remember(
    inventory: KeyInventory,
    sub: str,
    before: Sequence[AccessKey],
    result: RotationResult,
    retire: Retire,
) -> None:
    """Write what a classic rotation did into the key cache (the keys as listed, with its
    new key and the keys it retired as the API answered)."""
    if result.new_key is None:
        await inventory.forget(sub)
        return
    gone = [k.api_key for k in result.retired] if retire == "delete" else []
    changed = [result.new_key, *(() if retire == "delete" else result.retired)]
    await inventory.record(sub, apply_changes(before, changed, gone))


async def rotate_many(
    api: AccessKeyOperations,
    sub_account_ids: Iterable[Item],
    *,
    concurrency: int = 8,
    on_progress: OnProgress | None = None,
    name: str | None = None,
    retire: Retire = "disable",
    verify: Verify | PingVerifier | None = None,
    retries: RetryConfig | None = None,
    max_age: timedelta | None = None,
    dry_run: bool = False,
    deliver: Deliver | None = None,
    grace: timedelta | None = None,
    prune_after: timedelta | None = None,
    listing: Iterable[ProductEnvironment] | None = None,
    refresh: bool = False,
) -> list[RotationResult]:
    """Rotate many environments, at most ``concurrency`` at a time, results in input order.

    Built on ``rotate_iter`` (see it for ``max_age``, ``dry_run``, the lifecycle's
    ``deliver``, ``grace`` and ``prune_after``, and the key cache's ``listing`` and
    ``refresh``). One failure never
    stops the others. Calls wait out the rate limit's window (up to an hour by default)
    rather than fail: pass ``retries`` to choose another budget.

    Args:
        sub_account_ids: The environments: ids or ``ProductEnvironment`` objects.
        concurrency: Environments in flight at most.
        on_progress: Called as ``on_progress(done, total, result)`` after each environment
            (awaited if it returns an awaitable).
        name: The new keys' name, which identifies the run (reuse it to resume);
            ``rotated-TIME-RANDOM`` when None.
        retire: What happens to the old enabled keys: ``"disable"``, ``"delete"`` or
            ``"keep"``.
        verify: An async callable taking each new key, awaited before anything of that
            environment is handed off or retires (returning False or raising rejects the
            key), or a ``PingVerifier`` (``client.ping_verifier()``).
        retries: The retry budget of each call; by default the client's, with room to wait
            for an hourly window.
        max_age: Rotate only where the newest enabled key is older than this.
        dry_run: Only list the keys and plan; no hand-off runs.
        deliver: Lifecycle mode's hand-off: an async callable taking the new key and its
            ``ProductEnvironment``; raising or returning False fails the environment, and
            the next run hands the same key off again.
        grace: How long a handed-off key serves beside the older enabled keys before they
            retire (lifecycle mode).
        prune_after: How long after its retirement a key a rotation retired is deleted
            (lifecycle mode).
        listing: The environments as a product-environment listing showed them, for the
            key cache.
        refresh: Trust no cache entry: list every environment's keys.

    Returns:
        One ``RotationResult`` per id, in the order of ``sub_account_ids``.

    Raises:
        ValueError: An argument has a bad value (named in the message); nothing was sent.
        TypeError: An argument has the wrong type (named in the message); nothing was sent.
    """
    if isinstance(sub_account_ids, str):
        sub_account_ids = [sub_account_ids]
    ids = checked_ids(sub_account_ids)
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
        deliver=deliver,
        grace=grace,
        prune_after=prune_after,
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
    return [results[str(id_of(sub))] for sub in ids]
