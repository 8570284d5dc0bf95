"""The wire types of the "Access Keys" tag, as frozen attrs classes.

Request models validate on construction, so bad input fails with a ValueError/TypeError
that names the parameter before anything is sent. ``None`` means "not set": unset fields
are left out of the JSON body. Response models hold only what the spec (and the live API's
``dedicated_for`` quirk) documents; unknown response fields are ignored.

Imports: errors only (``ErrorResponse`` is re-exported as a model).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeVar

from attrs import field, fields, frozen

from .errors import APIError, ErrorResponse

__all__ = [
    "APIError",
    "AccessKey",
    "AccessKeyRequest",
    "AccessKeyUpdateRequest",
    "AccessKeysResponse",
    "DedicatedFor",
    "ErrorResponse",
    "GetAccessKeysRequest",
    "ProductEnvironment",
    "ProductEnvironmentAccessKey",
    "ProductEnvironmentsResponse",
    "SortBy",
    "SortOrder",
    "SuccessResponse",
]


class SortBy(enum.StrEnum):
    """Which field ``list`` sorts by.

    Attributes:
        API_KEY: The key's ``api_key``.
        CREATED_AT: When the key was created.
        NAME: The key's name.
        ENABLED: Whether the key is enabled.
    """

    API_KEY = "api_key"
    CREATED_AT = "created_at"
    NAME = "name"
    ENABLED = "enabled"


class SortOrder(enum.StrEnum):
    """The order of ``list`` results; the server's default is ``desc``.

    Attributes:
        DESC: Descending: the newest (or last) first.
        ASC: Ascending.
    """

    DESC = "desc"
    ASC = "asc"


class DedicatedFor(enum.StrEnum):
    """What a key can be dedicated to (one key per product environment at a time).

    Attributes:
        WEBHOOKS: The key Cloudinary signs the environment's webhook notifications with.
    """

    WEBHOOKS = "webhooks"


E = TypeVar("E", bound=enum.StrEnum)
M = TypeVar("M")


# --- validation helpers: each names the parameter it checks ---------------------------------


def check_id(value: object, param: str) -> str:
    """A path id: a non-empty string."""
    if not isinstance(value, str):
        raise TypeError(f"{param} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{param} must not be empty")
    return value


def _coerce_enum(enum_cls: type[E], value: object, param: str) -> E | None:
    if value is None or isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        member = enum_cls._value2member_map_.get(value)  # what enum_cls(value) looks up
        if member is not None:
            return member  # type: ignore[return-value]
        allowed = ", ".join(repr(m.value) for m in enum_cls)
        raise ValueError(f"{param} must be one of {allowed}, not {value!r}")
    raise TypeError(f"{param} must be a {enum_cls.__name__} or str, not {type(value).__name__}")


def _to_sort_by(value: object) -> SortBy | None:
    return _coerce_enum(SortBy, value, "sort_by")


def _to_sort_order(value: object) -> SortOrder | None:
    return _coerce_enum(SortOrder, value, "sort_order")


def _to_dedicated_for(value: object) -> DedicatedFor | None:
    return _coerce_enum(DedicatedFor, value, "dedicated_for")


def _opt_name(inst: object, attribute: Any, value: object) -> None:
    if value is not None:
        check_id(value, attribute.name)


def _opt_bool(inst: object, attribute: Any, value: object) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{attribute.name} must be a bool, not {type(value).__name__}")


def _opt_int(low: int, high: int | None) -> Any:
    def check(inst: object, attribute: Any, value: object) -> None:
        if value is None:
            return
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{attribute.name} must be an int, not {type(value).__name__}")
        if value < low or (high is not None and value > high):
            bounds = f"{low}..{high}" if high is not None else f">= {low}"
            raise ValueError(f"{attribute.name} must be {bounds}, not {value}")

    return check


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(a.name for a in fields(cls))
    return names


def coerce_request(cls: type[M], value: object, param: str) -> M:
    """Accept a model instance or a plain mapping of its fields, as the seed SDK does."""
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        known = _field_names(cls)
        if not known.issuperset(value):
            unknown = [k for k in value if k not in known]
            raise TypeError(f"{param} has unknown field(s) {unknown}; allowed: {sorted(known)}")
        return cls(**value)
    raise TypeError(f"{param} must be a {cls.__name__} or a mapping, not {type(value).__name__}")


# --- requests ---------------------------------------------------------------------------------


@frozen
class AccessKeyRequest:
    """Body of ``generate``.

    Attributes:
        name: The new key's name. Recommended: a named key lets a retried ``generate`` find
            the key it made instead of creating a second one.
        enabled: Whether the key starts enabled (the server's default: enabled).
    """

    name: str | None = field(default=None, validator=_opt_name)
    enabled: bool | None = field(default=None, validator=_opt_bool)


@frozen
class AccessKeyUpdateRequest:
    """Body of ``update``; set only what should change.

    Attributes:
        name: The key's new name.
        enabled: Enable (True) or disable (False) the key.
        dedicated_for: Dedicate the key (the API moves the dedication from any other key of
            the environment); a ``DedicatedFor`` member or its string value.
    """

    name: str | None = field(default=None, validator=_opt_name)
    enabled: bool | None = field(default=None, validator=_opt_bool)
    dedicated_for: DedicatedFor | None = field(default=None, converter=_to_dedicated_for)


@frozen
class GetAccessKeysRequest:
    """Parameters of ``list``. Without ``page``/``page_size`` the server returns every key.

    Attributes:
        sub_account_id: The product environment whose keys to list.
        page_size: Keys per page (the server's default applies when only ``page`` is set).
        page: The page to return, 1 to 100.
        sort_by: The field to sort by; a ``SortBy`` member or its string value.
        sort_order: ``asc`` or ``desc`` (the server's default); a ``SortOrder`` member or
            its string value.
    """

    sub_account_id: str = field(validator=lambda i, a, v: check_id(v, a.name))
    page_size: int | None = field(default=None, validator=_opt_int(1, None))
    page: int | None = field(default=None, validator=_opt_int(1, 100))
    sort_by: SortBy | None = field(default=None, converter=_to_sort_by)
    sort_order: SortOrder | None = field(default=None, converter=_to_sort_order)


# --- responses --------------------------------------------------------------------------------


@frozen
class AccessKey:
    """One access key. ``api_secret`` is kept out of repr/str.

    Attributes:
        name: The key's name (``""`` for an unnamed key).
        api_key: The key itself: its id in every call about it.
        created_at: When it was created (timezone-aware).
        updated_at: When it last changed (timezone-aware).
        enabled: Whether it authenticates requests.
        api_secret: Its secret: sent when a key is generated and in key listings; None
            where the answer did not carry it.
        dedicated_for: What the key is dedicated to: ``("webhooks",)`` on the dedicated key
            (the live API sends a list; the spec omits the field), else empty.
    """

    name: str
    api_key: str
    created_at: datetime
    updated_at: datetime
    enabled: bool
    api_secret: str | None = field(default=None, repr=False)
    dedicated_for: tuple[str, ...] = ()


@frozen
class AccessKeysResponse:
    """A page of keys; ``total`` counts all keys of the product environment.

    Attributes:
        access_keys: The keys of this page (all keys when ``list`` was not paged).
        total: How many keys the environment has, if the server said.
    """

    access_keys: tuple[AccessKey, ...] = ()
    total: int | None = None


@frozen
class SuccessResponse:
    """The body of a successful delete.

    Attributes:
        message: The server's word (``"ok"``).
    """

    message: str = ""


# --- the "Product Environments" tag (read only: its listing) -----------------------------------


@frozen
class ProductEnvironmentAccessKey:
    """A key as a product environment listing shows it (spec: ApiAccessKey). ``secret`` is
    kept out of repr/str.

    Attributes:
        key: The key's ``api_key``.
        enabled: Whether it is enabled.
        secret: Its secret, if the listing carried it.
    """

    key: str
    enabled: bool
    secret: str | None = field(default=None, repr=False)


@frozen
class ProductEnvironment:
    """One product environment (sub-account) of the account.

    Attributes:
        id: The environment's id: the ``sub_account_id`` of the access-key operations.
        name: Its display name.
        cloud_name: Its cloud name (the Admin and Upload APIs address it by this).
        enabled: Whether the environment is enabled.
        created_at: When it was created (timezone-aware), if the server said.
        updated_at: When it last changed (timezone-aware), if the server said.
        api_access_keys: Its keys, without names or dates (list them for those).
    """

    id: str
    name: str = ""
    cloud_name: str = ""
    enabled: bool = True
    created_at: datetime | None = None
    updated_at: datetime | None = None
    api_access_keys: tuple[ProductEnvironmentAccessKey, ...] = ()


@frozen
class ProductEnvironmentsResponse:
    """Every product environment that matched (the listing is not paged).

    Attributes:
        sub_accounts: The environments, in the server's order.
    """

    sub_accounts: tuple[ProductEnvironment, ...] = ()
