"""One environment's lifecycle run: take every step ``_lifecycle.decide`` says is due, in order.

The run lists the environment's keys once, then loops: decide, take the first due step, fold
the server's answer into the keys, decide again. The steps, in the order they become
possible: retire the older keys whose grace is over, generate ``NAME@pending``, verify it,
hand it off (``deliver``, a deploy hook, or the CLI's result line), record the hand-off (one
PUT renaming it ``NAME@current``, moving the webhook dedication with it), retire the older keys
when no grace is left, prune what a rotation retired long enough ago. A run makes at most one
key and one hand-off. Anything that fails stops this environment only: the key stays pending
and the older keys enabled, and the next run continues from what the server holds.

Now is the clock's, or the newest date the server stamped on a key when that is later (a
clock a little behind the server's must not delay a grace of zero).

The key cache (``_inventory``): when the environment's entry is trusted (the listing shows
its key ids and flags unchanged, no hand-off pending) and deciding on it leaves nothing due
and nothing to resume, the run reports it skipped or in grace without a request. Anything
due, or a key of this run's name to report again (a resume), means listing the keys (their
secrets are not cached). After its steps the run records the keys as they now stand.

Imports: the lifecycle's decision and names, rotation's steps and result, the key
inventory, the verifier, the clock, models, config, errors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from attrs import evolve, frozen

from ._access_keys import AccessKeyOperations
from ._clock import Clock, utc
from ._config import RetryConfig
from ._inventory import KeyInventory
from ._labels import current_name, pending_name, retired_name
from ._lifecycle import Decision, KeyLike, LifecyclePolicy, Step, decide, status_of
from ._rotation import (
    RotationPlan,
    RotationResult,
    Verify,
    generate_named,
    judged,
    log_failure,
    update_key,
    verify_key,
)
from ._verify import PingVerifier
from .errors import CldProvisioningError, ConflictError, HandOffError, NotFoundError
from .models import AccessKey, DedicatedFor, ProductEnvironment

#: The library's hand-off: ``deliver(new_key, environment)``; returning means delivered.
Deliver = Callable[[AccessKey, ProductEnvironment], Awaitable[object]]
#: The engine's hand-off: also sees the result the environment will have once it is recorded
#: (the CLI without a hook writes that result line as the hand-off).
HandOff = Callable[[AccessKey, ProductEnvironment, RotationResult], Awaitable[object]]
_K = TypeVar("_K", bound=KeyLike)


@frozen
class LifecycleRun:
    """What one lifecycle run does to each environment.

    Attributes:
        name: the run's name (its key is ``NAME@pending``, then ``NAME@current``).
        policy: older_than, grace, prune_after, retire.
        hand_off: hands the verified key to its consumers; raising fails the environment.
        verify: proves the key works first (a ``PingVerifier`` is given the environment).
        retries: every call's retry budget.
        clock: now.
        hand_off_last: the hand-off is the environment's last word (the CLI's result line):
            prune before it, retire nothing after it (a later run does).
    """

    name: str
    policy: LifecyclePolicy
    hand_off: HandOff
    verify: Verify | PingVerifier | None
    retries: RetryConfig
    clock: Clock
    hand_off_last: bool = False


def delivering(deliver: Deliver) -> HandOff:
    """The engine's hand-off from a library ``deliver``: an exception or ``False`` is a
    ``HandOffError`` (its type only: a message may hold the secret)."""

    async def hand_off(key: AccessKey, env: ProductEnvironment, _: RotationResult) -> None:
        await judged(deliver(key, env), HandOffError, "deliver failed", "deliver returned False")

    return hand_off


class _Env:
    """The run's view of one environment: its keys as they now stand, and what was done."""

    def __init__(self, sub: str, keys: Sequence[AccessKey]) -> None:
        self.sub = sub
        self.keys = {k.api_key: k for k in keys}
        self.steps: list[Step] = []
        self.new_key: AccessKey | None = None
        self.retired: list[AccessKey] = []
        self.deleted: list[AccessKey] = []

    def put(self, key: AccessKey) -> None:
        old = self.keys.get(key.api_key)
        if key.api_secret is None and old is not None and old.api_secret is not None:
            key = evolve(key, api_secret=old.api_secret)  # some answers omit the secret
        if DedicatedFor.WEBHOOKS in key.dedicated_for:  # one holder: the API moves it
            for other in list(self.keys.values()):
                if other.api_key != key.api_key and DedicatedFor.WEBHOOKS in other.dedicated_for:
                    rest = tuple(d for d in other.dedicated_for if d != DedicatedFor.WEBHOOKS)
                    self.keys[other.api_key] = evolve(other, dedicated_for=rest)
        self.keys[key.api_key] = key

    def step(self, step: Step) -> None:
        if self.steps[-1:] != [step]:
            self.steps.append(step)

    def result(
        self,
        decision: Decision[Any],
        steps: Sequence[Step] | None = None,
        error: CldProvisioningError | None = None,
    ) -> RotationResult:
        """The environment's result after ``steps`` (those taken so far by default)."""
        taken = tuple(self.steps if steps is None else steps)
        in_grace = decision.in_grace_until
        return RotationResult(
            self.sub,
            self.new_key,
            tuple(self.retired),
            error,
            skipped=None if taken else decision.reason,
            steps=taken,
            deleted=tuple(self.deleted),
            in_grace_until=in_grace,
            lifecycle_status=status_of(taken, in_grace=in_grace is not None, failed=bool(error)),
        )


