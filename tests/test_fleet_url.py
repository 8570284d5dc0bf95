"""The ``rate_limit_url`` forms (as the ``limits`` library spells them), the client factory,
``rate_limit_redis=``, and the hash-slot rule. Nothing here needs a server: a URL is checked
and a client built before anything is sent."""

from __future__ import annotations

import os
import sys
from typing import Any

import forked
import pytest
import redis.asyncio as aredis

from cldprov_async import CldProvisioning, Security
from cldprov_async._fleet import adopt, budget_tag, connect, fleet_key, parse

PASSWORD = "hunter2-zz9"
SECURITY = Security(provisioning_api_key="k", provisioning_api_secret="s")
CLIENT: dict[str, Any] = {
    "account_id": "a",
    "security": SECURITY,
    "server_url": "http://127.0.0.1:9",
}


@pytest.mark.parametrize(
    ("url", "kind", "nodes", "service", "node_url", "prefix"),
    [
        (
            f"redis+sentinel://:{PASSWORD}@s1:26379,s2:26380/mymaster",
            "sentinel",
            (("s1", 26379), ("s2", 26380)),
            "mymaster",
            f"redis://:{PASSWORD}@/",
            "",
        ),
        (
            f"rediss+sentinel://ops:{PASSWORD}@s1:26379/mymaster/2?prefix=staging",
            "sentinel",
            (("s1", 26379),),
            "mymaster",
            f"rediss://ops:{PASSWORD}@/2",
            "staging",
        ),
        (
            "redis+sentinel://[::1]:26379, 10.0.0.2:26379/svc?ssl_cert_reqs=none",
            "sentinel",
            (("::1", 26379), ("10.0.0.2", 26379)),
            "svc",
            "redis:///?ssl_cert_reqs=none",
            "",
        ),
        (
            f"redis+cluster://:{PASSWORD}@n1:7000,n2:7001,n3:7002?prefix=prod",
            "cluster",
            (("n1", 7000), ("n2", 7001), ("n3", 7002)),
            "",
            f"redis://:{PASSWORD}@/",
            "prod",
        ),
        ("rediss+cluster://n1:7000/", "cluster", (("n1", 7000),), "", "rediss:///", ""),
        ("redis://h:6380/3?prefix=a", "redis", (), "", "redis://h:6380/3", "a"),
    ],
)
def test_each_form_parses(
    url: str, kind: str, nodes: tuple[Any, ...], service: str, node_url: str, prefix: str
) -> None:
    got = parse(url)
    assert (got.kind, got.nodes, got.service, got.url, got.prefix) == (
        kind,
        nodes,
        service,
        node_url,
        prefix,
    )
    assert PASSWORD not in repr(got)


@pytest.mark.parametrize(
    "url",
    [
        "redis+sentinel://s1:26379",  # no service name
        "redis+sentinel://s1:26379/",
        f"redis+sentinel://:{PASSWORD}@:26379/svc",  # no host
        "redis+sentinel://s1/svc",  # no port
        f"redis+sentinel://:{PASSWORD}@s1:port/svc",  # a bad port
        "redis+sentinel://s1:26379,,s2:26379/svc",
        "redis+sentinel://s1:99999/svc",
        "redis+sentinel://s1:26379/svc/x",  # the db must be a number
        "redis+sentinel://s1:26379/svc/1/2",
        "redis+cluster://",
        f"redis+cluster://:{PASSWORD}@n1:7000,n2",
        "redis+cluster://n1:7000/0",  # a cluster has database 0 only
        "redis+cluster://n1:7000?prefix={x}",
        "sentinel://s1:26379/svc",
        "redis://h:port/0",
        "unix://",
    ],
)
def test_a_malformed_url_is_a_value_error_naming_it_without_the_password(url: str) -> None:
    with pytest.raises(ValueError, match="rate_limit_url") as info:
        CldProvisioning(rate_limit_url=url, **CLIENT)
    assert PASSWORD not in str(info.value)


