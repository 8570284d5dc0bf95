"""The key cache's stores: a file (mode 0600, atomic, shared by processes) and a real Redis
(a TTL on every key, one hash tag), and what corruption or an outage does: one warning, an
empty read, and a rebuild on the next write. No secret ever reaches either store."""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import sys
import textwrap
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import forked
import pytest
import redis

from benchmarks.servers import redis_server as redis_url_server
from cldprov_async import CldProvisioning, Security
from cldprov_async._fleet import parse
from cldprov_async._keycache import (
    CachedKey,
    CacheEntry,
    KeyCache,
    apply_changes,
    default_directory,
    open_key_cache,
)
from cldprov_async.models import AccessKey

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
SERVER = "127.0.0.1:9"


def key(api_key: str, *, name: str = "k", enabled: bool = True, age: int = 10) -> AccessKey:
    at = NOW - age * DAY
    return AccessKey(name, api_key, at, at, enabled, api_secret=f"SECRET-{api_key}")


def entry(*keys: AccessKey, fetched: datetime = NOW) -> CacheEntry:
    return CacheEntry.of(keys, fetched)


@pytest.fixture
def redis_url() -> Iterator[str]:
    with redis_url_server() as url:
        yield url


def document(cache: KeyCache) -> dict[str, Any]:
    """The cache file, parsed (a sync helper: the tests' event loop reads no files)."""
    data: dict[str, Any] = json.loads(Path(cache.where).read_text())
    return data


def overwrite(cache: KeyCache, data: bytes) -> None:
    Path(cache.where).write_bytes(data)


def file_facts(cache: KeyCache) -> tuple[int, int, str, list[str]]:
    """The file's mode, its directory's, its text and the directory's names."""
    path = Path(cache.where)
    names = sorted(p.name for p in path.parent.iterdir())
    return (
        stat.S_IMODE(path.stat().st_mode),
        stat.S_IMODE(path.parent.stat().st_mode),
        path.read_text(),
        names,
    )


def file_cache(folder: Path, **kw: object) -> KeyCache:
    return open_key_cache(account_id="acc", server=SERVER, directory=folder, **kw)  # type: ignore[arg-type]


# -- records -----------------------------------------------------------------------------------


def test_a_record_has_no_secret_and_satisfies_the_decision() -> None:
    record = CachedKey.of(key("1"))
    assert not hasattr(record, "api_secret")
    assert "SECRET" not in repr(record)


def test_entries_expire_spread_over_the_last_fifth_of_the_ttl() -> None:
    ttl = timedelta(days=7)
    e = entry(key("1"))
    expiries = [e.expires_at(f"env-{i}", ttl) - NOW for i in range(200)]
    assert all(0.8 * ttl <= x <= ttl for x in expiries)
    assert len(set(expiries)) > 50  # spread, not one instant
    assert e.expires_at("env-7", ttl) == e.expires_at("env-7", ttl)  # the same on every read


def test_apply_changes_moves_the_dedication_and_drops_deleted_keys() -> None:
    old = AccessKey("old", "1", NOW, NOW, True, dedicated_for=("webhooks",))
    other = key("2")
    new = AccessKey("new", "3", NOW, NOW, True, dedicated_for=("webhooks",))
    after = {k.api_key: k for k in apply_changes([old, other], [new], deleted=["2"])}
    assert set(after) == {"1", "3"}
    assert after["1"].dedicated_for == ()
    assert after["3"].dedicated_for == ("webhooks",)


def test_default_directory_follows_xdg() -> None:
    assert default_directory({"XDG_CACHE_HOME": "/x/c"}) == Path("/x/c/cldprov-async")
    relative = default_directory({"XDG_CACHE_HOME": "rel"})  # ignored, as the spec says
    assert relative == Path.home() / ".cache" / "cldprov-async"


# -- the file store ------------------------------------------------------------------------------


