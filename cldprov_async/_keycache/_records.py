"""What the key cache holds: each key as a listing showed it (never its secret), per
environment, with the time it was fetched; their JSON form, checked strictly on the way in.

A record never holds a secret: ``CachedKey`` has no field for one, so nothing read from a
listing can carry it into a file or Redis.

Imports: the lifecycle's ``KeyLike`` (a record is one); nothing else from the package.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from attrs import frozen

from .._lifecycle import KeyLike

#: Entries expire between this share of the ttl and the whole of it after their fetch, spread
#: per environment, so that a whole account fetched on one day is not listed again on one day.
EARLIEST_EXPIRY = 0.8


class CorruptEntry(ValueError):
    """A stored entry that is not what this module writes."""


@frozen
class CachedKey:
    """One key as its environment's key listing showed it, without the secret.

    Attributes:
        name: The key's name (its lifecycle label included).
        api_key: The key's public id.
        enabled: Whether the key was enabled.
        created_at: When the key was made (never changes: the age policies read it).
        updated_at: The key's last change (a hand-off's or a retirement's time).
        dedicated_for: What the key is dedicated for (``("webhooks",)`` or empty).
    """

    name: str
    api_key: str
    enabled: bool
    created_at: datetime
    updated_at: datetime
    dedicated_for: tuple[str, ...] = ()

    @classmethod
    def of(cls, key: KeyLike) -> CachedKey:
        """The record of a key: everything but its secret.

        Args:
            key: An ``AccessKey``, or anything shaped like one (a record is returned as is).

        Returns:
            The ``CachedKey``.
        """
        if isinstance(key, CachedKey):
            return key
        dedicated = tuple(str(d) for d in key.dedicated_for)
        return cls(key.name, key.api_key, key.enabled, key.created_at, key.updated_at, dedicated)


@frozen
class CacheEntry:
    """One environment's keys as a listing showed them at ``fetched_at``.

    Attributes:
        fetched_at: When the keys were listed (the entry's age counts from it).
        keys: The keys, without secrets.
    """

    fetched_at: datetime
    keys: tuple[CachedKey, ...]

    @classmethod
    def of(cls, keys: Iterable[KeyLike], fetched_at: datetime) -> CacheEntry:
        """The entry of an environment's keys as just listed.

        Args:
            keys: Every key of the environment (``AccessKey`` or any key-shaped record).
            fetched_at: When they were listed.

        Returns:
            The ``CacheEntry``, holding no secret.
        """
        return cls(fetched_at, tuple(CachedKey.of(k) for k in keys))

    def expires_at(self, sub_account_id: str, ttl: timedelta) -> datetime:
        """When the entry stops being trusted, spread so that a cache filled in one run does
        not expire all at once.

        Args:
            sub_account_id: The environment the entry belongs to.
            ttl: The cache's time to live.

        Returns:
            An instant between ``EARLIEST_EXPIRY * ttl`` and ``ttl`` after the fetch, the
            same on every read (a hash of the environment and the fetch time, not a random
            draw).
        """
        seed = f"{sub_account_id}|{self.fetched_at.timestamp()}".encode()
        share = EARLIEST_EXPIRY + (1 - EARLIEST_EXPIRY) * (zlib.crc32(seed) % 1000) / 1000
        return self.fetched_at + ttl * share

    def flags(self) -> dict[str, bool]:
        """What a product-environment listing shows of these keys, to compare with it.

        Returns:
            ``{api_key: enabled}`` for each key.
        """
        return {k.api_key: k.enabled for k in self.keys}


def apply_changes(
    keys: Iterable[KeyLike], changed: Iterable[KeyLike] = (), deleted: Collection[str] = ()
) -> tuple[CachedKey, ...]:
    """The keys after a run's own writes: ``changed`` as the API answered them (a new key,
    an update), ``deleted`` by api_key. A changed key dedicated for webhooks takes the
    dedication from the others, as the API moves it."""
    out = {k.api_key: CachedKey.of(k) for k in keys}
    for key in changed:
        record = CachedKey.of(key)
        if "webhooks" in record.dedicated_for:
            for other, old in list(out.items()):
                if "webhooks" in old.dedicated_for:
                    rest = tuple(d for d in old.dedicated_for if d != "webhooks")
                    out[other] = CachedKey(
                        old.name, old.api_key, old.enabled, old.created_at, old.updated_at, rest
                    )
        out[record.api_key] = record
    for api_key in deleted:
        out.pop(api_key, None)
    return tuple(out.values())


# -- JSON ------------------------------------------------------------------------------------


def _iso(when: datetime) -> str:
    return when.isoformat()


def entry_json(entry: CacheEntry) -> dict[str, Any]:
    return {
        "fetched_at": _iso(entry.fetched_at),
        "keys": [
            {
                "name": k.name,
                "api_key": k.api_key,
                "enabled": k.enabled,
                "created_at": _iso(k.created_at),
                "updated_at": _iso(k.updated_at),
                "dedicated_for": list(k.dedicated_for),
            }
            for k in entry.keys
        ],
    }


def _field(data: Mapping[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if type(value) is not kind:
        raise CorruptEntry(f"{name} is {type(value).__name__}, not {kind.__name__}")
    return value


def _when(data: Mapping[str, Any], name: str) -> datetime:
    text = _field(data, name, str)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise CorruptEntry(f"{name} is not a date: {text[:40]!r}") from None
    if value.tzinfo is None:
        raise CorruptEntry(f"{name} has no timezone")
    return value


def _key(data: object) -> CachedKey:
    if not isinstance(data, dict):
        raise CorruptEntry(f"a key is {type(data).__name__}, not an object")
    dedicated = _field(data, "dedicated_for", list)
    if not all(type(d) is str for d in dedicated):
        raise CorruptEntry("dedicated_for holds a non-string")
    return CachedKey(
        _field(data, "name", str),
        _field(data, "api_key", str),
        _field(data, "enabled", bool),
        _when(data, "created_at"),
        _when(data, "updated_at"),
        tuple(dedicated),
    )


def entry_from_json(data: object) -> CacheEntry:
    """An entry from its JSON form; ``CorruptEntry`` for anything this module did not write."""
    if not isinstance(data, dict):
        raise CorruptEntry(f"an entry is {type(data).__name__}, not an object")
    keys = _field(data, "keys", list)
    entry = CacheEntry(_when(data, "fetched_at"), tuple(_key(k) for k in keys))
    if len({k.api_key for k in entry.keys}) != len(entry.keys):
        raise CorruptEntry("an api_key appears twice")
    return entry
