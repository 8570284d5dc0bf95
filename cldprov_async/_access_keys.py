"""``client.access_keys``: the five operations of the "Access Keys" tag.

Each operation names its method, path, parameters and result type and hands them to
``_call``, the one request path: validate, send through the session, turn the answer into
a model or a typed error. ``generate`` adds one thing on top: when its outcome is unknown
(the connection dropped after sending, or a 5xx) and the key has a name, it finds out by
retrying and, on 409 or once out of attempts, looking the key up by name, so a retry never
leaves a duplicate key or a secret the caller never saw.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import time
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from . import _rotation
from ._config import RetryConfig
from ._converter import structure, unstructure
from ._ratelimit import backoff
from .errors import (
    APIError,
    CldProvisioningError,
    ConflictError,
    OutcomeUnknownError,
    from_response,
)
from .models import (
    AccessKey,
    AccessKeyRequest,
    AccessKeysResponse,
    AccessKeyUpdateRequest,
    GetAccessKeysRequest,
    SortBy,
    SortOrder,
    SuccessResponse,
    check_id,
    coerce_request,
)

if TYPE_CHECKING:
    from ._session import Session

T = TypeVar("T")

#: How much older than our first attempt a key found by name after a 409 may look and
#: still be ours (clock skew between this machine and the server).
_CLOCK_SKEW = 300.0


def _segment(value: str) -> str:
    """Percent-encode a path parameter so it cannot leave its segment ("/", "?", "..")."""
    encoded = quote(value, safe="")
    return encoded.replace(".", "%2E") if encoded.strip(".") == "" else encoded


def _outcome_unknown(exc: CldProvisioningError) -> bool:
    """A POST that may or may not have been acted on: no answer, or a 5xx."""
    return isinstance(exc, OutcomeUnknownError) or (exc.status_code or 0) >= 500


def _options(
    retries: RetryConfig | None, timeout_ms: float | None, http_headers: Mapping[str, str] | None
) -> dict[str, Any]:
    if retries is not None and not isinstance(retries, RetryConfig):
        raise TypeError(f"retries must be a RetryConfig, not {type(retries).__name__}")
    if timeout_ms is not None:
        if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float):
            raise TypeError(f"timeout_ms must be a number, not {type(timeout_ms).__name__}")
        if not timeout_ms > 0:
            raise ValueError(f"timeout_ms must be > 0, not {timeout_ms}")
    if http_headers is not None:
        if not isinstance(http_headers, Mapping):
            raise TypeError(f"http_headers must be a mapping, not {type(http_headers).__name__}")
        for k, v in http_headers.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("http_headers must map str to str")
            if not k or any(c in k + v for c in "\r\n\x00"):
                raise ValueError(f"http_headers has an invalid header {k!r}")
    return {"retries": retries, "timeout_ms": timeout_ms, "http_headers": http_headers}


class AccessKeysAPI:
    """List, generate, update and delete a product environment's access keys."""

    def __init__(self, session: Session, account_id: str) -> None:
        self._session = session
        self._prefix = f"/v1_1/provisioning/accounts/{_segment(account_id)}/sub_accounts/"

    # -- the five operations ---------------------------------------------------------------

    async def list(
        self,
        request: GetAccessKeysRequest | Mapping[str, Any],
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> AccessKeysResponse:
        """Keys of one product environment; all of them unless ``page``/``page_size`` is set."""
        req = coerce_request(GetAccessKeysRequest, request, "request")
        params = {
            k: str(v)
            for k, v in (
                ("page_size", req.page_size),
                ("page", req.page),
                ("sort_by", req.sort_by),
                ("sort_order", req.sort_order),
            )
            if v is not None
        }
        opts = _options(retries, timeout_ms, http_headers)
        path = self._keys_path(req.sub_account_id)
        return await self._call("GET", path, AccessKeysResponse, params=params, **opts)

    async def generate(
        self,
        sub_account_id: str,
        access_key_request: AccessKeyRequest | Mapping[str, Any] | None = None,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> AccessKey:
        """A new key, with its secret. Never creates two keys for one call (see module doc)."""
        if access_key_request is None:
            access_key_request = {}
        body = coerce_request(AccessKeyRequest, access_key_request, "access_key_request")
        opts = _options(retries, timeout_ms, http_headers)
        path = self._keys_path(sub_account_id)
        started = time.time()
        try:
            return await self._call("POST", path, AccessKey, body=body, **opts)
        except (OutcomeUnknownError, APIError) as exc:
            if not _outcome_unknown(exc):
                raise
            if body.name is None:
                raise OutcomeUnknownError(
                    "generate may or may not have created a key, and without a name it cannot"
                    " be looked up; list the keys before trying again",
                    status_code=exc.status_code,
                    method="POST",
                    path=exc.path,
                ) from exc
            return await self._resolve_generate(sub_account_id, body, started, exc, opts)

    async def update(
        self,
        sub_account_id: str,
        key: str,
        access_key_update_request: AccessKeyUpdateRequest | Mapping[str, Any],
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> AccessKey:
        """Rename, enable/disable, or dedicate a key; send only what changes."""
        body = coerce_request(
            AccessKeyUpdateRequest, access_key_update_request, "access_key_update_request"
        )
        opts = _options(retries, timeout_ms, http_headers)
        path = self._key_path(sub_account_id, key)
        return await self._call("PUT", path, AccessKey, body=body, **opts)

    async def delete_by_name(
        self,
        sub_account_id: str,
        name: str,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> SuccessResponse:
        """Delete the key called ``name``."""
        check_id(name, "name")
        opts = _options(retries, timeout_ms, http_headers)
        path = self._keys_path(sub_account_id)
        return await self._call("DELETE", path, SuccessResponse, params={"name": name}, **opts)

    async def delete(
        self,
        sub_account_id: str,
        key: str,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> SuccessResponse:
        """Delete the key whose api_key is ``key``."""
        opts = _options(retries, timeout_ms, http_headers)
        path = self._key_path(sub_account_id, key)
        return await self._call("DELETE", path, SuccessResponse, **opts)

    # -- built on the five: paging and rotation (see _rotation) ------------------------------

    def iter_keys(
        self,
        sub_account_id: str,
        *,
        page_size: int = 100,
        sort_by: SortBy | str | None = None,
        sort_order: SortOrder | str | None = None,
        retries: RetryConfig | None = None,
    ) -> AsyncIterator[AccessKey]:
        """Every key of a product environment, fetched a page at a time."""
        GetAccessKeysRequest(sub_account_id, page_size, 1, sort_by, sort_order)  # validate now
        return _rotation.iter_keys(
            self,
            sub_account_id,
            page_size=page_size,
            sort_by=sort_by,
            sort_order=sort_order,
            retries=retries,
        )

    async def rotate(
        self,
        sub_account_id: str,
        *,
        name: str | None = None,
        retire: _rotation.Retire = "disable",
        verify: _rotation.Verify | None = None,
        retries: RetryConfig | None = None,
    ) -> _rotation.RotationResult:
        """Replace the enabled keys with one new key. Check ``result.ok``: errors are returned.

        Running it again with the same ``name`` finishes a half-done rotation.
        """
        return await _rotation.rotate(
            self, sub_account_id, name=name, retire=retire, verify=verify, retries=retries
        )

    async def rotate_many(
        self,
        sub_account_ids: Iterable[str],
        *,
        concurrency: int = 8,
        on_progress: _rotation.OnProgress | None = None,
        name: str | None = None,
        retire: _rotation.Retire = "disable",
        verify: _rotation.Verify | None = None,
        retries: RetryConfig | None = None,
    ) -> builtins.list[_rotation.RotationResult]:
        """Rotate many product environments concurrently; one result each, in input order."""
        return await _rotation.rotate_many(
            self,
            sub_account_ids,
            concurrency=concurrency,
            on_progress=on_progress,
            name=name,
            retire=retire,
            verify=verify,
            retries=retries,
        )

    # -- the one request path --------------------------------------------------------------

    def _keys_path(self, sub_account_id: str) -> str:
        check_id(sub_account_id, "sub_account_id")
        return f"{self._prefix}{_segment(sub_account_id)}/access_keys"

    def _key_path(self, sub_account_id: str, key: str) -> str:
        check_id(key, "key")
        return f"{self._keys_path(sub_account_id)}/{_segment(key)}"

    async def _call(
        self,
        method: str,
        path: str,
        result: type[T],
        *,
        params: Mapping[str, str] | None = None,
        body: object = None,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> T:
        data = None if body is None else json.dumps(unstructure(body)).encode()
        try:
            reply = await self._session.request(
                method,
                path,
                params=params,
                body=data,
                retries=retries,
                timeout_ms=timeout_ms,
                http_headers=http_headers,
            )
        except CldProvisioningError as exc:
            if exc.rate_limit is None:
                exc.rate_limit = self._session.limiter.snapshot
            raise
        if not 200 <= reply.status < 300:
            raise from_response(
                reply.status,
                reply.headers,
                reply.body,
                method=method,
                path=reply.path,
                rate_limit=self._session.limiter.snapshot,
            )
        return structure(reply.data, result, status=reply.status, method=method, path=reply.path)

    async def _resolve_generate(
        self,
        sub_account_id: str,
        body: AccessKeyRequest,
        started: float,
        first: Exception,
        opts: dict[str, Any],
    ) -> AccessKey:
        """Find out whether an unanswered generate created its (named) key; never create two."""
        retry: RetryConfig = opts["retries"] or self._session.retry
        path = self._keys_path(sub_account_id)
        last: Exception = first
        for n in range(retry.max_attempts - 1):  # the first attempt was one of them
            await asyncio.sleep(backoff(retry, n, self._session.limiter.rng))
            try:
                return await self._call("POST", path, AccessKey, body=body, **opts)
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
        self, sub_account_id: str, body: AccessKeyRequest, started: float, opts: dict[str, Any]
    ) -> AccessKey | None:
        """The key named ``body.name`` if it was created since this generate began."""
        listing = await self.list({"sub_account_id": sub_account_id}, **opts)
        for key in listing.access_keys:
            if key.name == body.name and key.created_at.timestamp() >= started - _CLOCK_SKEW:
                return key
        return None