def _decide(env: _Env, run: LifecycleRun) -> Decision[AccessKey]:
    return _decision(list(env.keys.values()), run)


def _decision(keys: Sequence[_K], run: LifecycleRun) -> Decision[_K]:
    now = max([utc(run.clock), *(k.updated_at for k in keys)])
    return decide(keys, now, run.policy, run.name)


async def run_lifecycle(
    api: AccessKeyOperations,
    environment: ProductEnvironment,
    run: LifecycleRun,
    inventory: KeyInventory,
    *,
    dry_run: bool = False,
) -> RotationResult:
    """Take every step due for ``environment``: from its key cache entry when that is
    trusted and nothing is due, else from its keys listed through ``inventory`` (which
    then records what the steps left).

    Failures are returned (``result.error``), never raised, with the steps taken so far.
    """
    sub = environment.id
    env = _Env(sub, ())
    try:
        entry = await inventory.trusted(environment)
        if entry is not None:
            cached = _decision(entry.keys, run)
            if not cached.due and cached.resume is None:  # nothing to do or say: no request
                return _planned(env, cached, run) if dry_run else env.result(cached)
        env = _Env(sub, (await inventory.fetch(sub))[1])
        d = _decide(env, run)
        if dry_run:
            return _planned(env, d, run)
        env.new_key = d.resume
        if d.retire:
            await _retire(api, env, d, run)
            d = _decide(env, run)
        if d.generate:
            env.new_key = await generate_named(api, sub, pending_name(run.name), run.retries)
            env.put(env.new_key)
            env.step("generated")
            d = _decide(env, run)
        if d.hand_off is not None:
            if run.hand_off_last and d.prune:
                await _prune(api, env, d, run)
            await _hand_off(api, env, environment, d, run)
            d = _decide(env, run)
            if d.retire and not run.hand_off_last:
                await _retire(api, env, d, run)
                d = _decide(env, run)
        if d.prune and not (run.hand_off_last and "handed_off" in env.steps):
            await _prune(api, env, d, run)
            d = _decide(env, run)
        if env.steps:
            await inventory.record(sub, env.keys.values())
        return env.result(d)
    except CldProvisioningError as exc:
        log_failure(sub, exc)
        return env.result(_decide(env, run), error=exc)


