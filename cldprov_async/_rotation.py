"""Key rotation: a new enabled key in, the old ones out, nothing lost on the way.

A rotation of one product environment runs in an order that keeps its invariants at every
step, so a failure anywhere leaves a working environment:

1. list the keys (one request: without paging the API returns them all, secrets included);
2. the new key: the one already called ``name`` (a rerun finishing a half-done rotation), or
   ``generate`` (which never makes two keys for one call), enabled;
3. if any other key is dedicated for webhooks, dedicate the new one (the API moves it);
4. await ``verify(new_key)``, the caller's proof that the new key works;
5. retire the other keys that are enabled: disable, delete, or keep them.

Every request of a rotation is bulk work (``priority="bulk"``): it leaves the gate's reserve
of each window to the service's own calls.

The new key is never retired, at least one enabled key always remains, and the new key
(with its secret) is in the result even when a later step fails.

Imports: the access-key operations (it is built on them, never the other way round),
telemetry, models, config and errors. ``_bulk`` runs it over many environments; ``AccessKeysAPI``
(``_api``) puts these functions on ``client.access_keys`` as methods.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Literal

from attrs import evolve, frozen

from . import _telemetry as telemetry
from ._access_keys import AccessKeyOperations
from ._config import RetryConfig
from .errors import CldProvisioningError, ConflictError, NotFoundError, VerificationError
from .models import AccessKey, DedicatedFor, GetAccessKeysRequest, SortBy, SortOrder, check_id

log = logging.getLogger("cldprov_async")

Retire = Literal["disable", "delete", "keep"]
Verify = Callable[[AccessKey], Awaitable[object]]
RETIRE_MODES = ("disable", "delete", "keep")
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
    ``failed`` (``error``), or ``planned`` (a dry run; ``plan`` holds what it would do).

    Attributes:
        sub_account_id: The product environment.
        new_key: The new key with its secret, whenever one was made or found, even if a
            later step failed: store it.
        retired: The old keys retired (as they are now: disabled, or as they were if deleted).
        error: Why the rotation failed (a ``CldProvisioningError``), or None.
        skipped: Why a policy skipped the environment, or None.
        plan: What a dry run would do, or None.
    """

    sub_account_id: str
    new_key: AccessKey | None = None
    retired: tuple[AccessKey, ...] = ()
    error: BaseException | None = None
    skipped: str | None = None
    plan: RotationPlan | None = None

    @property
    def ok(self) -> bool:
        """True unless the rotation failed (a skipped or planned one is ok)."""
        return self.error is None

    @property
    def status(self) -> Literal["rotated", "skipped", "failed", "planned"]:
        """``failed``, ``skipped``, ``planned`` or ``rotated``, in that order of precedence."""
        if self.error is not None:
            return "failed"
        if self.skipped is not None:
            return "skipped"
        return "planned" if self.plan is not None else "rotated"


def run_name() -> str:
    """A key name unique to one run: UTC time to the second plus 32 random bits."""
    return f"rotated-{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{secrets.token_hex(4)}"


def check_rotate_options(name: str | None, retire: str, verify: Verify | None) -> None:
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
    verify: Verify | None = None,
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
        result = await rotate_listed(
            api,
            sub_account_id,
            None,
            name=name or run_name(),
            retire=retire,
            verify=verify,
            retries=retries,
        )
        telemetry.failed(span, result.error)
    return result


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
    try:
        if keys is None:
            listing = await api.list(
                {"sub_account_id": sub_account_id}, retries=retries, priority="bulk"
            )
            keys = listing.access_keys
        new_key = next((k for k in keys if k.name == name), None)
        if new_key is None:
            new_key = await _generate(api, sub_account_id, name, retries)
        elif not new_key.enabled:
            new_key = await _update(api, sub_account_id, new_key, {"enabled": True}, retries)
        others = [k for k in keys if k.api_key != new_key.api_key]
        dedicated = any(DedicatedFor.WEBHOOKS in k.dedicated_for for k in others)
        if dedicated and DedicatedFor.WEBHOOKS not in new_key.dedicated_for:
            change = {"dedicated_for": DedicatedFor.WEBHOOKS}
            new_key = await _update(api, sub_account_id, new_key, change, retries)
        if verify is not None:
            await _verify(verify, new_key)
        if retire != "keep":
            for old in others:
                if old.enabled:
                    retired.append(await _retire(api, sub_account_id, old, retire, retries))
    except CldProvisioningError as exc:
        log_failure(sub_account_id, exc)
        return RotationResult(sub_account_id, new_key, tuple(retired), exc)
    return RotationResult(sub_account_id, new_key, tuple(retired))


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


async def _generate(
    api: AccessKeyOperations, sub: str, name: str, retries: RetryConfig | None
) -> AccessKey:
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


async def _update(
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


async def _verify(verify: Verify, key: AccessKey) -> None:
    try:
        verdict = await verify(key)
    except Exception as exc:
        raise VerificationError(f"verify rejected the new key: {type(exc).__name__}") from exc
    if verdict is False:
        raise VerificationError("verify returned False for the new key")


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
