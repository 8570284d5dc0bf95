"""The fake server's product-environment listing keeps each environment's ``api_access_keys``
(key, secret, enabled) in step with its keys through every write, and its standalone process
prints the ``CLOUDINARY_ACCOUNT_URL`` that reaches it."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from pathlib import Path

import pytest

from cldprov_async import CldProvisioning, CldProvisioningError
from cldprov_async.testing import FakeProvisioningServer

ROOT = Path(__file__).resolve().parent.parent
ENVS = ["a", "b", "c"]


async def check_in_step(client: CldProvisioning) -> None:
    """The listing shows every environment's keys exactly as their key listings do."""
    listing = await client.product_environments.list()
    for env in listing.sub_accounts:
        shown = [(k.key, k.secret, k.enabled) for k in env.api_access_keys]
        keys = (await client.access_keys.list({"sub_account_id": env.id})).access_keys
        assert sorted(shown) == sorted((k.api_key, k.api_secret, k.enabled) for k in keys)
        assert len(shown) == len(keys)


async def test_every_kind_of_write_shows_in_the_listing() -> None:
    async with FakeProvisioningServer(sub_accounts=ENVS, keys_per_sub_account=1) as fake:
        async with fake.client() as client:
            await check_in_step(client)
            new = await client.access_keys.generate("a", {"name": "n1"})
            await check_in_step(client)
            await client.access_keys.update("a", new.api_key, {"enabled": False})
            await check_in_step(client)
            await client.access_keys.update("a", new.api_key, {"dedicated_for": "webhooks"})
            await client.access_keys.update("a", new.api_key, {"name": "renamed"})
            await check_in_step(client)
            await client.access_keys.delete_by_name("a", name="renamed")
            await check_in_step(client)
            [first] = fake.keys("b")
            await client.access_keys.delete("b", first.api_key)
            fake.add_key("c", enabled=False)
            await check_in_step(client)
    assert {e.route for e in fake.journal} >= {"list_product_environments", "generate"}


async def test_a_random_run_of_writes_stays_in_step() -> None:
    rng = random.Random(19)
    async with FakeProvisioningServer(sub_accounts=ENVS, keys_per_sub_account=2) as fake:
        async with fake.client() as client:
            for step in range(60):
                sub = rng.choice(ENVS)
                keys = fake.keys(sub)
                action = rng.choice(["generate", "disable", "enable", "delete", "rename"])
                try:
                    if action == "generate" or not keys:
                        await client.access_keys.generate(sub, {"name": f"k{step}"})
                    elif action == "delete":
                        await client.access_keys.delete(sub, rng.choice(keys).api_key)
                    else:
                        changes: dict[str, dict[str, object]] = {
                            "disable": {"enabled": False},
                            "enable": {"enabled": True},
                            "rename": {"name": f"r{step}"},
                        }
                        change = changes[action]
                        await client.access_keys.update(sub, rng.choice(keys).api_key, change)
                except CldProvisioningError as exc:  # pragma: no cover - a bug in this test
                    pytest.fail(f"step {step} {action}: {exc}")
                if step % 5 == 4:
                    await check_in_step(client)
            await check_in_step(client)


async def test_the_standalone_server_prints_the_account_url_that_reaches_it() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("CLOUDINARY_ACCOUNT_URL", None)
    server = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "cldprov_async.testing", "--sub-account", "A"),
        *("--sub-account", "B", "--account-id", "acme"),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert server.stdout is not None
    try:
        printed: dict[str, str] = {}
        for _ in range(2):
            line = (await asyncio.wait_for(server.stdout.readline(), 15)).decode()
            name, _, value = line.strip().partition("=")
            printed[name] = value
        assert printed["CLOUDINARY_ACCOUNT_URL"] == "account://fake-key:fake-secret@acme"
        run = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "cldprov_async", "--server-url", printed["CLDPROV_FAKE_URL"]),
            *("audit", "--json"),
            stdout=asyncio.subprocess.PIPE,
            env={**env, **printed},
        )
        out, _ = await asyncio.wait_for(run.communicate(), 60)
    finally:
        server.terminate()
        await server.wait()
    assert run.returncode == 0
    doc = json.loads(out)
    assert [r["sub_account_id"] for r in doc["environments"]] == ["A", "B"]
    assert doc["summary"]["states"]["current"] == 2
