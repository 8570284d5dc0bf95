"""Key rotation: a new enabled key in, the old ones out, nothing lost on the way.

A rotation of one product environment runs in an order that keeps its invariants at every
step, so a failure anywhere leaves a working environment:

1. list the keys (one request: without paging the API returns them all, secrets included);
2. the new key: the one already called ``name`` (a rerun finishing a half-done rotation), or
   ``generate`` (which never makes two keys for one call), enabled;
3. if any other key is dedicated for webhooks, dedicate the new one (the API moves it);
4. await ``verify(new_key)``, the caller's proof that the new key works;
5. retire the other keys that are enabled: disable, delete, or keep them.

``policy_skip`` (an age policy) and ``plan_rotation`` (a dry run) are the same decisions as
pure functions of the keys, for ``_bulk``.

Every request of a rotation is bulk work (``priority="bulk"``): it leaves the gate's reserve
of each window to the service's own calls.

The new key is never retired, at least one enabled key always remains, and the new key
(with its secret) is in the result even when a later step fails.

Imports: the access-key operations (it is built on them, never the other way round),
telemetry, the lifecycle's names (``Retire``), models, config and errors. ``_bulk`` runs it
over many environments; ``AccessKeysAPI`` (``_api``) puts these functions on
``client.access_keys`` as methods.
"""

from __future__ import annotations

import functools
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta

from attrs import evolve, frozen

from . import _telemetry as telemetry
from ._access_keys import AccessKeyOperations
from ._config import RetryConfig
from ._environments import EnvironmentLookup
from ._lifecycle import RETIRE_MODES as RETIRE_MODES
from ._lifecycle import KeyLike, NextStep, Status, Step, age_text
from ._lifecycle import Retire as Retire
from ._product_environments import ProductEnvironmentOperations
from ._verify import PingVerifier
from .errors import CldProvisioningError, ConflictError, NotFoundError, VerificationError
from .models import AccessKey, DedicatedFor, GetAccessKeysRequest, SortBy, SortOrder, check_id

log = logging.getLogger("cldprov_async")

Verify = Callable[[AccessKey], Awaitable[object]]
#: The span of one environment's rotation; its calls are its children.
ROTATE = "access_keys.rotate"


@frozen
class RotationPlan:
    """What a rotation of one environment would do (a dry run), from its current keys.

    Attributes:
        new_key_name: The name the new key would have.
        creates_key: False when a key of that name exists already (a rerun finishing a
            rotation).
        retire: The enabled keys it would retire (disable or delete).
        dedication_moves: Whether the webhook dedication would move to the new key.
        requests: Requests the rotation would send, its key listing included.
    """

    new_key_name: str
    creates_key: bool
    retire: tuple[AccessKey, ...]
    dedication_moves: bool
    requests: int


@frozen
class RotationResult:
    """How one product environment's rotation ended. ``new_key`` holds the new secret.

    ``status`` says which: ``rotated``, ``skipped`` (by a policy; ``skipped`` holds why),
    ``failed`` (``error``), or ``planned`` (a dry run; ``plan`` holds what it would do); in
    lifecycle mode also ``handed_off``, ``in_grace``, ``retired`` and ``pruned``.


    Attributes:
        sub_account_id: The product environment.
        new_key: The key this run made or handed off (or, on a rerun with the same name,
            made before), with its secret; present even when a later step failed: store it.
        retired: The older keys retired (as they are now: disabled, or as they were if
            deleted with ``retire="delete"``).
        error: Why the rotation failed (a ``CldProvisioningError``), or None.
        skipped: Why nothing was due (also why an environment waits in grace), or None.
        plan: What a dry run would do, or None.
        steps: The steps taken, in order: ``generated``, ``verified``, ``handed_off``,
            ``retired``, ``pruned``.
        deleted: The keys a lifecycle run pruned (a rotation had retired them long enough
            ago).
        in_grace_until: When the older keys' grace ends (they stay enabled until then), or
            None.
        next: The step a lifecycle dry run says a real run would take now (or ``in_grace``),
            or None.
        next_at: When ``next`` falls due, if not now.
        lifecycle_status: The status a lifecycle run reports (None in classic mode).
    """

    sub_account_id: str
    new_key: AccessKey | None = None
    retired: tuple[AccessKey, ...] = ()
    error: BaseException | None = None
    skipped: str | None = None
    plan: RotationPlan | None = None
    steps: tuple[Step, ...] = ()
    deleted: tuple[AccessKey, ...] = ()
    in_grace_until: datetime | None = None
    next: NextStep | None = None
    next_at: datetime | None = None
    lifecycle_status: Status | None = None

    @property
    def ok(self) -> bool:
        """True unless the rotation failed (a skipped or planned one is ok)."""
        return self.error is None

    @property
    def status(self) -> Status:
        """What happened: ``failed``; else a lifecycle run's own status; else ``skipped``,
        ``planned`` or ``rotated``."""
        if self.error is not None:
            return "failed"
        if self.lifecycle_status is not None:
            return self.lifecycle_status
        if self.skipped is not None:
            return "skipped"
        return "planned" if self.plan is not None else "rotated"


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