async def _hand_off(
    api: AccessKeyOperations,
    env: _Env,
    environment: ProductEnvironment,
    d: Decision[AccessKey],
    run: LifecycleRun,
) -> None:
    key = d.hand_off
    assert key is not None
    env.new_key = key
    if run.verify is not None:
        verify = run.verify
        if isinstance(verify, PingVerifier):
            await verify(key, environment)
        else:
            await verify_key(verify, key)
        env.step("verified")
    change: dict[str, object] = {"name": current_name(key.name)}
    if d.dedicate is key:
        change["dedicated_for"] = DedicatedFor.WEBHOOKS
    # What the environment's result will be once the hand-off is recorded (the CLI's line).
    now = max(utc(run.clock), key.updated_at).replace(microsecond=0)  # as the server stamps
    env.put(evolve(key, name=current_name(key.name), updated_at=now))
    after = _decide(env, run)
    env.put(key)
    await run.hand_off(key, environment, env.result(after, steps=(*env.steps, "handed_off")))
    env.step("handed_off")
    try:
        env.new_key = await update_key(api, env.sub, key, change, run.retries)
    except ConflictError as exc:
        raise ConflictError(
            f"cannot record the hand-off: the name {change['name']!r} is taken",
            status_code=exc.status_code,
            method=exc.method,
            path=exc.path,
        ) from exc
    env.put(env.new_key)


async def _retire(
    api: AccessKeyOperations, env: _Env, d: Decision[AccessKey], run: LifecycleRun
) -> None:
    """Retire ``d.retire``: the current key takes the webhook dedication first if a retiring
    key holds it; ``disable`` labels each ``BASE@retired`` in the same PUT."""
    if d.dedicate is not None:
        change = {"dedicated_for": DedicatedFor.WEBHOOKS}
        env.put(await update_key(api, env.sub, d.dedicate, change, run.retries))
    for key in d.retire:
        try:
            if run.policy.retire == "delete":
                await api.delete(env.sub, key.api_key, retries=run.retries, priority="bulk")
                del env.keys[key.api_key]
                env.retired.append(key)
            else:
                env.retired.append(await _disable(api, env, key, run.retries))
        except NotFoundError:
            env.keys.pop(key.api_key, None)  # gone already: a retried DELETE, or by hand
        env.step("retired")


async def _disable(
    api: AccessKeyOperations, env: _Env, key: AccessKey, retries: RetryConfig
) -> AccessKey:
    taken = {k.name for k in env.keys.values() if k.api_key != key.api_key}
    name = retired_name(key.name, key.api_key, taken)
    change: Mapping[str, object] = {"enabled": False, "name": name}
    try:
        updated = await update_key(api, env.sub, key, change, retries)
    except ConflictError:  # taken since we listed: the tagged name is this key's own
        tagged = retired_name(key.name, key.api_key, {name})
        updated = await update_key(api, env.sub, key, {**change, "name": tagged}, retries)
    env.put(updated)
    return updated


async def _prune(
    api: AccessKeyOperations, env: _Env, d: Decision[AccessKey], run: LifecycleRun
) -> None:
    for key in d.prune:
        with contextlib.suppress(NotFoundError):  # gone already
            await api.delete(env.sub, key.api_key, retries=run.retries, priority="bulk")
        env.keys.pop(key.api_key, None)
        env.deleted.append(key)
        env.step("pruned")


def _planned(env: _Env, d: Decision[Any], run: LifecycleRun) -> RotationResult:
    """A dry run: what a real run would do now (``plan``), and ``next``/``next_at``."""
    hand_off = d.generate or d.hand_off is not None
    if d.generate:
        name = pending_name(run.name)
    else:
        name = d.hand_off.name if d.hand_off is not None else ""
    after = 0  # the older keys a hook's hand-off retires at once when there is no grace
    if hand_off and not run.policy.grace and run.policy.retire != "keep" and not run.hand_off_last:
        after = max(0, d.facts.enabled - (d.hand_off is not None) - len(d.retire))
    requests = 1 + len(d.retire) + (d.dedicate is not None) + len(d.prune) + after
    requests += 2 if d.generate else 1 if d.hand_off is not None else 0
    plan = RotationPlan(name, d.generate, d.retire, d.dedicate is not None, requests)
    return RotationResult(
        env.sub,
        plan=plan,
        skipped=d.reason if not d.due else None,
        in_grace_until=d.in_grace_until,
        next=d.next,
        next_at=d.next_at,
        lifecycle_status="planned",
    )
