"""The fake server's in-memory account: its sub-accounts and their keys.

Holds ``FakeKey`` (the snapshot handed to tests), the stored key and sub-account records, and
``Accounts``, which owns them behind one lock and issues new keys. It knows nothing of HTTP:
the API's rules (validation, 404/409) live in ``_routes``.

Imports nothing from the package (nor from ``cldprov_async``).
"""

from __future__ import annotations

import base64
import functools
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs


def _iso(ts: float) -> str:
    return _iso_second(int(ts))


@functools.lru_cache(maxsize=4)
def _iso_second(second: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))


@attrs.frozen
class FakeKey:
    """A snapshot of one key as the server holds it (timestamps as sent on the wire).

    Attributes:
        name: The key's name (``""`` for an unnamed key).
        api_key: The key.
        api_secret: Its secret.
        created_at: When it was created, as the API sends it (ISO 8601, seconds, UTC).
        updated_at: When it last changed, likewise.
        enabled: Whether it is enabled.
        dedicated_for: ``("webhooks",)`` on the dedicated key, else empty.
    """

    name: str
    api_key: str
    api_secret: str
    created_at: str
    updated_at: str
    enabled: bool
    dedicated_for: tuple[str, ...] = ()


@attrs.define
class StoredKey:
    """One key as stored; ``seq`` is its creation order across the whole account."""

    name: str
    api_key: str
    api_secret: str
    created_at: str
    updated_at: str
    enabled: bool
    seq: int
    born: float = 0.0  # the clock's seconds at creation (the ping's acceptance delay)


@attrs.define
class SubAccount:
    """A product environment: what the listing shows of it, and its keys."""

    id: str
    name: str
    cloud_name: str
    enabled: bool
    created_at: str
    updated_at: str
    keys: dict[str, StoredKey] = attrs.Factory(dict)  # by api_key, in creation order
    by_name: dict[str, StoredKey] = attrs.Factory(dict)  # named keys only
    webhooks_key: str | None = None  # api_key of the key dedicated for webhooks
    auto_names: int = 0

    def to_json(self, key: StoredKey) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": key.name,
            "api_key": key.api_key,
            "api_secret": key.api_secret,
            "created_at": key.created_at,
            "updated_at": key.updated_at,
            "enabled": key.enabled,
        }
        if self.webhooks_key == key.api_key:
            data["dedicated_for"] = ["webhooks"]  # a list, as the live API returns it
        return data

    def snapshot(self, key: StoredKey) -> FakeKey:
        dedicated = ("webhooks",) if self.webhooks_key == key.api_key else ()
        return FakeKey(
            key.name,
            key.api_key,
            key.api_secret,
            key.created_at,
            key.updated_at,
            key.enabled,
            dedicated,
        )

    def environment_json(self) -> dict[str, Any]:
        """The environment as the listing shows it (spec: ProductEnvironment)."""
        return {
            "cloud_name": self.cloud_name,
            "name": self.name,
            "enabled": self.enabled,
            "id": self.id,
            "api_access_keys": [
                {"key": k.api_key, "secret": k.api_secret, "enabled": k.enabled}
                for k in self.keys.values()
            ],
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }

    def remove(self, key: StoredKey) -> None:
        del self.keys[key.api_key]
        if key.name:
            del self.by_name[key.name]
        if self.webhooks_key == key.api_key:
            self.webhooks_key = None


class Accounts:
    """The account's state. ``lock`` guards it: the public methods take it themselves; callers of
    ``get``, ``new_key`` and ``stamp`` (the request handlers) hold it."""

    def __init__(
        self,
        *,
        account_id: str,
        seed: int | None,
        clock: Callable[[], float],
    ) -> None:
        self.account_id = account_id
        self.keys_created = 0
        """Keys created through POST (the handlers count them; arranged keys are not)."""
        self.lock = threading.Lock()
        self._clock = clock
        self._subs: dict[str, SubAccount] = {}
        self._by_cloud_name: dict[str, SubAccount] = {}
        self._issued: set[str] = set()
        self._seq = 0
        self._key_rng = random.Random(None if seed is None else f"keys:{seed}")

    # --- arranging and reading, from any thread

    def add_sub_account(
        self,
        sub_account_id: str,
        *,
        name: str | None = None,
        cloud_name: str | None = None,
        enabled: bool = True,
    ) -> None:
        """Add an empty sub-account; its name and cloud name default to its id."""
        with self.lock:
            if sub_account_id in self._subs:
                raise ValueError(f"sub-account {sub_account_id!r} already exists")
            stamp = self.stamp()
            sub = self._subs[sub_account_id] = SubAccount(
                sub_account_id,
                sub_account_id if name is None else name,
                sub_account_id if cloud_name is None else cloud_name,
                enabled,
                stamp,
                stamp,
            )
            self._by_cloud_name[sub.cloud_name] = sub

    def sub_accounts(self) -> list[SubAccount]:
        """Every sub-account, in creation order (the caller holds the lock)."""
        return list(self._subs.values())

    def add_key(
        self,
        sub_account_id: str,
        *,
        name: str | None,
        enabled: bool,
        dedicated: bool,
        created_at: float | None = None,
    ) -> FakeKey:
        with self.lock:
            sub = self._sub(sub_account_id)
            if name is None:
                while True:
                    sub.auto_names += 1
                    name = f"key-{sub.auto_names}"
                    if name not in sub.by_name:
                        break
            elif name and name in sub.by_name:
                raise ValueError(f"a key named {name!r} already exists in {sub_account_id!r}")
            key = self.new_key(sub, name, enabled)
            if created_at is not None:
                key.created_at = key.updated_at = _iso(created_at)
                key.born = created_at
            if dedicated:
                sub.webhooks_key = key.api_key
            return sub.snapshot(key)

    def keys(self, sub_account_id: str) -> list[FakeKey]:
        with self.lock:
            sub = self._sub(sub_account_id)
            return [sub.snapshot(key) for key in sub.keys.values()]

    def _sub(self, sub_account_id: str) -> SubAccount:
        try:
            return self._subs[sub_account_id]
        except KeyError:
            raise KeyError(f"unknown sub-account {sub_account_id!r}") from None

    # --- for the request handlers, under the lock

    def get(self, sub_account_id: str) -> SubAccount | None:
        return self._subs.get(sub_account_id)

    def by_cloud_name(self, cloud_name: str) -> SubAccount | None:
        return self._by_cloud_name.get(cloud_name)

    def now(self) -> float:
        return self._clock()

    def stamp(self) -> str:
        """Now, as the wire's timestamps say it."""
        return _iso(self._clock())

    def new_key(self, sub: SubAccount, name: str, enabled: bool) -> StoredKey:
        rng = self._key_rng
        api_key = str(rng.randrange(10**14, 10**15))
        while api_key in self._issued:
            api_key = str(rng.randrange(10**14, 10**15))
        self._issued.add(api_key)
        stamp = self.stamp()
        self._seq += 1
        secret = base64.urlsafe_b64encode(rng.randbytes(21))[:27].decode()  # [A-Za-z0-9_-]
        key = StoredKey(name, api_key, secret, stamp, stamp, enabled, self._seq, self._clock())
        sub.keys[api_key] = key
        if name:
            sub.by_name[name] = key
        return key