def run_name() -> str:
    """A key name unique to one run: UTC time to the second plus 32 random bits."""
    return f"rotated-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_rotate_options(name: str | None, retire: str, verify: object) -> None:
    if name is not None:
        check_id(name, "name")
    if retire not in RETIRE_MODES:
        raise ValueError(f"retire must be one of {RETIRE_MODES}, not {retire!r}")
    if verify is not None and not callable(verify):
        raise TypeError("verify must be an async callable taking the new AccessKey")


def iter_keys(
    api: AccessKeyOperations,
    sub_account_id: str,
    *,
    page_size: int = 100,
    sort_by: SortBy | str | None = None,
    sort_order: SortOrder | str | None = None,
    retries: RetryConfig | None = None,
) -> AsyncIterator[AccessKey]:
    """Every key of a product environment, fetched a page at a time.

    Args:
        sub_account_id: The product environment.
        page_size: Keys per page (at most 100 pages are read).
        sort_by: The field to sort by; a ``SortBy`` member or its string value.
        sort_order: ``asc`` or ``desc``; a ``SortOrder`` member or its string value.
        retries: The retry budget of each page's call instead of the client's.

    Returns:
        An async iterator of the keys; pages are requested as it is consumed.

    Raises:
        ValueError: An argument has a bad value (named in the message); nothing was sent.
        TypeError: An argument has the wrong type (named in the message); nothing was sent.
    """
    first = GetAccessKeysRequest(sub_account_id, page_size, 1, sort_by, sort_order)  # validate now
    return _pages(api, first, retries)


async def _pages(
    api: AccessKeyOperations, first: GetAccessKeysRequest, retries: RetryConfig | None
) -> AsyncIterator[AccessKey]:
    """The pages from ``first`` on; the API serves at most 100 pages."""
    page_size = first.page_size or 100
    page = 1
    while True:
        listing = await api.list(evolve(first, page=page), retries=retries)
        for key in listing.access_keys:
            yield key
        seen = (page - 1) * page_size + len(listing.access_keys)
        if len(listing.access_keys) < page_size or (
            listing.total is not None and seen >= listing.total
        ):
            return
        if page == 100:
            raise CldProvisioningError(
                f"more keys than 100 pages of {page_size} can hold; use a larger page_size"
            )
        page += 1


async def rotate(
    api: AccessKeyOperations,
    sub_account_id: str,
    *,
    name: str | None = None,
    retire: Retire = "disable",
    verify: Verify | PingVerifier | None = None,
    retries: RetryConfig | None = None,
) -> RotationResult:
    """Replace the enabled keys with one new key; check ``result.ok``: errors are returned.

    The new key (with its secret) is in the result even when a later step fails; running
    it again with the same ``name`` finishes a half-done rotation. Its requests are bulk
    work (they leave the gate's reserve to normal calls).

    Args:
        sub_account_id: The product environment.
        name: The new key's name, which identifies the rotation (reuse it to resume);
            ``rotated-TIME-RANDOM`` when None.
        retire: What happens to the old enabled keys: ``"disable"``, ``"delete"`` or
            ``"keep"``.
        verify: An async callable taking the new key, awaited before anything retires;
            returning False or raising rejects the key (a ``VerificationError``).
        retries: The retry budget of each call instead of the client's.

    Returns:
        How it ended: ``status``, the ``new_key`` (with its secret), ``retired``, ``error``.

    Raises:
        ValueError: An argument has a bad value (named in the message); nothing was sent.
        TypeError: An argument has the wrong type (named in the message); nothing was sent.
    """
    check_id(sub_account_id, "sub_account_id")
    check_rotate_options(name, retire, verify)
    with telemetry.span(ROTATE, sub_account_id) as span:  # its calls are child spans
        try:
            checker = await _with_environment(api, sub_account_id, verify, retries)
        except CldProvisioningError as exc:
            log_failure(sub_account_id, exc)
            result = RotationResult(sub_account_id, error=exc)
        else:
            result = await rotate_listed(
                api,
                sub_account_id,
                None,
                name=name or run_name(),
                retire=retire,
                verify=checker,
                retries=retries,
            )
        telemetry.failed(span, result.error)
    return result


async def _with_environment(
    api: AccessKeyOperations,
    sub_account_id: str,
    verify: Verify | PingVerifier | None,
    retries: RetryConfig | None,
) -> Verify | None:
    """A ``PingVerifier`` needs the environment's cloud name: look it up (one listing)."""
    if not isinstance(verify, PingVerifier):
        return verify
    listing = api.environments
    if not isinstance(listing, ProductEnvironmentOperations):
        raise TypeError("a PingVerifier needs client.access_keys (to find the cloud name)")
    env = await EnvironmentLookup(listing, None, retries).get(sub_account_id)
    return functools.partial(verify, environment=env)


