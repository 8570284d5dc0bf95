"""The one cattrs converter: every model goes to and from JSON through it.

Structuring is strict about types (a number where a string belongs is an error, not a
silent ``str()``), lenient about extras (unknown fields are ignored), and every failure
becomes a ``ResponseValidationError`` whose message names the field but never its value,
so a secret in a malformed body cannot reach a log through an error message.

Imports: models and errors only; every model in or out goes through ``converter``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

import cattrs
from attrs import fields as attrs_fields
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from .errors import ResponseValidationError
from .models import (
    AccessKey,
    AccessKeyRequest,
    AccessKeysResponse,
    AccessKeyUpdateRequest,
    ProductEnvironment,
    ProductEnvironmentAccessKey,
    ProductEnvironmentsResponse,
    SuccessResponse,
)

T = TypeVar("T")

converter = cattrs.Converter(forbid_extra_keys=False, detailed_validation=True)


def _str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {type(value).__name__}")
    return value


def _bool(value: Any, _: type) -> bool:
    # The live API accepts "true"/"false" strings; tolerate them coming back too.
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value == "false":
        return False
    raise TypeError(f"expected a boolean, got {type(value).__name__}")


def _int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _datetime(value: Any, _: type) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO-8601 string, got {type(value).__name__}")
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _dedicated_for(value: Any, _: type) -> tuple[str, ...]:
    # The live API sends a list; the spec's request form is a bare string. Accept both, and keep
    # plain strings (DedicatedFor members compare equal to them).
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise TypeError(f"expected a list of strings, got {type(value).__name__}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"expected a string, got {type(item).__name__}")
        out.append(item)
    return tuple(out)


def _name(value: Any, _: type) -> str:
    # An unnamed key may come back with "name": null; it is still a key.
    return "" if value is None else _str(value, str)


converter.register_structure_hook(str, _str)
converter.register_structure_hook(bool, _bool)
converter.register_structure_hook(int, _int)
converter.register_structure_hook(datetime, _datetime)
converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _dedicated_for)

converter.register_structure_hook(
    AccessKey, make_dict_structure_fn(AccessKey, converter, name=override(struct_hook=_name))
)
_keys_hook = converter.get_structure_hook(tuple[AccessKey, ...])
_key_hook = converter.get_structure_hook(AccessKey)


def _keys(value: Any, cls: type) -> tuple[AccessKey, ...]:
    # A JSON string is iterable too; only a list may become a tuple of keys.
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    try:
        return tuple([_key_hook(item, AccessKey) for item in value])
    except Exception:  # again through the generic hook, which says which item was wrong
        keys: tuple[AccessKey, ...] = _keys_hook(value, cls)
        return keys


converter.register_structure_hook_func(lambda t: t == tuple[AccessKey, ...], _keys)


def _list_of(item: type[T]) -> Any:
    """A hook for ``tuple[item, ...]`` that takes only a JSON list (a string is iterable too)."""
    generic = converter.get_structure_hook(tuple[item, ...])  # type: ignore[valid-type]

    def hook(value: Any, cls: type) -> tuple[T, ...]:
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        out: tuple[T, ...] = generic(value, cls)
        return out

    return hook


converter.register_structure_hook_func(
    lambda t: t == tuple[ProductEnvironmentAccessKey, ...], _list_of(ProductEnvironmentAccessKey)
)
converter.register_structure_hook_func(
    lambda t: t == tuple[ProductEnvironment, ...], _list_of(ProductEnvironment)
)

# Requests: None means "unset" and is not sent; enums go out as their values.
for _request in (AccessKeyRequest, AccessKeyUpdateRequest):
    converter.register_unstructure_hook(
        _request, make_dict_unstructure_fn(_request, converter, _cattrs_omit_if_default=True)
    )


# The fast path for the answers every call reads, written by hand: a usual answer (every
# field of the expected JSON type, dates with a timezone) becomes its model with plain
# lookups and one constructor call, about a fifth of what the generated hooks spend per
# key. Anything unusual raises, and ``structure`` then takes the converter's own hook, so the
# result or the error is the converter's (tests/test_converter_fast.py compares them field
# by field).


class _Unusual(Exception):
    """Not the usual shape: let the converter decide."""


def _slot_setters(cls: type) -> tuple[Any, ...]:
    """Each field's slot setter, in field order. The items of a listing are built with these
    instead of their ``__init__``: a frozen class's ``__init__`` sets each slot through
    ``object.__setattr__``, a quarter more instructions per key. Only for models whose
    ``__init__`` does nothing else (no validator, converter or post-init: tested)."""
    return tuple(cls.__dict__[f.name].__set__ for f in attrs_fields(cls))


_new = object.__new__
_fromisoformat = datetime.fromisoformat
_k_name, _k_api_key, _k_created, _k_updated, _k_enabled, _k_secret, _k_dedicated = _slot_setters(
    AccessKey
)
_e_id, _e_name, _e_cloud, _e_enabled, _e_created, _e_updated, _e_keys = _slot_setters(
    ProductEnvironment
)
_ek_key, _ek_enabled, _ek_secret = _slot_setters(ProductEnvironmentAccessKey)
(_es_sub_accounts,) = _slot_setters(ProductEnvironmentsResponse)


def _when(value: Any) -> datetime:
    if type(value) is not str:
        raise _Unusual
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise _Unusual
    return parsed


def _key_by_hand(d: dict[str, Any]) -> AccessKey:
    # Every call of a listing comes here per key: no further Python call on the usual path.
    name, api_key, enabled = d["name"], d["api_key"], d["enabled"]
    created, updated, secret = d["created_at"], d["updated_at"], d.get("api_secret")
    if (
        type(name) is not str
        or type(api_key) is not str
        or type(enabled) is not bool
        or type(created) is not str
        or type(updated) is not str
        or (secret is not None and type(secret) is not str)
    ):
        raise _Unusual
    dedicated: tuple[str, ...] = ()
    if "dedicated_for" in d:
        items = d["dedicated_for"]
        if type(items) is not list or not all(type(item) is str for item in items):
            raise _Unusual
        dedicated = tuple(items)
    created, updated = _fromisoformat(created), _fromisoformat(updated)
    if created.tzinfo is None or updated.tzinfo is None:
        raise _Unusual
    key = _new(AccessKey)
    _k_name(key, name)
    _k_api_key(key, api_key)
    _k_created(key, created)
    _k_updated(key, updated)
    _k_enabled(key, enabled)
    _k_secret(key, secret)
    _k_dedicated(key, dedicated)
    return key


def _keys_by_hand(d: dict[str, Any]) -> AccessKeysResponse:
    items, total = d.get("access_keys", []), d.get("total")
    if type(items) is not list or (total is not None and type(total) is not int):
        raise _Unusual
    return AccessKeysResponse(tuple([_key_by_hand(item) for item in items]), total)


def _success_by_hand(d: dict[str, Any]) -> SuccessResponse:
    message = d.get("message", "")
    if type(message) is not str:
        raise _Unusual
    return SuccessResponse(message)


def _env_key_by_hand(d: dict[str, Any]) -> ProductEnvironmentAccessKey:
    key, enabled, secret = d.get("key"), d.get("enabled"), d.get("secret")
    if type(key) is not str or type(enabled) is not bool:
        raise _Unusual
    if secret is not None and type(secret) is not str:
        raise _Unusual
    built = _new(ProductEnvironmentAccessKey)
    _ek_key(built, key)
    _ek_enabled(built, enabled)
    _ek_secret(built, secret)
    return built


def _env_by_hand(d: dict[str, Any]) -> ProductEnvironment:
    env_id, name, cloud_name = d.get("id"), d.get("name", ""), d.get("cloud_name", "")
    enabled, keys = d.get("enabled", True), d.get("api_access_keys", [])
    if type(env_id) is not str or type(name) is not str or type(cloud_name) is not str:
        raise _Unusual
    if type(enabled) is not bool or type(keys) is not list:
        raise _Unusual
    created, updated = d.get("created_at"), d.get("updated_at")
    env = _new(ProductEnvironment)
    _e_id(env, env_id)
    _e_name(env, name)
    _e_cloud(env, cloud_name)
    _e_enabled(env, enabled)
    _e_created(env, None if created is None else _when(created))
    _e_updated(env, None if updated is None else _when(updated))
    _e_keys(env, tuple([_env_key_by_hand(key) for key in keys]))
    return env


def _envs_listed(items: list[Any]) -> tuple[ProductEnvironment, ...]:
    """The environments of a listing whose every field is there (the live API's answers):
    subscripts instead of ``get``, dates and keys inline, no further Python call per
    environment. A missing field raises KeyError (``_envs_by_hand`` then takes the builders
    above, which supply the defaults); anything else unusual raises for the converter."""
    out: list[ProductEnvironment] = []
    for d in items:
        env_id, name, cloud_name, enabled = d["id"], d["name"], d["cloud_name"], d["enabled"]
        created, updated, keys = d["created_at"], d["updated_at"], d["api_access_keys"]
        if (
            type(env_id) is not str
            or type(name) is not str
            or type(cloud_name) is not str
            or type(enabled) is not bool
            or type(keys) is not list
        ):
            raise _Unusual
        if created is not None:
            if type(created) is not str:
                raise _Unusual
            created = _fromisoformat(created)
            if created.tzinfo is None:
                raise _Unusual
        if updated is not None:
            if type(updated) is not str:
                raise _Unusual
            updated = _fromisoformat(updated)
            if updated.tzinfo is None:
                raise _Unusual
        built: list[ProductEnvironmentAccessKey] = []
        for k in keys:
            key, key_enabled, secret = k["key"], k["enabled"], k["secret"]
            if (
                type(key) is not str
                or type(key_enabled) is not bool
                or (secret is not None and type(secret) is not str)
            ):
                raise _Unusual
            one = _new(ProductEnvironmentAccessKey)
            _ek_key(one, key)
            _ek_enabled(one, key_enabled)
            _ek_secret(one, secret)
            built.append(one)
        env = _new(ProductEnvironment)
        _e_id(env, env_id)
        _e_name(env, name)
        _e_cloud(env, cloud_name)
        _e_enabled(env, enabled)
        _e_created(env, created)
        _e_updated(env, updated)
        _e_keys(env, tuple(built))
        out.append(env)
    return tuple(out)


def _envs_by_hand(d: dict[str, Any]) -> ProductEnvironmentsResponse:
    items = d.get("sub_accounts", [])
    if type(items) is not list:
        raise _Unusual
    try:
        envs = _envs_listed(items)
    except KeyError:  # a field left out: the builders that supply its default
        envs = tuple([_env_by_hand(item) for item in items])
    built = _new(ProductEnvironmentsResponse)
    _es_sub_accounts(built, envs)
    return built


#: Model -> its hand-written fast path (a dict in, the model out, or an exception).
_FAST: dict[type, Any] = {
    AccessKey: _key_by_hand,
    AccessKeysResponse: _keys_by_hand,
    SuccessResponse: _success_by_hand,
    ProductEnvironment: _env_by_hand,
    ProductEnvironmentAccessKey: _env_key_by_hand,
    ProductEnvironmentsResponse: _envs_by_hand,
}


def structure(data: Any, cls: type[T], *, status: int, method: str, path: str) -> T:
    """Build ``cls`` from decoded JSON, or raise ResponseValidationError naming the fields."""
    if isinstance(data, dict):
        fast = _FAST.get(cls)
        if fast is not None:
            try:
                built: T = fast(data)
                return built
            except Exception:
                pass  # unusual or wrong: the converter decides, and words any error
        try:
            return converter.structure(data, cls)
        except Exception as exc:
            details = "; ".join(cattrs.transform_error(exc))
    else:
        details = f"expected a JSON object, got {type(data).__name__}"
    raise ResponseValidationError(
        f"the answer is not a valid {cls.__name__}: {details}",
        status_code=status,
        method=method,
        path=path,
    )


def unstructure(model: object) -> dict[str, Any]:
    """The JSON body for a request model: set fields only."""
    out: dict[str, Any] = converter.unstructure(model)
    return out


__all__ = ["AccessKey", "AccessKeysResponse", "SuccessResponse", "structure", "unstructure"]
