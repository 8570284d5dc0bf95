"""The official SDK's async client against the standalone fake server (a subprocess).

If Cloudinary's own generated client works end to end against the fake, the fake speaks the
API closely enough for benchmarks comparing clients on it to be fair.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cloudinary_account_provisioning as cap
import forked
import pytest

ROOT = Path(__file__).resolve().parent.parent
ACCOUNT, KEY, SECRET, SUB = "acc-1", "prov-key", "prov-secret", "sub-a"


@contextlib.contextmanager
def standalone(*args: str) -> Iterator[str]:
    """Run ``python -m cldprov_async.testing`` and yield its URL; stop it with SIGTERM."""
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    command = [sys.executable, "-m", "cldprov_async.testing", "--port", "0"]
    command += ["--account-id", ACCOUNT, "--api-key", KEY, "--api-secret", SECRET, *args]
    process = forked.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else b""
        match = re.fullmatch(rb"CLDPROV_FAKE_URL=(http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        account = process.stdout.readline()  # then the credentials that reach it
        assert account == f"CLOUDINARY_ACCOUNT_URL=account://{KEY}:{SECRET}@{ACCOUNT}\n".encode()
        yield match.group(1).decode()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            rest, errors = process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise
    assert (process.returncode, rest) == (0, b""), errors


def sdk(url: str) -> cap.AsyncCldProvisioning:
    security = cap.Security(provisioning_api_key=KEY, provisioning_api_secret=SECRET)
    return cap.AsyncCldProvisioning(account_id=ACCOUNT, security=security, server_url=url)


async def test_official_sdk_completes_every_operation() -> None:
    with standalone("--sub-account", SUB, "--keys-per-sub-account", "2", "--seed", "1") as url:
        async with sdk(url) as client:
            keys = client.access_keys
            listed = await keys.list(request={"sub_account_id": SUB})
            assert listed.total == 2
            assert [key.name for key in listed.access_keys] == ["key-2", "key-1"]

            created = await keys.generate(
                sub_account_id=SUB, access_key_request={"name": "sdk-key", "enabled": False}
            )
            assert created.name == "sdk-key" and created.enabled is False
            assert created.api_key is not None and re.fullmatch(r"\d{15}", created.api_key)
            assert created.created_at is not None and created.created_at.tzinfo is not None

            updated = await keys.update(
                sub_account_id=SUB,
                key=created.api_key,
                access_key_update_request={
                    "name": "sdk-renamed",
                    "enabled": True,
                    "dedicated_for": cap.DedicatedFor.WEBHOOKS,
                },
            )
            assert (updated.name, updated.enabled, updated.api_key) == (
                "sdk-renamed",
                True,
                created.api_key,
            )

            page = await keys.list(
                request={
                    "sub_account_id": SUB,
                    "sort_by": cap.SortBy.NAME,
                    "sort_order": cap.SortOrder.ASC,
                    "page": 1,
                    "page_size": 2,
                }
            )
            assert page.total == 3
            assert [key.name for key in page.access_keys] == ["key-1", "key-2"]

            with pytest.raises(cap.models.ErrorResponse) as conflict:
                await keys.generate(sub_account_id=SUB, access_key_request={"name": "key-1"})
            assert conflict.value.status_code == 409

            removed = await keys.delete_by_name(sub_account_id=SUB, name="key-1")
            assert removed.message == "ok"
            removed = await keys.delete(sub_account_id=SUB, key=created.api_key)
            assert removed.message == "ok"
            with pytest.raises(cap.models.ErrorResponse) as missing:
                await keys.delete(sub_account_id=SUB, key=created.api_key)
            assert missing.value.status_code == 404

            final = await keys.list(request={"sub_account_id": SUB})
            assert [key.name for key in final.access_keys] == ["key-2"]
            assert final.total == 1


@pytest.mark.parametrize("status", [420, 429])
async def test_official_sdk_sees_rate_limits(status: int) -> None:
    # A window of 10**9 s: no window boundary can fall inside the test.
    limit = ("--rate-limit", "2/1000000000", "--rate-limit-status", str(status))
    with standalone(*limit, "--retry-after", "seconds") as url:
        async with sdk(url) as client:
            for _ in range(2):
                await client.access_keys.list(request={"sub_account_id": "sub-1"})
            with pytest.raises(cap.models.ErrorResponse) as limited:
                await client.access_keys.list(request={"sub_account_id": "sub-1"})
            assert limited.value.status_code == status
            headers = limited.value.headers
            assert headers["X-FeatureRateLimit-Remaining"] == "0"
            assert int(headers["Retry-After"]) > 0
            assert limited.value.data.error is not None
            assert limited.value.data.error.message == "Rate Limit Exceeded"


async def test_official_sdk_lists_product_environments() -> None:
    """The official SDK sends lists as repeated ``ids=`` (form, exploded): the fake takes it."""
    subs = ("--sub-account", "a", "--sub-account", "b", "--sub-account", "c")
    with standalone(*subs, "--keys-per-sub-account", "1") as url:
        async with sdk(url) as client:
            everything = await client.product_environments.list()
            picked = await client.product_environments.list(ids=["c", "a"])
            named = await client.product_environments.list(enabled=True, prefix="B")
            clouds = await client.product_environments.list(cloud_names=["a", "b"])
    assert [env.id for env in everything.sub_accounts or []] == ["a", "b", "c"]
    assert [env.id for env in picked.sub_accounts or []] == ["a", "c"]
    assert [env.id for env in named.sub_accounts or []] == ["b"]
    assert [env.id for env in clouds.sub_accounts or []] == ["a", "b"]
    first = (everything.sub_accounts or [])[0]
    assert (first.name, first.cloud_name, first.enabled) == ("a", "a", True)
    keys = first.api_access_keys or []
    assert len(keys) == 1 and keys[0].enabled is True and keys[0].secret