async def test_file_round_trip_mode_0600_and_no_secret(tmp_path: Path) -> None:
    cache = file_cache(tmp_path / "c")
    await cache.put({"env-1": entry(key("1"), key("2", enabled=False))}, NOW)
    got = await cache.get(["env-1", "env-2"])
    assert list(got) == ["env-1"]
    assert [(k.api_key, k.enabled) for k in got["env-1"].keys] == [("1", True), ("2", False)]
    mode, folder_mode, text, names = file_facts(cache)
    assert (mode, folder_mode) == (0o600, 0o700)
    assert "SECRET" not in text
    name = Path(cache.where).name
    assert names == [name, name + ".lock"]


async def test_a_newer_entry_from_another_process_is_kept(tmp_path: Path) -> None:
    ours, theirs = file_cache(tmp_path), file_cache(tmp_path)
    await theirs.put({"env-1": entry(key("new"), fetched=NOW)}, NOW)
    await ours.put({"env-1": entry(key("old"), fetched=NOW - DAY), "env-2": entry(key("2"))}, NOW)
    got = await ours.get(["env-1", "env-2"])
    assert [k.api_key for k in got["env-1"].keys] == ["new"]
    assert "env-2" in got


async def test_forget_and_expired_entries_leave_the_file(tmp_path: Path) -> None:
    cache = file_cache(tmp_path, ttl=timedelta(days=7))
    await cache.put({"a": entry(key("1")), "b": entry(key("2"))}, NOW)
    await cache.put({"a": None}, NOW)
    assert list(await cache.get(["a", "b"])) == ["b"]
    await cache.put({"c": entry(key("3"), fetched=NOW + 8 * DAY)}, NOW + 8 * DAY)
    stored = document(cache)["environments"]
    assert list(stored) == ["c"]  # b expired, so the write dropped it


@pytest.mark.parametrize(
    "garbage",
    [b"{not json", b"[]", b'{"format": "something else"}', b"\x00\xff"],
    ids=["bad json", "a list", "another format", "binary"],
)
async def test_a_corrupt_file_warns_once_reads_empty_and_is_rebuilt(
    tmp_path: Path, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    cache = file_cache(tmp_path)
    await cache.put({"env-1": entry(key("1"))}, NOW)
    overwrite(cache, garbage)
    with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
        assert await cache.get(["env-1"]) == {}
    assert len(caplog.records) == 1
    assert "unreadable" in caplog.records[0].getMessage()
    await cache.put({"env-2": entry(key("2"))}, NOW)
    assert list(await cache.get(["env-1", "env-2"])) == ["env-2"]


async def test_an_entry_of_the_wrong_shape_is_dropped_the_rest_kept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = file_cache(tmp_path)
    await cache.put({"good": entry(key("1")), "bad": entry(key("2"))}, NOW)
    doc = document(cache)
    doc["environments"]["bad"]["keys"][0]["enabled"] = "yes"  # a wrong type
    overwrite(cache, json.dumps(doc).encode())
    with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
        assert list(await cache.get(["good", "bad"])) == ["good"]
    assert len(caplog.records) == 1
    assert "enabled is str, not bool" in caplog.records[0].getMessage()


async def test_an_unwritable_directory_costs_a_warning_never_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    cache = file_cache(blocker / "sub")  # a directory below a file: cannot exist
    with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
        await cache.put({"env-1": entry(key("1"))}, NOW)
        await cache.put({"env-2": entry(key("2"))}, NOW)
        assert await cache.get(["env-1"]) == {}
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        f"key cache {cache.where} is unavailable"
    ]


