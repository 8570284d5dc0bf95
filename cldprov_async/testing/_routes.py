"""The API itself: which path and method make which route, the parsing of query and body, and
what each route does to the account (with the live API's 400/404/409 answers, as
``ApiError``).

Imports ``_state`` and ``_types`` from the package (nothing from ``cldprov_async``); knows nothing
of aiohttp, auth, rate limits or faults.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from ._state import Accounts, StoredKey, SubAccount
from ._types import Route

DEFAULT_PAGE_SIZE: Final = 10
"""``page_size`` used when only ``page`` is given."""

_PREFIX: Final = ("", "v1_1", "provisioning", "accounts")
_COLLECTION_ROUTES: Final[dict[str, Route]] = {
    "GET": "list",
    "POST": "generate",
    "DELETE": "delete_by_name",
}
_KEY_ROUTES: Final[dict[str, Route]] = {"PUT": "update", "DELETE": "delete"}
_SORT_KEYS: Final[dict[str, Callable[[StoredKey], Any]]] = {
    "api_key": lambda k: k.api_key,
    "created_at": lambda k: k.seq,
    "name": lambda k: k.name,
    "enabled": lambda k: k.enabled,
}


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def match(method: str, parts: list[str]) -> Route | None:
    """The route of a request, from its method and its path split on ``/``; None if none."""
    if len(parts) == 4 and parts[1] == "v1_1" and parts[3] == "ping" and parts[2]:
        return "ping" if method == "GET" and parts[2] != "provisioning" else None
    if len(parts) == 6 and parts[5] == "sub_accounts" and tuple(parts[:4]) == _PREFIX:
        return "list_product_environments" if method == "GET" else None
    if len(parts) < 8 or parts[5] != "sub_accounts" or parts[7] != "access_keys":
        return None
    if tuple(parts[:4]) != _PREFIX:
        return None
    if len(parts) == 8:
        return _COLLECTION_ROUTES.get(method)
    if len(parts) == 9 and parts[8]:
        return _KEY_ROUTES.get(method)
    return None


def sub_account_of(parts: list[str]) -> str:
    """The sub-account id in the path of a request that has a route ("" for the listing; the
    cloud name for the Admin API's ping)."""
    if len(parts) == 4:
        return parts[2]
    return parts[6] if len(parts) > 6 else ""


def ping(
    accounts: Accounts,
    cloud_name: str,
    credentials: tuple[str, str] | None,
    *,
    delay: float,
    refused: frozenset[str],
) -> tuple[int, Any]:
    """The Admin API's ``GET /v1_1/{cloud_name}/ping`` (the caller holds ``accounts.lock``).

    Accepted: an enabled key of that environment with its secret, created at least ``delay``
    seconds ago, unless the environment is in ``refused``. Else 401, as the live API answers
    a bad key.
    """
    sub = accounts.by_cloud_name(cloud_name)
    if sub is None:
        return 401, {"error": {"message": f"Invalid cloud_name {cloud_name}"}}
    api_key = "" if credentials is None else credentials[0]
    key = sub.keys.get(api_key)
    if (
        credentials is None
        or key is None
        or not key.enabled
        or key.api_secret != credentials[1]
        or sub.id in refused
        or accounts.now() - key.born < delay
    ):
        return 401, {"error": {"message": f"Invalid api_key {api_key}"}}
    return 200, {"status": "ok"}


# --- parsing


def _object_body(body: Any, is_json: bool) -> dict[str, Any]:
    if not is_json:
        raise ApiError(400, "Invalid JSON body")
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    return body


def _opt_str(body: dict[str, Any], field: str) -> str | None:
    if field not in body:
        return None
    value: object = body[field]
    if not isinstance(value, str):
        raise ApiError(400, f"Invalid value for {field}: expected a string")
    return value


def _opt_bool(body: dict[str, Any], field: str) -> bool | None:
    if field not in body:
        return None
    value: object = body[field]
    if isinstance(value, bool):
        return value
    if value == "true" or value == "false":
        return value == "true"
    raise ApiError(400, f"Invalid value for {field}: expected a boolean")


def _int_param(query: Mapping[str, str], name: str, default: int, high: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    value = int(raw) if raw.isascii() and raw.isdigit() else 0
    if value < 1 or (high is not None and value > high):
        bound = "a positive integer" if high is None else f"an integer in 1..{high}"
        raise ApiError(400, f"Invalid value for {name}: {raw!r} (expected {bound})")
    return value


# --- the routes


def dispatch(
    accounts: Accounts,
    route: Route,
    parts: list[str],
    query: dict[str, str],
    body: Any,
    is_json: bool,
) -> tuple[int, Any]:
    """Apply one accepted request to the state (the caller holds ``accounts.lock``)."""
    account_id, sub_account_id = parts[4], parts[6]
    if account_id != accounts.account_id:
        raise ApiError(404, f"Account {account_id} not found")
    sub = accounts.get(sub_account_id)
    if sub is None:
        raise ApiError(404, f"Product environment {sub_account_id} not found")
    if route == "list":
        return 200, _list(sub, query)
    if route == "generate":
        return 200, _generate(accounts, sub, _object_body(body, is_json))
    if route == "update":
        return 200, _update(accounts, sub, parts[8], _object_body(body, is_json))
    if route == "delete":
        key = sub.keys.get(parts[8])
        if key is None:
            raise ApiError(404, f"Access key {parts[8]} not found")
    else:
        name = query.get("name")
        if not name:
            raise ApiError(400, "Missing required parameter: name")
        key = sub.by_name.get(name)
        if key is None:
            raise ApiError(404, f"Access key named {name!r} not found")
    sub.remove(key)
    return 200, {"message": "ok"}


def _many(query: Mapping[str, str], name: str) -> list[str] | None:
    """A list parameter sent as ``name[]=a&name[]=b`` (the classic SDK) or ``name=a&name=b``."""
    getall = getattr(query, "getall", None)
    values: list[str] = []
    for key in (f"{name}[]", name):
        values += getall(key, []) if getall is not None else ([query[key]] if key in query else [])
    if not values and f"{name}[]" not in query and name not in query:
        return None
    if len(values) > 100:
        raise ApiError(400, f"Invalid value for {name}: at most 100 values")
    return values


def list_environments(
    accounts: Accounts, parts: list[str], query: Mapping[str, str]
) -> tuple[int, Any]:
    """The product-environment listing (the caller holds ``accounts.lock``): every environment,
    or those matching; with ``ids`` the other filters are ignored, as the spec says."""
    if parts[4] != accounts.account_id:
        raise ApiError(404, f"Account {parts[4]} not found")
    subs = accounts.sub_accounts()
    ids = _many(query, "ids")
    if ids is not None:
        wanted = set(ids)
        subs = [s for s in subs if s.id in wanted]
    else:
        enabled = _opt_bool(dict(query), "enabled")
        if enabled is not None:
            subs = [s for s in subs if s.enabled == enabled]
        cloud_names = _many(query, "cloud_names")
        if cloud_names is not None:
            wanted = set(cloud_names)
            subs = [s for s in subs if s.cloud_name in wanted]
        prefix = query.get("prefix")
        if prefix:
            folded = prefix.casefold()
            subs = [s for s in subs if s.name.casefold().startswith(folded)]
    return 200, {"sub_accounts": [s.environment_json() for s in subs]}


def _list(sub: SubAccount, query: dict[str, str]) -> dict[str, Any]:
    sort_by = query.get("sort_by", "created_at")
    sort_key = _SORT_KEYS.get(sort_by)
    if sort_key is None:
        raise ApiError(400, f"Invalid value for sort_by: {sort_by!r}")
    sort_order = query.get("sort_order", "desc")
    if sort_order not in ("asc", "desc"):
        raise ApiError(400, f"Invalid value for sort_order: {sort_order!r}")
    keys = sorted(sub.keys.values(), key=sort_key, reverse=sort_order == "desc")
    if "page" in query or "page_size" in query:
        page = _int_param(query, "page", 1, 100)
        size = _int_param(query, "page_size", DEFAULT_PAGE_SIZE, None)
        keys = keys[(page - 1) * size : page * size]
    return {"access_keys": [sub.to_json(key) for key in keys], "total": len(sub.keys)}


def _generate(accounts: Accounts, sub: SubAccount, body: dict[str, Any]) -> dict[str, Any]:
    name = _opt_str(body, "name") or ""
    enabled = _opt_bool(body, "enabled")
    if name and name in sub.by_name:
        raise ApiError(409, f"Access key with name {name!r} already exists")
    key = accounts.new_key(sub, name, True if enabled is None else enabled)
    accounts.keys_created += 1
    return sub.to_json(key)


def _update(
    accounts: Accounts, sub: SubAccount, api_key: str, body: dict[str, Any]
) -> dict[str, Any]:
    name = _opt_str(body, "name")
    enabled = _opt_bool(body, "enabled")
    dedicate = "dedicated_for" in body
    if dedicate and body["dedicated_for"] != "webhooks":
        raise ApiError(400, "Invalid value for dedicated_for: expected 'webhooks'")
    key = sub.keys.get(api_key)
    if key is None:
        raise ApiError(404, f"Access key {api_key} not found")
    if name is not None and name != key.name:
        if name and name in sub.by_name:
            raise ApiError(409, f"Access key with name {name!r} already exists")
        if key.name:
            del sub.by_name[key.name]
        key.name = name
        if name:
            sub.by_name[name] = key
    if enabled is not None:
        key.enabled = enabled
    if dedicate:
        sub.webhooks_key = key.api_key
    key.updated_at = accounts.stamp()
    return sub.to_json(key)
