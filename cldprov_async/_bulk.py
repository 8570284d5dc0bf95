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
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta

from attrs import evolve, frozen

from . import _telemetry as telemetry
from ._access_keys import AccessKeyOperations
from ._config import RetryConfig
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
from .models import AccessKey, DedicatedFor, check_id

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


# -- policy and plan: pure functions of one environment's keys ------------------------------


def policy_skip(
    keys: Sequence[AccessKey], name: str, max_age: timedelta, now: datetime
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
    return f"newest enabled key {label!r} is {_age(age)} old, not older than {_age(max_age)}"


def _age(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}".replace(".0" + unit, unit)
    return f"{max(0, seconds)}s"


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
) -> AsyncGenerator[RotationResult, None]:
    """Rotate (or plan, or skip) each environment, yielding each result as it completes.

    At most ``concurrency`` environments are in flight; ids are taken from
    ``sub_account_ids`` only as room frees up, so an async iterator of ids streams through.
    ``max_age`` rotates only environments whose newest enabled key is older than that.
    ``dry_run`` sends only each environment's key listing and yields ``planned`` results.
    Arguments are checked here, before anything is sent. Closing the iterator (or cancelling
    its consumer) cancels the environments in flight; rerun with the same ``name`` to finish.

    Args:
        sub_account_ids: The environments: an iterable of ids, or an async iterable taken
            lazily.
        concurrency: Environments in flight at most.
        name: The new keys' name, which identifies the run (reuse it to resume);
            ``rotated-TIME-RANDOM`` when None.
        retire: What happens to the old enabled keys: ``"disable"``, ``"delete"`` or
            ``"keep"``.
        verify: An async callable taking each new key, awaited before anything of that
            environment retires; returning False or raising rejects the key.
        retries: The retry budget of each call; by default the client's, with room to wait
            for an hourly window.
        max_age: Rotate only where the newest enabled key is older than this.
        dry_run: Only list the keys and plan.

    Returns:
        An async iterator of one ``RotationResult`` per environment, as each completes.

    Raises:
        ValueError: An argument has a bad value (named in the message); nothing was sent.
        TypeError: An argument has the wrong type (named in the message); nothing was sent.
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
    opts = _Options(name or run_name(), retire, verify, retries, max_age, dry_run)
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
    try:
        keys: Sequence[AccessKey] | None = None  # rotate_listed lists them when we need not
        if opts.dry_run or opts.max_age is not None:
            listing = await api.list({"sub_account_id": sub}, retries=opts.retries, priority="bulk")
            keys = listing.access_keys
            if opts.max_age is not None:
                reason = policy_skip(keys, opts.name, opts.max_age, datetime.now(UTC))
                if reason is not None:
                    return RotationResult(sub, skipped=reason)
            if opts.dry_run:
                return RotationResult(sub, plan=plan_rotation(keys, opts.name, opts.retire))
        return await rotate_listed(
            api,
            sub,
            keys,
            name=opts.name,
            retire=opts.retire,
            verify=opts.verify,
            retries=opts.retries,
        )
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
) -> list[RotationResult]:
    """Rotate many environments, at most ``concurrency`` at a time, results in input order.

    Built on ``rotate_iter`` (see it for ``max_age`` and ``dry_run``). One failure never
    stops the others. Calls wait out the rate limit's window (up to an hour by default)
    rather than fail: pass ``retries`` to choose another budget.

    Args:
        sub_account_ids: The environments' ids.
        concurrency: Environments in flight at most.
        on_progress: Called as ``on_progress(done, total, result)`` after each environment
            (awaited if it returns an awaitable).
        name: The new keys' name, which identifies the run (reuse it to resume);
            ``rotated-TIME-RANDOM`` when None.
        retire: What happens to the old enabled keys: ``"disable"``, ``"delete"`` or
            ``"keep"``.
        verify: An async callable taking each new key, awaited before anything of that
            environment retires; returning False or raising rejects the key.
        retries: The retry budget of each call; by default the client's, with room to wait
            for an hourly window.
        max_age: Rotate only where the newest enabled key is older than this.
        dry_run: Only list the keys and plan.

    Returns:
        One ``RotationResult`` per id, in the order of ``sub_account_ids``.

    Raises:
        ValueError: An argument has a bad value (named in the message); nothing was sent.
        TypeError: An argument has the wrong type (named in the message); nothing was sent.
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
    )
    async with contextlib.aclosing(stream):
        async for result in stream:
            results[result.sub_account_id] = result
            if on_progress is not None:
                outcome = on_progress(len(results), len(ids), result)
                if inspect.isawaitable(outcome):
                    await outcome
    return [results[sub] for sub in ids]