def test_a_bad_connection_option_is_refused_before_anything_is_sent() -> None:
    url = f"redis+sentinel://:{PASSWORD}@127.0.0.1:1/svc?health_check_interval=soon"
    with pytest.raises(ValueError, match="rate_limit_url") as info:
        CldProvisioning(rate_limit_url=url, **CLIENT)
    assert PASSWORD not in str(info.value)


async def test_the_factory_builds_each_kind_without_connecting() -> None:
    sentinel = connect(parse(f"rediss+sentinel://:{PASSWORD}@127.0.0.1:1,127.0.0.1:2/svc/3"))
    cluster = connect(parse(f"redis+cluster://:{PASSWORD}@127.0.0.1:3"))
    one = connect(parse(f"redis://:{PASSWORD}@127.0.0.1:4/0"))
    try:
        assert isinstance(sentinel.redis, aredis.Redis)
        assert isinstance(sentinel.redis.connection_pool, aredis.sentinel.SentinelConnectionPool)
        kwargs = sentinel.redis.connection_pool.connection_kwargs
        assert (kwargs["password"], kwargs["db"]) == (PASSWORD, 3)
        assert sentinel.redis.connection_pool.connection_class.__name__.endswith("SSLConnection")
        assert isinstance(cluster.redis, aredis.RedisCluster)
        assert [(n.host, n.port) for n in cluster.redis.startup_nodes] == [("127.0.0.1", 3)]
        assert (sentinel.kind, cluster.kind, one.kind) == ("sentinel", "cluster", "redis")
        assert one.where == "127.0.0.1:4"
        for made in (sentinel, cluster, one):
            assert PASSWORD not in made.where + repr(made)
    finally:
        for made in (sentinel, cluster, one):
            await made.aclose()


async def test_rate_limit_redis_is_the_callers_and_stays_open() -> None:
    mine = aredis.Redis(host="127.0.0.1", port=1)
    async with CldProvisioning(rate_limit_redis=mine, **CLIENT) as client:
        fleet = client._session.limiter.store.fleet  # type: ignore[attr-defined]
        assert fleet.redis is mine
        assert (fleet.kind, fleet.where) == ("redis", "127.0.0.1:1")
        assert fleet._owned == ()  # nothing of the caller's is closed with the client
    await mine.aclose()
    cluster = aredis.RedisCluster(host="127.0.0.1", port=2)
    assert adopt(cluster).kind == "cluster"
    await cluster.aclose()


def test_rate_limit_redis_is_checked() -> None:
    with pytest.raises(TypeError, match="rate_limit_redis"):
        CldProvisioning(rate_limit_redis="redis://h/0", **CLIENT)
    with pytest.raises(ValueError, match="rate_limit_redis"):
        CldProvisioning(rate_limit_redis=aredis.Redis(), rate_limit_url="redis://h/0", **CLIENT)


def test_every_key_of_a_budget_shares_one_hash_tag() -> None:
    tag = budget_tag("staging", "api.cloudinary.com:443", "acct")
    assert tag == "{staging:api.cloudinary.com:443:acct}"
    keys = [fleet_key(tag, name) for name in ("state", "leases", "members", "rotation-lock")]
    assert keys[0] == "cldprov:{staging:api.cloudinary.com:443:acct}:state"
    assert {k[k.index("{") : k.index("}") + 1] for k in keys} == {tag}
    with pytest.raises(ValueError, match="braces"):
        fleet_key(tag, "{other}")


def test_the_cli_refuses_a_malformed_url_in_one_line() -> None:
    env = {**os.environ, "CLOUDINARY_ACCOUNT_URL": "account://k:s@a"}
    done = forked.run(
        [
            sys.executable,
            "-m",
            "cldprov_async",
            "--server-url",
            "http://127.0.0.1:9",
            "--rate-limit-url",
            f"redis+sentinel://:{PASSWORD}@s1/svc",
            "keys",
            "list",
            "sub-1",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "rate_limit_url" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert PASSWORD not in done.stderr
