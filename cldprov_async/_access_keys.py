"""The five operations of the "Access Keys" tag: the layer rotation is built on.

Each operation names its method, path, parameters and result type and hands them to
``Operations._call``, the one request path (``Session.call``). ``generate`` adds one thing
on top: when its outcome is unknown (the connection dropped after sending, or a 5xx) and
the key has a name, it finds out by retrying and, on 409 or once out of attempts, looking
the key up by name, so a retry never leaves a duplicate key or a secret the caller never saw.

Imports: the request path, telemetry, the gate's backoff, models, config and errors.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _telemetry as telemetry
from ._backoff import backoff
from ._clock import SYSTEM_CLOCK, Clock
from ._config import RetryConfig
from ._operation import Operations, Priority, call_options, segment
from ._session import Query, Session
from .errors import (
    APIError,
    CldProvisioningError,
    ConflictError,
    OutcomeUnknownError,
)
from .models import (
    AccessKey,
    AccessKeyRequest,
    AccessKeysResponse,
    AccessKeyUpdateRequest,
    GetAccessKeysRequest,
    SuccessResponse,
    check_id,
    coerce_request,
)

if TYPE_CHECKING:
    from ._keycache import KeyCache
    from ._product_environments import ProductEnvironmentOperations

#: Paths and list queries kept per client; past this many a cache starts over.
_PATH_CACHE_SIZE = 1024
#: How much older than our first attempt a key found by name after a 409 may look and
#: still be ours (clock skew between this machine and the server).
_CLOCK_SKEW = 300.0
_GENERATE = "access_keys.generate"


def _outcome_unknown(exc: CldProvisioningError) -> bool:
    """A POST that may or may not have been acted on: no answer, or a 5xx."""
    return isinstance(exc, OutcomeUnknownError) or (exc.status_code or 0) >= 500


class AccessKeyOperations(Operations):
    """List, generate, update and delete a product environment's access keys.

    Built by the client (``client.access_keys``); not constructed directly.
    """

    #: What rotations and audits read keys and time through: the key cache (None: no
    #: cache), the product-environment listing and the clock. The client sets them
    #: (``AccessKeysAPI``).
    key_cache: KeyCache | None = None
    environments: ProductEnvironmentOperations | None = None
    clock: Clock = SYSTEM_CLOCK

    def __init__(self, session: Session, account_id: str) -> None:
        super().__init__(session, account_id)
        self._paths: dict[str, str] = {}  # sub_account_id -> its keys' path (bounded)
        self._queries: dict[tuple[tuple[str, Any], ...], tuple[str, Query]] = {}  # (bounded)

    # -- the five operations ---------------------------------------------------------------

    async def list(
        self,
        request: GetAccessKeysRequest | Mapping[str, Any],
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        priority: Priority = "normal",
    ) -> AccessKeysResponse:
        """Keys of one product environment; all of them unless ``page``/``page_size`` is set.

        Args:
            request: A ``GetAccessKeysRequest``, or a mapping of its fields
                (``{"sub_account_id": ..., "sort_by": ...}``).
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.
            priority: ``"bulk"`` leaves the gate's reserve of each window to ``"normal"`` calls.

        Returns:
            The keys, secrets included, and the environment's key count.

        Raises:
            ValueError: An argument has a bad value (named in the message); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``NotFoundError``,
                ``RateLimitedError``, ``TransportError``...; see ``cldprov_async.errors``).
        """
        sub_account_id, params = self._list_query(request)
        path = self._keys_path(sub_account_id)
        if retries is None and timeout_ms is None and http_headers is None and priority == "normal":
            opts = None  # the common call: the defaults, nothing to check or pass
        else:
            opts = call_options(retries, timeout_ms, http_headers, priority)
        return await self._call(
            "GET",
            path,
            AccessKeysResponse,
            operation="access_keys.list",
            sub_account_id=sub_account_id,
            params=params,
            **(opts or {}),
        )

    async def generate(
        self,
        sub_account_id: str,
        access_key_request: AccessKeyRequest | Mapping[str, Any] | None = None,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        priority: Priority = "normal",
    ) -> AccessKey:
        """A new key, with its secret. Never creates two keys for one call.

        When the outcome of the request is unknown (the connection dropped after sending, a
        5xx), a named key is found by retrying and, on 409, by its name in the key list;
        an unnamed one raises ``OutcomeUnknownError`` rather than risk a second key.

        Args:
            sub_account_id: The product environment to add the key to.
            access_key_request: An ``AccessKeyRequest``, or a mapping of its fields
                (``{"name": ..., "enabled": ...}``); None for an unnamed, enabled key.
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.
            priority: ``"bulk"`` leaves the gate's reserve of each window to ``"normal"`` calls.

        Returns:
            The new key, with its ``api_secret``: store it, the API shows it only in listings.

        Raises:
            ValueError: An argument has a bad value (named in the message); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``NotFoundError``,
                ``RateLimitedError``, ``TransportError``...; see ``cldprov_async.errors``).
        """
        if access_key_request is None:
            access_key_request = {}
        body = coerce_request(AccessKeyRequest, access_key_request, "access_key_request")
        opts = call_options(retries, timeout_ms, http_headers, priority)
        path = self._keys_path(sub_account_id)
        # One span for the whole call, its resolution by name included.
        scope = telemetry.start(_GENERATE, sub_account_id)
        started = time.time()
        try:
            try:
                key = await self._call(
                    "POST", path, AccessKey, operation=_GENERATE, body=body, **opts
                )
            except (OutcomeUnknownError, APIError) as exc:
                if not _outcome_unknown(exc):
                    raise
                key = await self._resolve_generate(sub_account_id, body, started, exc, opts)
        except BaseException as exc:
            telemetry.finish(scope, exc)
            raise
        telemetry.finish(scope, None)
        return key

    async def update(
        self,
        sub_account_id: str,
        key: str,
        access_key_update_request: AccessKeyUpdateRequest | Mapping[str, Any],
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        priority: Priority = "normal",
    ) -> AccessKey:
        """Rename, enable/disable, or dedicate a key; send only what changes.

        Args:
            sub_account_id: The product environment holding the key.
            key: The key's ``api_key``.
            access_key_update_request: An ``AccessKeyUpdateRequest``, or a mapping of its
                fields (``{"enabled": False}``).
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.
            priority: ``"bulk"`` leaves the gate's reserve of each window to ``"normal"`` calls.

        Returns:
            The key as it is now (``dedicated_for`` as the live API sends it).

        Raises:
            ValueError: An argument has a bad value (named in the message); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``NotFoundError``,
                ``RateLimitedError``, ``TransportError``...; see ``cldprov_async.errors``).
        """
        body = coerce_request(
            AccessKeyUpdateRequest, access_key_update_request, "access_key_update_request"
        )
        opts = call_options(retries, timeout_ms, http_headers, priority)
        path = self._key_path(sub_account_id, key)
        return await self._call(
            "PUT",
            path,
            AccessKey,
            operation="access_keys.update",
            sub_account_id=sub_account_id,
            body=body,
            **opts,
        )

    async def delete_by_name(
        self,
        sub_account_id: str,
        name: str,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        priority: Priority = "normal",
    ) -> SuccessResponse:
        """Delete the key called ``name``.

        Args:
            sub_account_id: The product environment holding the key.
            name: The key's name.
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.
            priority: ``"bulk"`` leaves the gate's reserve of each window to ``"normal"`` calls.

        Returns:
            The server's confirmation.

        Raises:
            ValueError: An argument has a bad value (named in the message); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``NotFoundError``,
                ``RateLimitedError``, ``TransportError``...; see ``cldprov_async.errors``).
        """
        check_id(name, "name")
        opts = call_options(retries, timeout_ms, http_headers, priority)
        path = self._keys_path(sub_account_id)
        return await self._call(
            "DELETE",
            path,
            SuccessResponse,
            operation="access_keys.delete_by_name",
            sub_account_id=sub_account_id,
            params=(("name", name),),
            **opts,
        )

    async def delete(
        self,
        sub_account_id: str,
        key: str,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
        priority: Priority = "normal",
    ) -> SuccessResponse:
        """Delete the key whose api_key is ``key``.

        Args:
            sub_account_id: The product environment holding the key.
            key: The key's ``api_key``.
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.
            priority: ``"bulk"`` leaves the gate's reserve of each window to ``"normal"`` calls.

        Returns:
            The server's confirmation.

        Raises:
            ValueError: An argument has a bad value (named in the message); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``NotFoundError``,
                ``RateLimitedError``, ``TransportError``...; see ``cldprov_async.errors``).
        """
        opts = call_options(retries, timeout_ms, http_headers, priority)
        path = self._key_path(sub_account_id, key)
        return await self._call(
            "DELETE",
            path,
            SuccessResponse,
            operation="access_keys.delete",
            sub_account_id=sub_account_id,
            **opts,
        )

    # -- requests, paths and generate's resolution ------------------------------------------

    def _list_query(self, request: GetAccessKeysRequest | Mapping[str, Any]) -> tuple[str, Query]:
        """``list``'s environment and query, checked through the model. A plain mapping whose
        values are all text (ids, enum values) is checked once per client: its result is kept."""
        key: tuple[tuple[str, Any], ...] | None = None
        if type(request) is dict:
            key = tuple(request.items())
            try:
                known = self._queries.get(key)
            except TypeError:  # an unhashable value: the model says what is wrong with it
                known, key = None, None
            if known is not None:
                return known
        req = coerce_request(GetAccessKeysRequest, request, "request")
        fields = (
            ("page_size", req.page_size),
            ("page", req.page),
            ("sort_by", req.sort_by),
            ("sort_order", req.sort_order),
        )
        known = req.sub_account_id, tuple((k, str(v)) for k, v in fields if v is not None)
        if key is not None and all(type(v) is str for _, v in key):
            # Equal text gives an equal result, whatever its type (an enum member, say).
            if len(self._queries) >= _PATH_CACHE_SIZE:
                self._queries.clear()
            self._queries[key] = known
        return known

    def _keys_path(self, sub_account_id: str) -> str:
        """The keys' path of an environment; checked and encoded once per id (cached)."""
        path = self._paths.get(sub_account_id) if type(sub_account_id) is str else None
        if path is None:
            check_id(sub_account_id, "sub_account_id")
            path = f"{self._account_path}/sub_accounts/{segment(sub_account_id)}/access_keys"
            if len(self._paths) >= _PATH_CACHE_SIZE:
                self._paths.clear()
            self._paths[sub_account_id] = path
        return path

    def _key_path(self, sub_account_id: str, key: str) -> str:
        check_id(key, "key")
        return f"{self._keys_path(sub_account_id)}/{segment(key)}"

    async def _resolve_generate(
        self,
        sub_account_id: str,
        body: AccessKeyRequest,
        started: float,
        first: CldProvisioningError,
        opts: Mapping[str, Any],
    ) -> AccessKey:
        """Find out whether an unanswered generate created its (named) key; never create two."""
        if body.name is None:
            raise OutcomeUnknownError(
                "generate may or may not have created a key, and without a name it cannot"
                " be looked up; list the keys before trying again",
                status_code=first.status_code,
                method="POST",
                path=first.path,
            ) from first
        retry: RetryConfig = opts["retries"] or self.default_retry
        path = self._keys_path(sub_account_id)
        last: Exception = first
        for n in range(retry.max_attempts - 1):  # the first attempt was one of them
            await asyncio.sleep(backoff(retry, n, self._session.limiter.rng))
            try:
                return await self._call(
                    "POST", path, AccessKey, operation=_GENERATE, body=body, **opts
                )
            except ConflictError:
                found = await self._created_by_us(sub_account_id, body, started, opts)
                if found is None:
                    raise  # the name belonged to an older key: a real conflict
                return found
            except (OutcomeUnknownError, APIError) as exc:
                if not _outcome_unknown(exc):
                    raise
                last = exc
        # Out of attempts, but one of them may have committed: a last look before giving up.
        looked = "no key of that name was listed afterwards"
        try:
            found = await self._created_by_us(sub_account_id, body, started, opts)
        except CldProvisioningError as exc:
            found, looked = None, f"listing the keys failed too ({type(exc).__name__})"
        if found is not None:
            return found
        raise OutcomeUnknownError(
            f"generate of key {body.name!r} may or may not have succeeded; retries did not"
            f" tell and {looked}",
            method="POST",
            path=path,
        ) from last

    async def _created_by_us(
        self, sub_account_id: str, body: AccessKeyRequest, started: float, opts: Mapping[str, Any]
    ) -> AccessKey | None:
        """The key named ``body.name`` if it was created since this generate began."""
        # Made on the caller's behalf: it belongs to (and is logged as) their generate.
        path = self._keys_path(sub_account_id)
        listing = await self._call("GET", path, AccessKeysResponse, operation=_GENERATE, **opts)
        for key in listing.access_keys:
            if key.name == body.name and key.created_at.timestamp() >= started - _CLOCK_SKEW:
                return key
        return None
