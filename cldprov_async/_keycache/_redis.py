"""The key cache in Redis (the ``rate_limit_url``'s): one hash per account and server.

The hash ``cldprov:{PREFIX:HOST:ACCOUNT}:keys`` maps each environment's id to its entry's
JSON. Its key carries the fleet's hash tag, so it lives in one Redis Cluster slot beside the
fleet's budget, and every write renews its TTL: an account nobody runs against for longer
than the cache's ttl leaves nothing behind. Each field is written on its own (``HSET``), so
processes sharing the hash never tear an entry; the last writer of an environment wins.

A key of another type there (``WRONGTYPE``) makes the hash unreadable: it is deleted and
rebuilt by the next write. Any other Redis failure makes the store unavailable for that
call: the cache then costs listings, never a wrong answer.

Imports: ``_file``'s two store errors; the Redis client comes from the caller (``_fleet``'s
factory, through ``KeyCache``), never from redis-py directly.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from datetime import timedelta
from typing import Any

from ._file import Merge, StoreUnavailable, StoreUnreadable

#: Fields asked for in one HMGET.
CHUNK = 1000


class RedisStore:
    """One account's cache in the hash ``key`` of the Redis that ``connect()`` reaches."""

    def __init__(self, connect: Callable[[], Any], key: str, *, where: str, ttl: timedelta) -> None:
        self._connect = connect
        self._redis: Any = None
        self.key = key
        self.where = f"redis {where} {key}"
        self._ttl = max(1, int(ttl.total_seconds()))
        self._wrong_type = False

    def _client(self) -> Any:
        if self._redis is None:
            self._redis = self._connect()
        return self._redis.redis

    async def load(self, ids: Collection[str]) -> dict[str, object]:
        ids = list(ids)
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                for start in range(0, len(ids), CHUNK):
                    pipe.hmget(self.key, ids[start : start + CHUNK])
                replies = await pipe.execute()
        except Exception as exc:
            self._raise(exc)
        out: dict[str, object] = {}
        values = [v for chunk in replies for v in chunk]
        for sub, text in zip(ids, values, strict=True):
            if text is None:
                continue
            try:
                out[sub] = json.loads(text)
            except ValueError:
                out[sub] = text  # KeyCache reports it as a corrupt entry
        return out

    async def save(self, changes: Mapping[str, dict[str, Any] | None], merge: Merge) -> None:
        written = {sub: json.dumps(e, separators=(",", ":")) for sub, e in changes.items() if e}
        gone = [sub for sub, entry in changes.items() if entry is None]
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                if self._wrong_type:
                    pipe.delete(self.key)
                if gone:
                    pipe.hdel(self.key, *gone)
                if written:
                    pipe.hset(self.key, mapping=written)
                pipe.expire(self.key, self._ttl)
                await pipe.execute()
        except Exception as exc:
            self._raise(exc)
        self._wrong_type = False

    def _raise(self, exc: Exception) -> Any:
        if "WRONGTYPE" in str(exc):
            self._wrong_type = True
            raise StoreUnreadable("it holds a key of another type") from None
        # Only the type: a Redis error's text might name what we would rather not log.
        raise StoreUnavailable(type(exc).__name__) from None

    async def close(self) -> None:
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()
