"""The one operation of the "Product Environments" tag this client offers: the listing.

Rotation at account scale needs to know which environments exist; creating, updating or
deleting them is out of scope. The listing is a single unpaged answer holding every matching
environment (about 300 bytes each), so it gets its own response cap, far above the access-key
answers' one: 50,000 environments are about 15 MB.

Query encoding follows Cloudinary's classic SDK, which the live API has long accepted: lists
as repeated ``ids[]=a&ids[]=b``, booleans as ``true``/``false``.

Imports: the request path (``_operation``), the session (its type), models and config.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ._config import RetryConfig
from ._operation import Operations, call_options
from ._session import Query, Session
from .models import ProductEnvironmentsResponse

#: The most ``ids`` or ``cloud_names`` one listing takes (the spec's limit).
MAX_LISTED = 100
#: The default cap on a listing's answer: room for ~400,000 environments of ~300 bytes.
DEFAULT_MAX_LISTING_BYTES = 128 * 1024 * 1024


def _names(value: Iterable[str] | None, param: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise TypeError(f"{param} must be a list of str, not {type(value).__name__}")
    out = list(value)
    for item in out:
        if not isinstance(item, str):
            raise TypeError(f"{param} must hold str, not {type(item).__name__}")
        if not item:
            raise ValueError(f"{param} must not hold an empty string")
    if len(out) > MAX_LISTED:
        raise ValueError(f"{param} takes at most {MAX_LISTED} values, not {len(out)}")
    return out


def listing_query(
    enabled: bool | None,
    ids: Iterable[str] | None,
    cloud_names: Iterable[str] | None,
    prefix: str | None,
) -> list[tuple[str, str]]:
    """The query pairs of a listing, validated; each bad parameter is named."""
    if enabled is not None and not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool or None, not {type(enabled).__name__}")
    if prefix is not None and not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str or None, not {type(prefix).__name__}")
    query: list[tuple[str, str]] = []
    if enabled is not None:
        query.append(("enabled", "true" if enabled else "false"))
    query += [("ids[]", i) for i in _names(ids, "ids")]
    query += [("cloud_names[]", c) for c in _names(cloud_names, "cloud_names")]
    if prefix:
        query.append(("prefix", prefix))
    return query


#: The query of a listing filtered by ``enabled`` alone, or not at all (the usual listings),
#: by ``enabled``: built once, not per call.
_ENABLED_ONLY: dict[bool | None, Query] = {
    flag: tuple(listing_query(flag, None, None, None)) for flag in (None, True, False)
}


class ProductEnvironmentOperations(Operations):
    """``client.product_environments``: list the account's product environments.

    Built by the client; not constructed directly.

    Args:
        session: The client's session (its one request path).
        account_id: The account whose environments to list.
        max_listing_bytes: The largest listing read.

    Attributes:
        max_listing_bytes (int): The largest listing read; a larger one raises
            ``ResponseTooLargeError``.
    """

    def __init__(
        self,
        session: Session,
        account_id: str,
        *,
        max_listing_bytes: int = DEFAULT_MAX_LISTING_BYTES,
    ) -> None:
        super().__init__(session, account_id)
        self.max_listing_bytes = max_listing_bytes
        self._listing_path = f"{self._account_path}/sub_accounts"

    async def list(
        self,
        enabled: bool | None = None,
        ids: Iterable[str] | None = None,
        cloud_names: Iterable[str] | None = None,
        prefix: str | None = None,
        *,
        retries: RetryConfig | None = None,
        timeout_ms: float | None = None,
        http_headers: Mapping[str, str] | None = None,
    ) -> ProductEnvironmentsResponse:
        """The environments that match (all by default), in one unpaged answer.

        Lists go on the query string as ``ids[]=a&ids[]=b``, booleans as ``true``/``false``,
        as Cloudinary's classic SDK sends them. The answer may be large (about 300 bytes an
        environment): it is capped by the client's ``max_listing_bytes``.

        Args:
            enabled: Only enabled (True) or disabled (False) environments.
            ids: Only these environment ids (at most 100); the API then ignores the other
                filters.
            cloud_names: Only these cloud names (at most 100).
            prefix: Only environments whose name starts with this, case-insensitively.
            retries: This call's retry budget instead of the client's ``retry_config``.
            timeout_ms: This call's timeout per attempt, in milliseconds.
            http_headers: Extra headers for this call's requests.

        Returns:
            The matching environments, each with its keys (``key``, ``enabled``).

        Raises:
            ValueError: An argument has a bad value (more than 100 ids...); nothing was sent.
            TypeError: An argument has the wrong type (named in the message); nothing was sent.
            CldProvisioningError: The call failed: a subclass says how (``ResponseTooLargeError``
                past ``max_listing_bytes``, ``RateLimitedError``...).
        """
        if (
            ids is None
            and cloud_names is None
            and prefix is None
            and (enabled is None or enabled is True or enabled is False)  # not 1: refused below
        ):
            params = _ENABLED_ONLY[enabled]  # the usual listing: its query built once
        else:
            params = tuple(listing_query(enabled, ids, cloud_names, prefix))
        if retries is None and timeout_ms is None and http_headers is None:
            opts = None  # the common call: the defaults, nothing to check or pass
        else:
            opts = call_options(retries, timeout_ms, http_headers)
        return await self._call(
            "GET",
            self._listing_path,
            ProductEnvironmentsResponse,
            operation="product_environments.list",
            params=params,
            max_bytes=self.max_listing_bytes,
            **(opts or {}),
        )