async def rotate_listed(
    api: AccessKeyOperations,
    sub_account_id: str,
    keys: Sequence[AccessKey] | None,
    *,
    name: str,
    retire: Retire,
    verify: Verify | None,
    retries: RetryConfig | None,
) -> RotationResult:
    """``rotate``'s steps, arguments checked, from ``keys`` when the caller has listed them."""
    new_key: AccessKey | None = None
    retired: list[AccessKey] = []
    steps: list[Step] = []
    try:
        if keys is None:
            listing = await api.list(
                {"sub_account_id": sub_account_id}, retries=retries, priority="bulk"
            )
            keys = listing.access_keys
        new_key = next((k for k in keys if k.name == name), None)
        if new_key is None:
            new_key = await generate_named(api, sub_account_id, name, retries)
            steps.append("generated")
        elif not new_key.enabled:
            new_key = await update_key(api, sub_account_id, new_key, {"enabled": True}, retries)
        others = [k for k in keys if k.api_key != new_key.api_key]
        dedicated = any(DedicatedFor.WEBHOOKS in k.dedicated_for for k in others)
        if dedicated and DedicatedFor.WEBHOOKS not in new_key.dedicated_for:
            change = {"dedicated_for": DedicatedFor.WEBHOOKS}
            new_key = await update_key(api, sub_account_id, new_key, change, retries)
        if verify is not None:
            await verify_key(verify, new_key)
            steps.append("verified")
        if retire != "keep":
            for old in others:
                if old.enabled:
                    retired.append(await _retire(api, sub_account_id, old, retire, retries))
                    if steps[-1:] != ["retired"]:
                        steps.append("retired")
    except CldProvisioningError as exc:
        log_failure(sub_account_id, exc)
        return RotationResult(sub_account_id, new_key, tuple(retired), exc, steps=tuple(steps))
    return RotationResult(sub_account_id, new_key, tuple(retired), steps=tuple(steps))


def log_failure(sub_account_id: str, exc: CldProvisioningError) -> None:
    """One warning per failed environment, its facts as record attributes too."""
    log.warning(
        "rotation of %s failed: %s",
        sub_account_id,
        exc,
        extra=telemetry.log_extra(
            ROTATE, exc.method, exc.path, status=exc.status_code, sub_account_id=sub_account_id
        ),
    )


# -- steps ---------------------------------------------------------------------------------


async def generate_named(
    api: AccessKeyOperations, sub: str, name: str, retries: RetryConfig | None
) -> AccessKey:
    """A new enabled key called ``name``; on 409 (an earlier attempt made it), that key."""
    try:
        return await api.generate(
            sub, {"name": name, "enabled": True}, retries=retries, priority="bulk"
        )
    except ConflictError:
        # Someone (an earlier run?) created it since we listed: take that one.
        keys = (
            await api.list({"sub_account_id": sub}, retries=retries, priority="bulk")
        ).access_keys
        found = next((k for k in keys if k.name == name), None)
        if found is None:
            raise
        return found


async def update_key(
    api: AccessKeyOperations,
    sub: str,
    key: AccessKey,
    change: Mapping[str, object],
    retries: RetryConfig | None,
) -> AccessKey:
    updated = await api.update(sub, key.api_key, change, retries=retries, priority="bulk")
    # Some answers to update omit the secret; keep the one we already hold.
    if updated.api_secret is None and key.api_secret is not None:
        updated = evolve(updated, api_secret=key.api_secret)
    return updated


async def verify_key(verify: Verify, key: AccessKey) -> None:
    """Await ``verify(key)``; any exception or False becomes a ``VerificationError``."""
    failed, false = "verify rejected the new key", "verify returned False for the new key"
    await judged(verify(key), VerificationError, failed, false)


async def judged(
    call: Awaitable[object], error: type[CldProvisioningError], failed: str, false: str
) -> None:
    """Await a caller's callback: an exception becomes ``error`` saying ``failed`` and the
    exception's type (only: its message may hold a secret), ``False`` says ``false``; an
    ``error`` the callback raised itself passes through."""
    try:
        verdict = await call
    except error:
        raise
    except Exception as exc:
        raise error(f"{failed}: {type(exc).__name__}") from exc
    if verdict is False:
        raise error(false)


async def _retire(
    api: AccessKeyOperations, sub: str, key: AccessKey, mode: Retire, retries: RetryConfig | None
) -> AccessKey:
    try:
        if mode == "delete":
            await api.delete(sub, key.api_key, retries=retries, priority="bulk")
            return key
        return await api.update(
            sub, key.api_key, {"enabled": False}, retries=retries, priority="bulk"
        )
    except NotFoundError:
        return key  # already gone: deleted by a retried DELETE or by someone else