WRITER = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from cldprov_async._keycache import CacheEntry, open_key_cache
    from cldprov_async.models import AccessKey

    async def main(folder, who, count):
        cache = open_key_cache(account_id="acc", server="127.0.0.1:9", directory=Path(folder))
        now = datetime.now(UTC)
        for n in range(count):
            k = AccessKey("k", f"{who}-{n}", now, now, True, api_secret="SECRET")
            await cache.put({f"env-{who}-{n}": CacheEntry.of([k], now)}, now)

    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
    """
)


def test_processes_writing_at_once_lose_nothing_and_never_tear_the_file(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        forked.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(who), "25"], env=env)
        for who in range(4)
    ]
    assert [p.wait(60) for p in procs] == [0, 0, 0, 0]
    [path] = [p for p in tmp_path.iterdir() if p.suffix == ".json"]
    stored = json.loads(path.read_text())["environments"]
    assert len(stored) == 100
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


# -- the Redis store -------------------------------------------------------------------------------


def redis_cache(url: str, **kw: object) -> KeyCache:
    return open_key_cache(account_id="acc", server=SERVER, fleet=parse(url), **kw)  # type: ignore[arg-type]


async def test_redis_round_trip_one_hash_tag_a_ttl_and_no_secret(redis_url: str) -> None:
    cache = redis_cache(redis_url)
    try:
        await cache.put({f"env-{i}": entry(key(str(i))) for i in range(5)}, NOW)
        got = await cache.get([f"env-{i}" for i in range(7)])
        assert sorted(got) == [f"env-{i}" for i in range(5)]
        await cache.put({"env-0": None}, NOW)
        assert "env-0" not in await cache.get(["env-0"])
    finally:
        await cache.close()
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    names = sync.keys("*")
    assert names == [f"cldprov:{{:{SERVER}:acc}}:keys"]
    assert all(0 < sync.ttl(n) <= 7 * 86400 for n in names)
    assert not any("SECRET" in v for v in sync.hgetall(names[0]).values())
    sync.close()


async def test_redis_wrong_type_warns_and_is_rebuilt(
    redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = redis_cache(redis_url)
    name = f"cldprov:{{:{SERVER}:acc}}:keys"
    sync = redis.Redis.from_url(redis_url, decode_responses=True)
    sync.set(name, "a string where a hash belongs")
    try:
        with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
            assert await cache.get(["env-1"]) == {}
        assert len(caplog.records) == 1
        await cache.put({"env-1": entry(key("1"))}, NOW)
        assert list(await cache.get(["env-1"])) == ["env-1"]
        sync.hset(name, "env-2", "{broken")
        assert list(await cache.get(["env-1", "env-2"])) == ["env-1"]
    finally:
        await cache.close()
        sync.close()


async def test_redis_down_is_one_warning_and_empty_reads(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    cache = redis_cache(f"redis://:pw-zz9@127.0.0.1:{port}/0")
    try:
        with caplog.at_level(logging.WARNING, "cldprov_async.keycache"):
            assert await cache.get(["env-1"]) == {}
            await cache.put({"env-1": entry(key("1"))}, NOW)
            assert await cache.get(["env-1"]) == {}
    finally:
        await cache.close()
    assert len(caplog.records) == 1
    assert "unavailable" in caplog.text and "pw-zz9" not in caplog.text


# -- the client chooses the store ------------------------------------------------------------------


def test_the_client_chooses_the_store(tmp_path: Path, redis_url: str) -> None:
    security = Security("k", "s")
    url = "http://127.0.0.1:9"
    plain = CldProvisioning("acc", security, server_url=url, env={})
    assert plain.key_cache is not None
    assert plain.key_cache.where.startswith(str(default_directory()))
    given = CldProvisioning("acc", security, server_url=url, key_cache_dir=tmp_path, env={})
    assert given.key_cache is not None and given.key_cache.where.startswith(str(tmp_path))
    shared = CldProvisioning("acc", security, server_url=url, rate_limit_url=redis_url, env={})
    assert shared.key_cache is not None and shared.key_cache.where.startswith("redis 127.0.0.1")
    off = CldProvisioning("acc", security, server_url=url, key_cache=False, env={})
    assert off.key_cache is None
    with pytest.raises(ValueError, match="key_cache_ttl must be positive"):
        CldProvisioning("acc", security, server_url=url, key_cache_ttl=timedelta(0), env={})
    with pytest.raises(TypeError, match="key_cache must be a bool"):
        CldProvisioning("acc", security, server_url=url, key_cache="yes", env={})  # type: ignore[arg-type]
